package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/ring"
	"github.com/heraldhub/herald/transport/memory"
)

// Defaults for Options' zero values.
const (
	DefaultSize             = 100_000
	DefaultMaxBytes         = 256 << 20
	DefaultBucketName       = "updates"
	DefaultCleanupFrequency = 1.0
	DefaultLockTimeout      = time.Second
	DefaultSystemSize       = 10_000
	DefaultSystemMaxBytes   = 16 << 20
)

// Physical cleanup always runs once this many dropped records await it, or once they cost more
// than MaxBytes/forceCleanupFraction, whatever CleanupFrequency says. This bounds the file.
const (
	forceCleanupCount    = 1024
	forceCleanupFraction = 8
)

// maxBatch caps the appends written to the write-ahead log with one sync.
const maxBatch = 1024

// Names inside the top-level bucket (Options.BucketName).
var (
	seqBucket = []byte("seq")  // Seq (8 bytes big-endian) → encoded update
	idBucket  = []byte("id")   // update ID → Seq (8 bytes big-endian)
	metaKey   = []byte("meta") // meta record
)

// Options configure Open. Zero values take the defaults above.
type Options struct {
	// Size is the number of updates kept for history (Last-Event-ID replay). Default 100 000.
	Size int
	// MaxBytes bounds the summed cost (memory.Cost) of the retained updates. Default 256 MiB.
	MaxBytes int64
	// BucketName is the top-level bbolt bucket holding the log, so that several logs can share a
	// file one after the other. Default "updates".
	BucketName string
	// CleanupFrequency, in [0, 1], is the probability that a bbolt commit also deletes the
	// records that the bounds have dropped (the reference hub's cleanup_frequency). The bounds
	// hold after every append whatever its value: dropped updates stop being readable at once, only
	// their records are deleted later. Lower values delete in larger batches; cleanup is forced
	// anyway once 1024 dropped records (or MaxBytes/8 worth of them) are waiting. Zero selects
	// DefaultCleanupFrequency, 1: every commit deletes what it dropped, so the file holds
	// exactly the retained log (lower values measured no faster: bbolt commits thousands of
	// updates at once). A
	// negative value leaves deletion to the forced runs only; ParseURL maps
	// cleanup_frequency=0 to it.
	CleanupFrequency float64
	// LockTimeout is how long Open waits for another process to release the file lock before
	// failing. Default 1 s.
	LockTimeout time.Duration
	// MaxFileSize caps the size of the bbolt file in bytes. bbolt commits that would grow it
	// further fail; the updates they carry wait in the write-ahead log, and appends fail with
	// transport.ErrUnavailable once the waiting ones reach their bound, until the bounds free
	// space. Zero means no cap; the write-ahead log is not counted.
	MaxFileSize int64
	// SyncInterval, when positive, acknowledges an append once it is written to the
	// write-ahead log (in the page cache) and syncs the log at most SyncInterval later, as
	// Redis's appendfsync everysec and NATS's sync_interval do. Appends then no longer wait
	// for a sync each (one publisher gains the most), but a power loss or kernel crash may lose
	// the updates acknowledged during the last interval; a crash of the process alone loses
	// nothing. Zero (the default) and negative values sync every batch before acknowledging
	// it; ParseURL maps sync_interval=0 to a negative value, to tell it from "not given".
	SyncInterval time.Duration
	// SystemSize is the number of system updates (subscription events, hub-to-hub control
	// updates) kept apart from Size. They are held in memory only: never written to the disk,
	// they cost no sync, and they are gone after a restart. Default 10 000.
	SystemSize int
	// SystemMaxBytes bounds the summed cost of the retained system updates. Default 16 MiB.
	SystemMaxBytes int64
	// Logger receives warnings about failed writes and commits. Nil discards them.
	Logger *slog.Logger
}

