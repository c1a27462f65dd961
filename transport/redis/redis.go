package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/codec"
	"github.com/heraldhub/herald/transport/internal/gate"
	"github.com/heraldhub/herald/transport/internal/ring"
	"github.com/heraldhub/herald/transport/internal/tail"
	"github.com/heraldhub/herald/transport/memory"
)

// Defaults for Options' zero values.
const (
	DefaultAddr     = "127.0.0.1:6379"
	DefaultStream   = "herald"
	DefaultSize     = 100_000
	DefaultMaxBytes = 256 << 20
	DefaultTimeout  = 5 * time.Second
	// DefaultSystemSize is the default of Options.SystemSize.
	DefaultSystemSize = 10_000
)

// Tailing. The watcher blocks in XREAD for at most blockTime at a time, reading up to
// readCount entries; it keeps the newest updates for waiting readers in a tail.Tail.
const (
	blockTime  = 5 * time.Second
	readCount  = 1000
	maxBackoff = time.Second
)

// Options configure Open. Zero values take the defaults above.
type Options struct {
	// Addr is the Redis server's "host:port". Default 127.0.0.1:6379.
	Addr string
	// Username and Password authenticate with AUTH (Username empty: the default user).
	Username, Password string
	// DB is the database number (SELECT). Default 0.
	DB int
	// TLS, when set, connects with TLS (the rediss scheme).
	TLS *tls.Config
	// Stream is the key of the Redis stream holding the log; the index, meta and cost keys
	// and those of system updates are named after it (Stream+":ids", ":meta", ":costs",
	// ":sys", ":sysids"). Default "herald".
	Stream string
	// Size is the number of updates kept for history (Last-Event-ID replay). Default 100 000.
	Size int
	// MaxBytes bounds the summed cost (memory.Cost) of the retained updates. Default 256 MiB.
	MaxBytes int64
	// SystemSize is the number of system updates (subscription events, hub-to-hub control
	// updates) kept in their own stream, apart from Size. Default 10 000.
	SystemSize int
	// Timeout bounds every call to Redis (and the dial): past it the call fails with
	// transport.ErrUnavailable. Default 5 s.
	Timeout time.Duration
	// Logger receives connection losses, recoveries and warnings. Nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Size < 0:
		return o, fmt.Errorf("redis: size must not be negative, got %d", o.Size)
	case o.MaxBytes < 0:
		return o, fmt.Errorf("redis: max bytes must not be negative, got %d", o.MaxBytes)
	case o.SystemSize < 0:
		return o, fmt.Errorf("redis: system size must not be negative, got %d", o.SystemSize)
	case o.Timeout < 0:
		return o, fmt.Errorf("redis: timeout must not be negative, got %v", o.Timeout)
	case o.DB < 0:
		return o, fmt.Errorf("redis: db must not be negative, got %d", o.DB)
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.Size == 0 {
		o.Size = DefaultSize
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SystemSize == 0 {
		o.SystemSize = DefaultSystemSize
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Transport is the Redis Streams log. Create it with Open.
type Transport struct {
	c    rueidis.Client
	opts Options
	keys []string // stream, index, meta, costs, system stream, system index: the scripts' KEYS
	size string   // opts.Size, opts.MaxBytes and opts.SystemSize as script arguments
	max  string
	sys  string
	log  *slog.Logger
	tail *tail.Tail

	gate gate.Gate // closed state; Close waits for the Appends in flight

	stop      context.CancelFunc // ends the watcher
	done      chan struct{}      // closed when the watcher has returned
	closeOnce sync.Once
}

var _ transport.Transport = (*Transport)(nil)

// Open connects to Redis, checks that the keys hold a Herald log (or nothing yet), applies
// the bounds (lowered ones take effect now) and starts tailing the stream. It fails with an
// error wrapping transport.ErrUnavailable when the server cannot be reached within
// Options.Timeout.
func Open(ctx context.Context, opts Options) (*Transport, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("transport", "redis", "addr", opts.Addr, "stream", opts.Stream)
	c, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:         []string{opts.Addr},
		Username:            opts.Username,
		Password:            opts.Password,
		SelectDB:            opts.DB,
		TLSConfig:           opts.TLS,
		ClientName:          "herald",
		Dialer:              net.Dialer{Timeout: opts.Timeout, KeepAlive: time.Second},
		ConnWriteTimeout:    opts.Timeout,
		ForceSingleClient:   true, // no cluster or sentinel discovery
		DisableCache:        true, // no client-side caching: nothing here is read twice
		DisableRetry:        true, // Append retries itself, knowing when a retry is safe
		BlockingPoolSize:    4,    // the watcher's XREAD is the only blocking command
		PipelineMultiplex:   1,    // 2 connections, auto-pipelined
		ReadBufferEachConn:  64 << 10,
		WriteBufferEachConn: 64 << 10,
	})
	if err != nil {
		if _, ok := rueidis.IsRedisErr(err); ok { // refused: AUTH, SELECT…
			return nil, fmt.Errorf("redis: connect to %s: %w", opts.Addr, err)
		}
		return nil, fmt.Errorf("redis: connect to %s: %w", opts.Addr, unavailable(err))
	}
	t := &Transport{
		c:    c,
		opts: opts,
		keys: []string{opts.Stream, opts.Stream + ":ids", opts.Stream + ":meta", opts.Stream + ":costs", opts.Stream + ":sys", opts.Stream + ":sysids"},
		size: strconv.Itoa(opts.Size),
		max:  strconv.FormatInt(opts.MaxBytes, 10),
		sys:  strconv.Itoa(opts.SystemSize),
		log:  log,
		done: make(chan struct{}),
	}
	head, err := t.init(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	t.tail = tail.New(head)
	wctx, stop := context.WithCancel(context.Background())
	t.stop = stop
	go t.watch(wctx, head)
	log.Debug("opened", "head", head)
	return t, nil
}

// init checks the keys, applies the bounds and returns the head.
func (t *Transport) init(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	want := []string{"stream", "zset", "hash", "list", "stream", "zset"}
	cmds := make(rueidis.Commands, len(t.keys))
	for i, k := range t.keys {
		cmds[i] = t.c.B().Type().Key(k).Build()
	}
	types := make([]string, len(t.keys))
	for i, r := range t.c.DoMulti(ctx, cmds...) {
		typ, err := r.ToString()
		if err != nil {
			return 0, fmt.Errorf("redis: open %s: %w", t.opts.Stream, unavailable(err))
		}
		if typ != "none" && typ != want[i] {
			return 0, fmt.Errorf("redis: open %s: key %q holds a %s, not the %s of a Herald log (choose another stream name)", t.opts.Stream, t.keys[i], typ, want[i])
		}
		types[i] = typ
	}
	// A log with only system updates so far has meta but no stream; one whose stream was
	// deleted still has its cost list.
	switch {
	case types[0] != "none" && types[2] == "none":
		return 0, fmt.Errorf("redis: open %s: key %q is a stream that Herald did not write (no %q; choose another stream name)", t.opts.Stream, t.keys[0], t.keys[2])
	case types[0] == "none" && types[3] != "none":
		return 0, fmt.Errorf("redis: open %s: the stream %q is missing but %q exists (was the stream deleted? delete the %s:* keys to start a new log)", t.opts.Stream, t.keys[0], t.keys[3], t.opts.Stream)
	}
	if err := boundScript.Exec(ctx, t.c, t.keys, []string{t.size, t.max, t.sys}).Error(); err != nil {
		return 0, fmt.Errorf("redis: open %s: apply the bounds: %w", t.opts.Stream, unavailable(err))
	}
	head, err := t.head(ctx)
	if err != nil {
		return 0, fmt.Errorf("redis: open %s: %w", t.opts.Stream, err)
	}
	return head, nil
}

// fail turns an error of a call to Redis into the error the Transport returns: ErrClosed
// once closed, the caller's context error when its context ended, else ErrUnavailable.
func (t *Transport) fail(ctx context.Context, what string, err error) error {
	switch {
	case t.gate.Closed():
		return transport.ErrClosed
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("redis: %s: %w", what, ctx.Err())
	}
	return fmt.Errorf("redis: %s: %w", what, unavailable(err))
}

// unavailable wraps err with transport.ErrUnavailable, naming a timeout plainly.
func unavailable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: no answer in time (%w)", transport.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", transport.ErrUnavailable, err)
}