// withDefaults returns o with zero values replaced, or an error for values out of range.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Size < 0:
		return o, fmt.Errorf("bolt: size must not be negative, got %d", o.Size)
	case o.MaxBytes < 0:
		return o, fmt.Errorf("bolt: max bytes must not be negative, got %d", o.MaxBytes)
	case o.SystemSize < 0 || o.SystemMaxBytes < 0:
		return o, fmt.Errorf("bolt: system bounds must not be negative, got %d and %d", o.SystemSize, o.SystemMaxBytes)
	case math.IsNaN(o.CleanupFrequency) || o.CleanupFrequency > 1:
		return o, fmt.Errorf("bolt: cleanup frequency must be at most 1, got %v", o.CleanupFrequency)
	case o.LockTimeout < 0:
		return o, fmt.Errorf("bolt: lock timeout must not be negative, got %v", o.LockTimeout)
	case o.MaxFileSize < 0 || o.MaxFileSize > math.MaxInt:
		return o, fmt.Errorf("bolt: max file size out of range: %d", o.MaxFileSize)
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.BucketName == "" {
		o.BucketName = DefaultBucketName
	}
	if o.SystemSize == 0 {
		o.SystemSize = DefaultSystemSize
	}
	if o.SystemMaxBytes == 0 {
		o.SystemMaxBytes = DefaultSystemMaxBytes
	}
	if o.CleanupFrequency == 0 {
		o.CleanupFrequency = DefaultCleanupFrequency
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Transport is the bbolt-backed log. Create it with Open.
type Transport struct {
	db     *bbolt.DB
	path   string
	opts   Options
	bucket []byte
	log    *slog.Logger

	reqs chan *request // to the committer
	wal  *wal          // owned by the committer goroutine (and Open before it starts)

	mu         sync.Mutex
	head       uint64            // Seq of the newest update readers may see
	seq        uint64            // the last Seq given, to an update or a batch being committed
	lastUser   uint64            // Seq of the newest acknowledged publishers' update
	committing bool              // the committer holds Seqs up to seq for a batch: head waits
	sys        *ring.Ring        // the retained system updates, in memory only
	first      uint64            // no retained publishers' update has a lower Seq
	count      uint64            // the retained publishers' updates
	bytes      int64             // summed memory.Cost of the retained publishers' updates
	pend       []*pendingUpdate  // acknowledged updates not yet in bbolt, oldest first
	pendIDs    map[string]uint64 // ID → Seq of the updates in pend
	pendBytes  int64             // summed cost of pend
	applied    uint64            // Seq of the newest update in bbolt
	applyErr   error             // why the last bbolt commit failed; nil once one succeeds
	appliedCh  chan struct{}     // closed and replaced after every bbolt commit attempt
	notify     chan struct{}     // closed and replaced at every append, to wake waiting readers
	closed     bool
	inflight   sync.WaitGroup // Appends past the closed check; Close waits for them

	st      meta   // what bbolt holds: owned by the applier goroutine (and Open before it starts)
	commits uint64 // write-ahead log syncs, for benchmarks: owned by the committer
	// syncErr is why Close's last sync of the write-ahead log failed: set by the committer
	// before it returns.
	syncErr error
	applies uint64 // bbolt transactions, for benchmarks: owned by the applier

	// Bounds of the updates waiting for bbolt: past them appends wait for the applier, or
	// fail while bbolt refuses commits. Fields so that tests can lower them before appending.
	maxPending      int
	maxPendingBytes int64

	closeOnce sync.Once
	closeErr  error
	quit      chan struct{} // closed by Close once no Append is in flight
	done      chan struct{} // closed when the committer has returned
	applyPoke chan struct{} // wakes the applier
	applyQuit chan struct{} // closed by Close once the committer has returned
	applyDone chan struct{} // closed when the applier has returned

	// beforeSync, when set by tests, runs before each write-ahead log sync; an error fails as
	// the sync would (the batch, or with a sync interval the log).
	beforeSync func() error
	// beforeCommit, when set by tests, runs inside each bbolt write transaction just before
	// Commit; an error aborts it as a failing commit would.
	beforeCommit func(*bbolt.Tx) error
}

var _ transport.Transport = (*Transport)(nil)

// Limits of the applier.
const (
	// applyDelay is how long the applier lets appends gather before a bbolt commit, unless
	// applyMin of them are already waiting: large transactions cost bbolt far less per update.
	applyDelay = 50 * time.Millisecond
	applyMin   = 1024
	// maxApply caps the updates committed to bbolt in one transaction.
	maxApply = 4096
	// Defaults of maxPending and maxPendingBytes.
	defaultMaxPending      = 16384
	defaultMaxPendingBytes = 32 << 20
	// Retries of a failed bbolt commit wait from minRetry, doubling up to maxRetry.
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// request is one Append waiting for the committer.
type request struct {
	ctx  context.Context
	u    *transport.Update
	enc  []byte
	cost int64
	done chan error // buffered; receives exactly one result
}

// pendingUpdate is an acknowledged update (in the write-ahead log) that bbolt does not hold yet.
// Never modified once in Transport.pend: readers share it.
type pendingUpdate struct {
	seq  uint64
	u    *transport.Update
	enc  []byte
	cost int64
}

// Open opens (creating it if needed) the log stored in the bbolt file at path, and starts its
// committer. It fails fast when another process holds the file, and with a clear error when the
// file is not a bbolt database or its bucket was not written by Herald. If the file holds more
// than the bounds allow (they were lowered), the excess is dropped now.
func Open(path string, opts Options) (tr *Transport, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	db, err := openDB(path, opts)
	if err != nil {
		return nil, err
	}
	t := &Transport{
		db:              db,
		path:            path,
		opts:            opts,
		bucket:          []byte(opts.BucketName),
		log:             opts.Logger.With("transport", "bolt", "path", path),
		sys:             ring.New(opts.SystemSize, opts.SystemMaxBytes),
		reqs:            make(chan *request, maxBatch),
		pendIDs:         make(map[string]uint64),
		appliedCh:       make(chan struct{}),
		notify:          make(chan struct{}),
		maxPending:      defaultMaxPending,
		maxPendingBytes: defaultMaxPendingBytes,
		quit:            make(chan struct{}),
		done:            make(chan struct{}),
		applyPoke:       make(chan struct{}, 1),
		applyQuit:       make(chan struct{}),
		applyDone:       make(chan struct{}),
	}
	if err := t.init(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	if created {
		// The new file's directory entry must reach the disk too, or a crash could lose the
		// whole file after its first appends were acknowledged.
		if err := syncDir(filepath.Dir(path)); err != nil {
			t.log.Warn("cannot sync the directory of the new file", "err", err)
		}
	}
	if err := t.recover(created); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	t.head, t.seq, t.lastUser, t.applied = t.st.head, t.st.head, t.st.head, t.st.head
	t.first, t.count, t.bytes = t.st.first, t.st.count, t.st.bytes
	t.log.Debug("opened", "head", t.st.head, "retained", t.st.count, "bytes", t.st.bytes)
	go t.commitLoop()
	go t.applyLoop()
	return t, nil
}

// recover opens the write-ahead log and commits to bbolt the updates it holds that bbolt
// does not (acknowledged before a crash), so that appends start with an empty log.
func (t *Transport) recover(fresh bool) error {
	w, recs, err := openWAL(walPaths(t.path, string(t.bucket)), t.st.head, fresh)
	if err != nil {
		return err
	}
	t.wal = w
	for len(recs) > 0 {
		n := min(len(recs), maxApply)
		batch := make([]*pendingUpdate, n)
		for i, r := range recs[:n] {
			u, err := decodeUpdate(r.seq, r.payload)
			if err != nil {
				_ = w.close()
				return fmt.Errorf("write-ahead log: %w", err)
			}
			batch[i] = &pendingUpdate{seq: r.seq, u: u, enc: r.payload, cost: memory.Cost(u)}
		}
		if err := t.apply(batch); err != nil {
			_ = w.close()
			return fmt.Errorf("replay %d updates of the write-ahead log: %w", len(recs), err)
		}
		recs = recs[n:]
	}
	if t.applies > 0 {
		t.log.Info("replayed the write-ahead log", "head", t.st.head)
	}
	if err := w.truncate(); err != nil {
		_ = w.close()
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openDB opens the bbolt file, turning a held lock and a damaged file into clear errors.
func openDB(path string, opts Options) (db *bbolt.DB, err error) {
	var file *os.File
	defer func() {
		// bbolt validates the meta pages, but a damaged file may still make it panic. Its
		// mapping of the file then stays (and with it the file lock) until the process exits.
		if p := recover(); p != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("bolt: open %s: unreadable file: %v", path, p)
		}
	}()
	db, err = bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bbolt.FreelistMapType,
		MaxSize:      int(opts.MaxFileSize),
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("bolt: %s is locked by another process (is another hub using it?): %w", path, err)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("bolt: open %s: not a readable bbolt database: %w", path, err)
	case err != nil:
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			return nil, fmt.Errorf("bolt: %w", err) // it names the operation and the path already
		}
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return db, nil
}

// init creates the buckets and meta record of a new log, or loads and checks those of an
// existing one, then applies the current bounds and cleans up dropped records.
func (t *Transport) init() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable file: %v", p)
		}
	}()
	return t.db.Update(func(tx *bbolt.Tx) error {
		top := tx.Bucket(t.bucket)
		if top == nil {
			var err error
			if top, err = tx.CreateBucket(t.bucket); err != nil {
				return fmt.Errorf("create bucket %q: %w", t.bucket, err)
			}
			if _, err := top.CreateBucket(seqBucket); err != nil {
				return fmt.Errorf("create bucket %q: %w", seqBucket, err)
			}
			if _, err := top.CreateBucket(idBucket); err != nil {
				return fmt.Errorf("create bucket %q: %w", idBucket, err)
			}
			t.st = meta{first: 1, base: 1}
			return top.Put(metaKey, t.st.encode())
		}
		if top.Bucket(seqBucket) == nil || top.Bucket(idBucket) == nil || top.Get(metaKey) == nil {
			return fmt.Errorf("bucket %q does not hold a Herald log (written by another program? choose another bucket name or file)", t.bucket)
		}
		m, err := decodeMeta(top.Get(metaKey))
		if err != nil {
			return err
		}
		t.st = m
		b := t.buckets(tx)
		if err := t.trim(b); err != nil {
			return err
		}
		if t.st.garbageCount > 0 {
			if err := t.cleanup(b); err != nil {
				return err
			}
		}
		if t.st == m {
			return nil // unchanged: the commit writes nothing
		}
		return top.Put(metaKey, t.st.encode())
	})
}