// timeout derives the context of one call to Redis: ctx bounded by Options.Timeout.
func (t *Transport) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, t.opts.Timeout)
}

// Append implements transport.Transport with one atomic script (see appendScript).
//
// When the connection breaks while the script runs, its outcome is unknown; Append then
// repeats it once, telling the script that an identical retained update is its own. So a
// nil error means stored once, ErrDuplicateID means another update holds the ID, and an
// error wrapping ErrUnavailable means not stored as far as Redis could be asked (the server
// is down or did not answer within Options.Timeout; see the package documentation).
func (t *Transport) Append(ctx context.Context, u *transport.Update) error {
	if u.ID == "" {
		return errors.New("redis: append: the update has no id")
	}
	if err := t.gate.Enter(); err != nil {
		return err
	}
	defer t.gate.Leave()
	system := "0"
	if u.System {
		system = "1"
	}
	args := []string{u.ID, codec.EncodeString(u), strconv.FormatInt(memory.Cost(u), 10), t.size, t.max, "0", system, t.sys}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	res, err := appendScript.Exec(cctx, t.c, t.keys, args).ToArray()
	if err != nil && retryable(err) && cctx.Err() == nil {
		t.log.Debug("append: connection lost, retrying once", "id", u.ID, "err", err)
		args[5] = "1"
		res, err = appendScript.Exec(cctx, t.c, t.keys, args).ToArray()
	}
	if err != nil {
		return t.fail(ctx, fmt.Sprintf("append %q", u.ID), err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redis: append %q: %w: unexpected reply of %d elements", u.ID, transport.ErrUnavailable, len(res))
	}
	ok, err1 := res[0].AsInt64()
	s, err2 := res[1].ToString()
	seq, err3 := strconv.ParseUint(s, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return fmt.Errorf("redis: append %q: %w: unexpected reply: %w", u.ID, transport.ErrUnavailable, err)
	}
	if ok != 1 {
		return fmt.Errorf("redis: append %q (retained as %d): %w", u.ID, seq, transport.ErrDuplicateID)
	}
	u.Seq = seq
	return nil
}

// retryable reports whether err may have lost the outcome of a call that reached Redis: a
// connection that broke, rather than an answer of Redis, a failed dial (nothing was sent) or
// the end of the context.
func retryable(err error) bool {
	if _, ok := rueidis.IsRedisErr(err); ok {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, rueidis.ErrClosing)
}

// Read implements transport.Transport. Without wait it reads the stream (XRANGE). With wait
// it serves the updates this node's watcher has tailed when they follow after, reads the
// stream when after is older than those, and otherwise waits for the watcher.
func (t *Transport) Read(ctx context.Context, after uint64, limit int, wait bool) ([]*transport.Update, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("redis: read: limit must be positive, got %d", limit)
	}
	if t.gate.Closed() {
		return nil, transport.ErrClosed
	}
	if !wait {
		return t.read(ctx, after, limit)
	}
	return t.tail.Read(ctx, after, limit, t.read)
}

// read returns up to limit updates after the given Seq from the stream itself.
func (t *Transport) read(ctx context.Context, after uint64, limit int) ([]*transport.Update, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	var classes [2][]*transport.Update
	for i, r := range t.c.DoMulti(cctx,
		t.c.B().Xrange().Key(t.keys[0]).Start(streamID(after+1)).End("+").Count(int64(limit)).Build(),
		t.c.B().Xrange().Key(t.keys[4]).Start(streamID(after+1)).End("+").Count(int64(limit)).Build(),
	) {
		entries, err := r.AsXRangeSlices()
		if err != nil {
			return nil, t.fail(ctx, fmt.Sprintf("read after %d", after), err)
		}
		if classes[i], _, err = decodeEntries(entries); err != nil {
			return nil, fmt.Errorf("redis: read after %d: %w", after, err)
		}
	}
	// Each class gave its first limit updates after the position: the first limit of both
	// are among them.
	return ring.Merge(classes[0], classes[1], limit), nil
}

// streamID is the stream entry ID of a Seq.
func streamID(seq uint64) string { return "0-" + strconv.FormatUint(seq, 10) }

// decodeEntries decodes stream entries, and returns the first retained Seq that the last
// one recorded (0 when none did).
func decodeEntries(entries []rueidis.XRangeSlice) (ups []*transport.Update, first uint64, err error) {
	ups = make([]*transport.Update, 0, len(entries))
	for _, e := range entries {
		ms, seqStr, ok := strings.Cut(e.ID, "-")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || ms != "0" || err != nil {
			return nil, 0, fmt.Errorf("%w: entry ID %q was not written by Herald", errCorrupt, e.ID)
		}
		var payload string
		var found bool
		first = 0
		for _, fv := range e.FieldValues {
			switch fv.Field {
			case "u":
				payload, found = fv.Value, true
			case "f":
				first, _ = strconv.ParseUint(fv.Value, 10, 64)
			}
		}
		if !found {
			return nil, 0, fmt.Errorf("%w: entry %s has no update", errCorrupt, e.ID)
		}
		u, err := codec.Decode(seq, payload)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", errCorrupt, err)
		}
		ups = append(ups, u)
	}
	return ups, first, nil
}