// buckets are the three parts of the log inside one transaction.
type buckets struct {
	top, seqs, ids *bbolt.Bucket
}

func (t *Transport) buckets(tx *bbolt.Tx) buckets {
	top := tx.Bucket(t.bucket)
	return buckets{top: top, seqs: top.Bucket(seqBucket), ids: top.Bucket(idBucket)}
}

// readMeta loads the meta record inside a transaction.
func (b buckets) meta() (meta, error) {
	return decodeMeta(b.top.Get(metaKey))
}

// Append implements transport.Transport. It returns once the update is in the write-ahead log
// and synced, together with the other appends that arrived while the previous sync ran (group
// commit); with Options.SyncInterval, once it is written to the log, before the sync. Once
// queued, an Append waits for its batch even if ctx ends, so that a nil error always means
// stored and an error always means not stored.
func (t *Transport) Append(ctx context.Context, u *transport.Update) error {
	if u.ID == "" {
		return errors.New("bolt: append: the update has no id")
	}
	if len(u.ID) > bbolt.MaxKeySize {
		return fmt.Errorf("bolt: append: id of %d bytes is longer than %d", len(u.ID), bbolt.MaxKeySize)
	}
	if u.System {
		return t.appendSystem(u)
	}
	r := &request{ctx: ctx, u: u, enc: encodeUpdate(u), cost: memory.Cost(u), done: make(chan error, 1)}
	if len(r.enc) > bbolt.MaxValueSize {
		return fmt.Errorf("bolt: append %q: update of %d bytes is too large", u.ID, len(r.enc))
	}

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transport.ErrClosed
	}
	t.inflight.Add(1)
	t.mu.Unlock()
	defer t.inflight.Done()

	select {
	case t.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

// commitLoop is the only writer: it takes whatever appends are queued, commits them in one
// transaction and answers each. While it syncs, the next batch queues up. With a sync
// interval it also syncs the log once the interval has passed since its first write that is
// not synced, and before it returns.
func (t *Transport) commitLoop() {
	defer close(t.done)
	batch := make([]*request, 0, maxBatch)
	syncTimer := time.NewTimer(time.Hour)
	syncTimer.Stop()
	var syncDue <-chan time.Time // syncTimer's channel while it runs
	for {
		select {
		case r := <-t.reqs:
			batch = append(batch, r)
		case <-syncDue:
			syncDue = nil
			_ = t.syncLog()
			continue
		case <-t.quit:
			// Close waited for every in-flight Append: the queue is empty.
			syncTimer.Stop()
			t.syncErr = t.syncLog()
			return
		}
		// Let the publishers that are ready to append do so before the batch is taken:
		// without this the committer takes only the first arrivals and the others wait a
		// whole commit, so each commit carries about half of the concurrent publishers.
		runtime.Gosched()
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		unsynced := t.commit(batch)
		clear(batch)
		batch = batch[:0]
		if unsynced && syncDue == nil {
			syncTimer.Reset(t.opts.SyncInterval)
			syncDue = syncTimer.C
		}
	}
}

// syncLog syncs what the committer wrote to the write-ahead log without syncing (with a sync
// interval). A failure is logged once: the log then refuses appends until a restart.
func (t *Transport) syncLog() error {
	synced, err := t.wal.sync(t.beforeSync)
	switch {
	case err != nil:
		t.log.Error("write-ahead log sync failed; publishes fail until the hub restarts", "err", err)
	case synced:
		t.commits++
	}
	return err
}

// commit makes a batch of appends durable with one write-ahead log sync and answers every
// request. Requests whose context ended while queued and duplicate IDs (against the log or an
// earlier request of the batch) get their own error; if the write fails, every other request
// gets an error wrapping transport.ErrUnavailable and nothing of the batch is visible. It
// reports whether the log holds writes not yet synced (with a sync interval).
func (t *Transport) commit(batch []*request) (unsynced bool) {
	results := make([]error, len(batch))
	defer func() {
		for i, r := range batch {
			r.done <- results[i]
		}
	}()
	// Read before answering (deferred calls run last first): tests call commit themselves
	// once their appends are answered.
	defer func() { unsynced = t.wal.dirty }()
	fail := func(err error) {
		for i := range batch {
			if !isContextErr(results[i]) { // a duplicate inside a failed batch may not be one
				results[i] = err
			}
		}
	}
	if err := t.waitForRoom(); err != nil {
		fail(err)
		return
	}
	t.mu.Lock()
	pend, applied := t.pend, t.applied
	t.mu.Unlock()
	if err := t.wal.room(applied, t.syncLog); err != nil {
		fail(fmt.Errorf("bolt: append to %s: %w: %w", t.path, transport.ErrUnavailable, err))
		return
	}
	if err := t.checkDuplicates(batch, results); err != nil {
		fail(fmt.Errorf("bolt: append to %s: %w: %w", t.path, transport.ErrUnavailable, err))
		return
	}
	n := 0
	for i := range batch {
		if results[i] == nil {
			n++
		}
	}
	if n == 0 {
		return
	}
	// Take the batch's Seqs now: system updates appended during the sync take later ones, and
	// readers see none of them before the batch is resolved (see publish), so that no reader
	// passes a Seq of the batch before it is readable.
	t.mu.Lock()
	prev, head := t.lastUser, t.seq
	base := head
	t.seq += uint64(n)
	t.committing = true
	t.mu.Unlock()
	if head > prev {
		t.wal.skip(prev+1, head) // system updates and failed appends: never stored
	}
	added := make([]*pendingUpdate, 0, n)
	var addedBytes int64
	for i, r := range batch {
		if results[i] != nil {
			continue
		}
		head++
		t.wal.add(head, r.enc)
		added = append(added, &pendingUpdate{seq: head, u: r.u, enc: r.enc, cost: r.cost})
		addedBytes += r.cost
	}
	first, count, bytes, err := t.trimmed(t.first, t.count+uint64(n), t.bytes+addedBytes, applied, pend, added)
	durable := t.opts.SyncInterval <= 0
	if err == nil {
		err = t.wal.commit(head, durable, t.beforeSync)
	}
	if err != nil {
		t.wal.reset()
		t.mu.Lock()
		if t.seq == head {
			t.seq = base // no system update took a later Seq: the batch's are unused
		}
		t.mu.Unlock()
		t.publish(nil, 0, t.first, t.count, t.bytes)
		t.log.Warn("append failed", "updates", len(added), "err", err)
		fail(fmt.Errorf("bolt: append %d updates to %s: %w: %w", len(added), t.path, transport.ErrUnavailable, err))
		return
	}
	if durable {
		t.commits++
	}
	for _, p := range added {
		p.u.Seq = p.seq
	}
	t.publish(added, addedBytes, first, count, bytes)
	t.poke()
	return
}

// publish ends the committer's hold on Seqs: the batch added (empty when its write failed,
// its Seqs then left unused) becomes readable with the new bounds, and so do the system
// updates appended meanwhile.
func (t *Transport) publish(added []*pendingUpdate, addedBytes int64, first, count uint64, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pend = append(t.pend, added...)
	for _, p := range added {
		t.pendIDs[p.u.ID] = p.seq
	}
	if len(added) > 0 {
		t.lastUser = added[len(added)-1].seq
	}
	t.pendBytes += addedBytes
	t.first, t.count, t.bytes = first, count, bytes
	t.committing = false
	t.advanceLocked()
}

// advanceLocked makes every Seq given so far readable and wakes waiting readers, unless the
// committer holds some. t.mu must be held.
func (t *Transport) advanceLocked() {
	if t.committing || t.head == t.seq {
		return
	}
	t.head = t.seq
	if !t.closed { // Close already closed notify
		close(t.notify)
		t.notify = make(chan struct{})
	}
}

// appendSystem appends a system update: to the in-memory ring only, with the next Seq.
func (t *Transport) appendSystem(u *transport.Update) error {
	// An ID in the index of bbolt is checked outside the lock; one waiting for bbolt is
	// checked under it before and after, since the applier may move it meanwhile.
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transport.ErrClosed
	}
	pendSeq, pending := t.pendIDs[u.ID]
	t.mu.Unlock()
	var stored uint64
	if !pending {
		err := t.view(func(b buckets) error {
			if v := b.ids.Get([]byte(u.ID)); v != nil {
				var err error
				stored, err = keySeq(v)
				return err
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bolt: append %q: %w", u.ID, err)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	_, inRing := t.sys.Lookup(u.ID)
	if s, ok := t.pendIDs[u.ID]; ok {
		pendSeq, pending = s, true
	}
	if inRing || pending && pendSeq >= t.first || stored != 0 && stored >= t.first {
		return fmt.Errorf("bolt: append %q: %w", u.ID, transport.ErrDuplicateID)
	}
	t.seq++
	u.Seq = t.seq
	t.sys.Push(u)
	t.advanceLocked()
	return nil
}

// poke wakes the applier, or leaves it a token if it is busy.
func (t *Transport) poke() {
	select {
	case t.applyPoke <- struct{}{}:
	default:
	}
}

// waitForRoom blocks while the updates waiting for bbolt are at their bounds, and fails while
// bbolt also refuses commits: memory and the write-ahead log stay bounded.
func (t *Transport) waitForRoom() error {
	for {
		t.mu.Lock()
		n, size, applyErr, ch := len(t.pend), t.pendBytes, t.applyErr, t.appliedCh
		t.mu.Unlock()
		switch {
		case n < t.maxPending && size < t.maxPendingBytes:
			return nil
		case applyErr != nil:
			return fmt.Errorf("bolt: %d updates wait for %s, which refuses them: %w: %w", n, t.path, transport.ErrUnavailable, applyErr)
		}
		// The wait may outlast the sync interval, and the timer cannot fire meanwhile.
		if err := t.syncLog(); err != nil {
			return fmt.Errorf("bolt: append to %s: %w: %w", t.path, transport.ErrUnavailable, err)
		}
		t.poke() // no append pokes the applier while this one waits
		<-ch
	}
}

// checkDuplicates sets the result of the requests whose context ended and of those whose ID is
// already retained or taken by an earlier request of the batch.
func (t *Transport) checkDuplicates(batch []*request, results []error) error {
	seen := make(map[string]struct{}, len(batch))
	var inDB []int // requests to check against bbolt's index
	t.mu.Lock()
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, dup := seen[r.u.ID]; dup {
			results[i] = fmt.Errorf("bolt: append %q: %w", r.u.ID, transport.ErrDuplicateID)
			continue
		}
		seen[r.u.ID] = struct{}{}
		if _, dup := t.sys.Lookup(r.u.ID); dup {
			results[i] = fmt.Errorf("bolt: append %q: %w", r.u.ID, transport.ErrDuplicateID)
			continue
		}
		// pendIDs has the newest Seq of the IDs it holds. An ID it lacks is either in bbolt
		// or nowhere: the applier removes an ID only after bbolt committed it.
		if s, ok := t.pendIDs[r.u.ID]; ok {
			if s >= t.first {
				results[i] = fmt.Errorf("bolt: append %q: %w", r.u.ID, transport.ErrDuplicateID)
			}
			continue
		}
		inDB = append(inDB, i)
	}
	t.mu.Unlock()
	if len(inDB) == 0 {
		return nil
	}
	return t.view(func(b buckets) error {
		for _, i := range inDB {
			v := b.ids.Get([]byte(batch[i].u.ID))
			if v == nil {
				continue
			}
			seq, err := keySeq(v)
			if err != nil {
				return fmt.Errorf("index entry %q: %w", batch[i].u.ID, err)
			}
			if seq >= t.first {
				results[i] = fmt.Errorf("bolt: append %q: %w", batch[i].u.ID, transport.ErrDuplicateID)
			}
		}
		return nil
	})
}

// trimmed returns the new first, count and bytes of the retained log once the bounds hold
// for a log of count updates from first on, of the given bytes. The newest update is always
// kept, even if it alone exceeds MaxBytes. Updates up to applied are read from bbolt, the
// later ones from pend and added.
func (t *Transport) trimmed(first, count uint64, bytes int64, applied uint64, pend, added []*pendingUpdate) (uint64, uint64, int64, error) {
	over := func() bool {
		return count > 0 && (count > uint64(t.opts.Size) || (bytes > t.opts.MaxBytes && count > 1))
	}
	if !over() {
		return first, count, bytes, nil
	}
	if first <= applied {
		err := t.view(func(b buckets) error {
			c := b.seqs.Cursor()
			for k, v := c.Seek(seqKey(first)); over() && k != nil; k, v = c.Next() {
				seq, err := keySeq(k)
				if err != nil {
					return err
				}
				if seq > applied {
					break
				}
				u, err := decodeUpdate(seq, v)
				if err != nil {
					return err
				}
				bytes -= memory.Cost(u)
				count--
				first = seq + 1
			}
			return nil
		})
		if err != nil {
			return 0, 0, 0, err
		}
	}
	for _, ps := range [][]*pendingUpdate{pend, added} {
		i := sort.Search(len(ps), func(i int) bool { return ps[i].seq >= first })
		for ; over() && i < len(ps); i++ {
			bytes -= ps[i].cost
			count--
			first = ps[i].seq + 1
		}
	}
	if over() {
		return 0, 0, 0, fmt.Errorf("%w: %d updates from %d on are neither in bbolt nor waiting for it", errCorrupt, count, first)
	}
	return first, count, bytes, nil
}

// applyLoop is bbolt's only writer: it commits the acknowledged updates waiting in pend, many
// per transaction, and retries with backoff (and smaller transactions) while bbolt fails.
func (t *Transport) applyLoop() {
	defer close(t.applyDone)
	chunk, retry := maxApply, time.Duration(0)
	leftover := false // updates were left for the next delay: wait for it without a poke
	for {
		wait := applyDelay
		switch {
		case retry > 0:
			wait = retry
		case leftover:
		default:
			select {
			case <-t.applyPoke:
			case <-t.applyQuit:
				t.drain()
				return
			}
			t.mu.Lock()
			if len(t.pend) >= applyMin {
				wait = 0
			}
			t.mu.Unlock()
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-t.applyQuit:
				timer.Stop()
				t.drain()
				return
			}
		}
		for first := true; ; first = false {
			t.mu.Lock()
			pend := t.pend
			t.mu.Unlock()
			// After a commit, go on at once only with a large transaction's worth waiting;
			// fewer wait for the next delay (their appends poked the applier), or bbolt would
			// commit the few that arrived during each commit, one small transaction after
			// another.
			if len(pend) == 0 || !first && len(pend) < applyMin {
				retry, leftover = 0, len(pend) > 0
				break
			}
			n := min(len(pend), chunk)
			if err := t.apply(pend[:n]); err != nil {
				t.applyFailed(n, err)
				chunk = max(1, n/2)
				retry = min(max(2*retry, minRetry), maxRetry)
				break
			}
			t.landed(pend[:n])
			chunk, retry = maxApply, 0
		}
	}
}

// drain commits what still waits for bbolt when the transport closes. What it cannot commit
// stays in the write-ahead log, which the next Open replays.
func (t *Transport) drain() {
	for {
		t.mu.Lock()
		pend := t.pend
		t.mu.Unlock()
		if len(pend) == 0 {
			return
		}
		n := min(len(pend), maxApply)
		if err := t.apply(pend[:n]); err != nil {
			t.log.Warn("updates left in the write-ahead log at close; the next open replays them", "updates", len(pend), "err", err)
			t.setApplyErr(err) // wakes a flush waiting for them
			return
		}
		t.landed(pend[:n])
	}
}

func (t *Transport) applyFailed(n int, err error) {
	t.log.Warn("commit to bbolt failed; appends go on in the write-ahead log and are retried", "updates", n, "err", err)
	t.setApplyErr(err)
}

// setApplyErr records why bbolt refuses commits and wakes those waiting for the applier.
func (t *Transport) setApplyErr(err error) {
	t.mu.Lock()
	t.applyErr = err
	close(t.appliedCh)
	t.appliedCh = make(chan struct{})
	t.mu.Unlock()
}

// landed removes the updates bbolt now holds from pend.
func (t *Transport) landed(done []*pendingUpdate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(done) == len(t.pend) {
		t.pend = nil
	} else {
		t.pend = t.pend[len(done):]
	}
	for _, p := range done {
		if t.pendIDs[p.u.ID] == p.seq {
			delete(t.pendIDs, p.u.ID)
		}
		t.pendBytes -= p.cost
	}
	if len(t.pendIDs) == 0 {
		t.pendIDs = make(map[string]uint64) // a Go map never shrinks after a peak
	}
	t.applied = done[len(done)-1].seq
	t.applyErr = nil
	close(t.appliedCh)
	t.appliedCh = make(chan struct{})
}

// apply commits updates, acknowledged and in Seq order, to bbolt in one transaction, with the
// bounds and the cleanup of dropped records. On failure bbolt and t.st are unchanged.
func (t *Transport) apply(ups []*pendingUpdate) (err error) {
	prev := t.st
	defer func() {
		if err != nil {
			t.st = prev
		}
	}()
	tx, err := t.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	b := t.buckets(tx)
	// Seqs only ever grow at the end: pack their pages full instead of splitting them in
	// halves (bbolt's default suits random inserts, such as the index's).
	b.seqs.FillPercent = 1.0
	for _, p := range ups {
		if p.seq <= t.st.head {
			return fmt.Errorf("%w: update %d follows %d", errCorrupt, p.seq, t.st.head)
		}
		t.st.head = p.seq
		t.st.count++
		key := seqKey(p.seq)
		if err := b.seqs.Put(key, p.enc); err != nil {
			return fmt.Errorf("put update %d: %w", p.seq, err)
		}
		if err := b.ids.Put([]byte(p.u.ID), key); err != nil {
			return fmt.Errorf("put index entry %q: %w", p.u.ID, err)
		}
		t.st.bytes += p.cost
		if err := t.trim(b); err != nil {
			return err
		}
	}
	if g := t.st.garbageCount; g > 0 && (g >= forceCleanupCount ||
		t.st.garbageBytes >= t.opts.MaxBytes/forceCleanupFraction ||
		rand.Float64() < t.opts.CleanupFrequency) {
		if err := t.cleanup(b); err != nil {
			return err
		}
	}
	if err := b.top.Put(metaKey, t.st.encode()); err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	if t.beforeCommit != nil {
		if err := t.beforeCommit(tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	t.applies++
	return nil
}

// trim drops the oldest retained updates from the log (not yet from the file) until the bounds
// hold. The newest update is always kept, even if it alone exceeds MaxBytes.
func (t *Transport) trim(b buckets) error {
	c := b.seqs.Cursor()
	for t.st.count > 0 && (t.st.count > uint64(t.opts.Size) ||
		(t.st.bytes > t.opts.MaxBytes && t.st.count > 1)) {
		k, v := c.Seek(seqKey(t.st.first))
		if k == nil {
			return fmt.Errorf("%w: %d updates from %d on are missing", errCorrupt, t.st.count, t.st.first)
		}
		seq, err := keySeq(k)
		if err != nil {
			return err
		}
		u, err := decodeUpdate(seq, v)
		if err != nil {
			return err
		}
		cost := memory.Cost(u)
		t.st.bytes -= cost
		t.st.garbageBytes += cost
		t.st.count--
		t.st.garbageCount++
		t.st.first = seq + 1
	}
	return nil
}

// cleanup deletes the records of dropped updates, and their index entries unless the ID was
// published again since.
func (t *Transport) cleanup(b buckets) error {
	var keys [][]byte
	c := b.seqs.Cursor()
	for k, v := c.Seek(seqKey(t.st.base)); k != nil; k, v = c.Next() {
		seq, err := keySeq(k)
		if err != nil {
			return err
		}
		if seq >= t.st.first {
			break
		}
		id, err := decodeID(seq, v)
		if err != nil {
			return err
		}
		if cur := b.ids.Get(id); cur != nil {
			if s, err := keySeq(cur); err == nil && s == seq {
				// Copy the id: it points into the page Delete is about to change.
				if err := b.ids.Delete(append([]byte(nil), id...)); err != nil {
					return fmt.Errorf("delete index entry: %w", err)
				}
			}
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	if uint64(len(keys)) != t.st.garbageCount {
		return fmt.Errorf("%w: %d dropped records found before %d, want %d", errCorrupt, len(keys), t.st.first, t.st.garbageCount)
	}
	for _, k := range keys {
		if err := b.seqs.Delete(k); err != nil {
			return fmt.Errorf("delete update %d: %w", binary.BigEndian.Uint64(k), err)
		}
	}
	t.st.base = t.st.first
	t.st.garbageBytes, t.st.garbageCount = 0, 0
	return nil
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// view runs fn in a read transaction, mapping a closed database to transport.ErrClosed.
func (t *Transport) view(fn func(buckets) error) error {
	err := t.db.View(func(tx *bbolt.Tx) error { return fn(t.buckets(tx)) })
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return transport.ErrClosed
	}
	return err
}

// Read implements transport.Transport. It holds at most limit updates in memory: those bbolt
// holds are read with a cursor from a read-only transaction that does not block appends, the
// newest ones from memory until the applier has committed them to bbolt.
func (t *Transport) Read(ctx context.Context, after uint64, limit int, wait bool) ([]*transport.Update, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("bolt: read: limit must be positive, got %d", limit)
	}
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, transport.ErrClosed
		}
		head, first, applied, pend, woken := t.head, t.first, t.applied, t.pend, t.notify
		var sys []*transport.Update
		if after < head {
			sys = t.sys.After(after, limit)
			for len(sys) > 0 && sys[len(sys)-1].Seq > head {
				sys = sys[:len(sys)-1] // held back while the committer holds earlier Seqs
			}
		}
		t.mu.Unlock()
		if after < head {
			out, err := t.readFrom(max(after+1, first), limit, applied, pend)
			if err != nil {
				return nil, err
			}
			if out = ring.Merge(out, sys, limit); len(out) > 0 {
				return out, nil
			}
		}
		if !wait {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-woken:
		}
	}
}

// readFrom returns up to limit updates from Seq start on: from bbolt up to applied (or
// further: bbolt only grows), then from pend, which holds every later acknowledged update.
func (t *Transport) readFrom(start uint64, limit int, applied uint64, pend []*pendingUpdate) ([]*transport.Update, error) {
	var out []*transport.Update
	if start <= applied {
		var err error
		if out, err = t.read(start-1, limit); err != nil {
			return nil, err
		}
		if len(out) == limit {
			return out, nil
		}
		if len(out) > 0 {
			start = out[len(out)-1].Seq + 1
		}
	}
	if len(pend) == 0 || start > pend[len(pend)-1].seq {
		return out, nil
	}
	pend = pend[sort.Search(len(pend), func(i int) bool { return pend[i].seq >= start }):]
	pend = pend[:min(len(pend), limit-len(out))]
	if out == nil {
		out = make([]*transport.Update, 0, len(pend))
	}
	for _, p := range pend {
		out = append(out, p.u)
	}
	return out, nil
}

// read returns up to limit retained updates after the given Seq.
func (t *Transport) read(after uint64, limit int) ([]*transport.Update, error) {
	var out []*transport.Update
	err := t.view(func(b buckets) error {
		m, err := b.meta()
		if err != nil {
			return err
		}
		if after >= m.head {
			return nil
		}
		start := max(after+1, m.first)
		out = make([]*transport.Update, 0, min(uint64(limit), m.head-start+1))
		c := b.seqs.Cursor()
		for k, v := c.Seek(seqKey(start)); k != nil && len(out) < limit; k, v = c.Next() {
			seq, err := keySeq(k)
			if err != nil {
				return err
			}
			u, err := decodeUpdate(seq, v)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: read after %d: %w", after, err)
	}
	return out, nil
}

// Lookup implements transport.Transport with one map or index lookup.
func (t *Transport) Lookup(_ context.Context, id string) (uint64, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return 0, transport.ErrClosed
	}
	first := t.first
	s, pending := t.pendIDs[id]
	if sys, ok := t.sys.Lookup(id); ok && sys <= t.head {
		t.mu.Unlock()
		return sys, nil
	}
	t.mu.Unlock()
	var seq uint64
	if pending {
		seq = s
	} else {
		err := t.view(func(b buckets) error {
			v := b.ids.Get([]byte(id))
			if v == nil {
				return nil
			}
			var err error
			seq, err = keySeq(v)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("bolt: lookup %q: %w", id, err)
		}
	}
	if seq == 0 || seq < first {
		return 0, fmt.Errorf("bolt: lookup %q: %w", id, transport.ErrUnknownID)
	}
	return seq, nil
}

// Head implements transport.Transport.
func (t *Transport) Head(context.Context) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, transport.ErrClosed
	}
	return t.head, nil
}

func (t *Transport) checkOpen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	return nil
}

// Backup writes a consistent copy of the whole file to w while the hub keeps running (a bbolt
// hot backup from a read transaction; appends are not blocked). It first waits until bbolt
// holds every update acknowledged when it was called. The copy is itself a bbolt file that Open
// accepts.
func (t *Transport) Backup(w io.Writer) error {
	if err := t.flush(); err != nil {
		return err
	}
	err := t.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
	switch {
	case errors.Is(err, berrors.ErrDatabaseNotOpen):
		return transport.ErrClosed
	case err != nil:
		return fmt.Errorf("bolt: backup %s: %w", t.path, err)
	}
	return nil
}

// flush waits until bbolt holds every update acknowledged so far.
func (t *Transport) flush() error {
	t.mu.Lock()
	head := t.lastUser
	t.mu.Unlock()
	t.poke()
	for {
		t.mu.Lock()
		closed, applied, applyErr, ch := t.closed, t.applied, t.applyErr, t.appliedCh
		t.mu.Unlock()
		switch {
		case closed:
			return transport.ErrClosed
		case applied >= head:
			return nil
		case applyErr != nil:
			return fmt.Errorf("bolt: %s refuses commits: %w: %w", t.path, transport.ErrUnavailable, applyErr)
		}
		<-ch
	}
}

// keepSeq stores seq as the head of the log, past its newest record, so that the next Open
// gives later Seqs: those of system updates, which are not stored, are not reused after a
// clean close. (After a crash they may be: the system updates that had them are gone with
// the process, and no reader of the new one has seen them.)
func (t *Transport) keepSeq(seq uint64) error {
	return t.db.Update(func(tx *bbolt.Tx) error {
		b := t.buckets(tx)
		t.st.head = seq
		return b.top.Put(metaKey, t.st.encode())
	})
}

// Close implements transport.Transport: waiting readers return ErrClosed, appends already
// queued are committed, what waits for bbolt is committed to it, then the files are closed and
// the lock released. Later calls return the first call's result.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		close(t.notify)
		t.mu.Unlock()
		t.inflight.Wait()
		close(t.quit)
		<-t.done
		close(t.applyQuit)
		<-t.applyDone
		errs := []error{t.syncErr}
		t.mu.Lock()
		clean := len(t.pend) == 0
		seq := t.seq
		t.mu.Unlock()
		if clean && seq > t.st.head {
			// Seqs given to system updates since the last stored update: keep them used.
			if err := t.keepSeq(seq); err != nil {
				errs = append(errs, err)
			}
		}
		if clean {
			if err := t.wal.truncate(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := t.wal.close(); err != nil {
			errs = append(errs, err)
		}
		if err := t.db.Close(); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			t.closeErr = fmt.Errorf("bolt: close %s: %w", t.path, err)
		}
	})
	return t.closeErr
}