// Lookup implements transport.Transport with one lookup in each index (ZSCORE): the indexes
// hold exactly the retained updates, since the scripts that drop updates remove their
// entries.
func (t *Transport) Lookup(ctx context.Context, id string) (uint64, error) {
	if t.gate.Closed() {
		return 0, transport.ErrClosed
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	res := t.c.DoMulti(cctx,
		t.c.B().Zscore().Key(t.keys[1]).Member(id).Build(),
		t.c.B().Zscore().Key(t.keys[5]).Member(id).Build())
	score, err := res[0].AsFloat64()
	if rueidis.IsRedisNil(err) {
		score, err = res[1].AsFloat64()
	}
	switch {
	case rueidis.IsRedisNil(err):
		return 0, fmt.Errorf("redis: lookup %q: %w", id, transport.ErrUnknownID)
	case err != nil:
		return 0, t.fail(ctx, fmt.Sprintf("lookup %q", id), err)
	case score < 1 || score > 1<<53:
		return 0, fmt.Errorf("redis: lookup %q: %w: index entry %v is not a Seq", id, errCorrupt, score)
	}
	return uint64(score), nil
}

// Head implements transport.Transport: the head recorded by the last append.
func (t *Transport) Head(ctx context.Context) (uint64, error) {
	if t.gate.Closed() {
		return 0, transport.ErrClosed
	}
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	head, err := t.head(cctx)
	if err != nil {
		return 0, t.fail(ctx, "head", err)
	}
	return head, nil
}

func (t *Transport) head(ctx context.Context) (uint64, error) {
	s, err := t.c.Do(ctx, t.c.B().Hget().Key(t.keys[2]).Field("head").Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	head, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: head %q in %s", errCorrupt, s, t.keys[2])
	}
	return head, nil
}

// watch tails the stream with XREAD BLOCK from the given Seq and feeds the tail, until ctx
// ends. After a failure it retries with backoff from where it was, so a node never skips an
// update (only the bounds can drop what it has not read yet).
func (t *Transport) watch(ctx context.Context, last uint64) {
	defer close(t.done)
	backoff := 50 * time.Millisecond
	var failed error // the failure being retried, nil when healthy
	for ctx.Err() == nil {
		if failed != nil {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			head, err := t.callHead(ctx)
			if err != nil {
				continue
			}
			if head < last {
				t.log.Error("the stream's head went back: Redis lost acknowledged updates (persistence off, or the keys were deleted); tailing from the new head",
					"was", last, "now", head)
				last = head
				t.tail.Reset(head)
			}
			t.log.Info("tailing the stream again", "after", last, "after_error", failed)
			failed, backoff = nil, 50*time.Millisecond
		}
		ups, first, err := t.xread(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if failed == nil {
				t.log.Warn("tailing the stream failed; retrying", "after", last, "err", err)
			}
			failed = err
			continue
		}
		if len(ups) > 0 {
			last = ups[len(ups)-1].Seq
			t.tail.Push(ups, first)
		}
	}
}

// xread waits up to blockTime for updates after last. The context of the blocking call is
// cancelled (not given a deadline) so that both Close and the timer end it at once.
func (t *Transport) xread(ctx context.Context, last uint64) ([]*transport.Update, uint64, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(blockTime+t.opts.Timeout, cancel)
	defer timer.Stop()
	cmd := t.c.B().Xread().Count(readCount).Block(blockTime.Milliseconds()).Streams().Key(t.keys[0], t.keys[4]).Id(streamID(last), streamID(last)).Build()
	res, err := t.c.Do(cctx, cmd).AsXReadSlices()
	if rueidis.IsRedisNil(err) {
		return nil, 0, nil // nothing within blockTime
	}
	if err != nil {
		return nil, 0, err
	}
	ups, first, err := decodeEntries(res[t.keys[0]])
	if err != nil {
		return nil, 0, err
	}
	sys, sysFirst, err := decodeEntries(res[t.keys[4]])
	if err != nil {
		return nil, 0, err
	}
	// Each stream gave its first readCount entries after last: so did both, merged. Of the
	// two f fields, that of the newer entry is the later bound.
	if len(sys) > 0 && (len(ups) == 0 || sys[len(sys)-1].Seq > ups[len(ups)-1].Seq) {
		first = sysFirst
	}
	return ring.Merge(ups, sys, readCount), first, nil
}

func (t *Transport) callHead(ctx context.Context) (uint64, error) {
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	return t.head(cctx)
}

// sleep waits for d or until ctx ends, and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// Close implements transport.Transport: waiting Reads return ErrClosed, Appends in flight
// finish, then the watcher stops and the connections close. Later calls return nil.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		t.gate.Close()
		t.tail.Close()
		t.gate.Wait()
		t.stop()
		<-t.done
		t.c.Close()
	})
	return nil
}
