package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
	"github.com/heraldhub/herald/transport/memory"
)

var errCrashed = errors.New("injected: the process died")

// stopApplying makes every later bbolt commit fail, as if the process had died before it: what
// is appended from now on exists only in the write-ahead log. Close then leaves the files as a
// killed process would.
func stopApplying(t *testing.T, tr *Transport) {
	t.Helper()
	if err := tr.flush(); err != nil { // the applier is idle: its hook may change
		t.Fatal(err)
	}
	tr.beforeCommit = func(*bbolt.Tx) error { return errCrashed }
}

// appendN appends n updates from 8 concurrent publishers and returns them in Seq order.
func appendN(t *testing.T, tr *Transport, prefix string, from, n int, data string) []*transport.Update {
	t.Helper()
	ups := make([]*transport.Update, n)
	for i := range ups {
		ups[i] = logtest.Upd(prefix, from+i)
		ups[i].Data = data
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				errs[i] = tr.Append(context.Background(), ups[i])
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %q: %v", ups[i].ID, err)
		}
	}
	sortBySeq(ups)
	return ups
}

func sortBySeq(ups []*transport.Update) {
	for i := 1; i < len(ups); i++ {
		for j := i; j > 0 && ups[j].Seq < ups[j-1].Seq; j-- {
			ups[j], ups[j-1] = ups[j-1], ups[j]
		}
	}
}

// Updates acknowledged but not yet in bbolt when the process dies are replayed from the
// write-ahead log at the next Open, exactly once and in order, also across the two files.
func TestCrashRecovery(t *testing.T) {
	path := tempPath(t)
	tr := openT(t, path, Options{})
	data := strings.Repeat("d", 2048)
	// More than walSwitchSize: appends move to the second file once bbolt has the first's.
	all := appendN(t, tr, "a", 0, 2500, data)
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	all = append(all, appendN(t, tr, "b", 0, 200, data)...)
	if tr.wal.cur != 1 {
		t.Fatalf("still appending to the first file after %d updates", len(all))
	}
	stopApplying(t, tr)
	all = append(all, appendN(t, tr, "c", 0, 300, data)...)
	if got := logtest.ReadAll(t, tr); !sameIDs(got, all) {
		t.Fatalf("before the crash: %d updates, want %d", len(got), len(all))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	tr = openT(t, path, Options{})
	if got := logtest.ReadAll(t, tr); !sameIDs(got, all) {
		t.Fatalf("after the crash: %d updates, want the %d acknowledged ones", len(got), len(all))
	}
	if n, ids := stored(t, tr); n != len(all) || ids != len(all) {
		t.Fatalf("after the crash: %d records and %d index entries in bbolt, want %d", n, ids, len(all))
	}
	// IDs replayed from the log are known: appending one again is refused.
	if err := tr.Append(context.Background(), logtest.Upd("c", 299)); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("append of a replayed id = %v, want ErrDuplicateID", err)
	}
	more := appendN(t, tr, "d", 0, 10, "")
	if more[0].Seq != all[len(all)-1].Seq+1 {
		t.Fatalf("first Seq after recovery %d, want %d", more[0].Seq, all[len(all)-1].Seq+1)
	}
}

// A write torn by the crash (its sync never returned, so it was never acknowledged) ends the
// log: Open keeps the records before it and appends after them.
func TestTornWrite(t *testing.T) {
	path := tempPath(t)
	tr := openT(t, path, Options{})
	stopApplying(t, tr)
	acked := appendN(t, tr, "t", 0, 50, "payload")
	wf := tr.wal.files[tr.wal.cur]
	name := wf.f.Name()
	end := wf.off
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// Half a record: a header announcing 100 bytes, then only some of them.
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := []byte{100, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 51, 0, 0, 0, 0, 0, 0, 0, 'x', 'y'}
	if _, err := f.WriteAt(torn, end); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	tr = openT(t, path, Options{})
	if got := logtest.ReadAll(t, tr); !sameIDs(got, acked) {
		t.Fatalf("after a torn write: %d updates, want the %d acknowledged ones", len(got), len(acked))
	}
	stopApplying(t, tr)
	more := appendN(t, tr, "u", 0, 5, "")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{})
	if got := logtest.ReadAll(t, tr); !sameIDs(got, append(acked, more...)) {
		t.Fatalf("after appending past the torn write: %d updates, want %d", len(got), len(acked)+len(more))
	}
}

// A new database file starts with an empty log, whatever a write-ahead log of the same name
// held: nothing of an earlier database comes back.
func TestNewFileIgnoresOldLog(t *testing.T) {
	path := tempPath(t)
	tr := openT(t, path, Options{})
	stopApplying(t, tr)
	appendN(t, tr, "old", 0, 20, "")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{})
	if h := logtest.Head(t, tr); h != 0 {
		t.Fatalf("Head of a new file = %d, want 0", h)
	}
	stopApplying(t, tr)
	fresh := appendN(t, tr, "new", 0, 3, "")
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{})
	if got := logtest.ReadAll(t, tr); !sameIDs(got, fresh) {
		t.Fatalf("read %d updates, want only the new file's %d", len(got), len(fresh))
	}
}

// While bbolt refuses commits, appends are acknowledged from the log and readable; once bbolt
// accepts them again the applier catches up by itself.
func TestApplyRetries(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{})
	var mu sync.Mutex
	failing := true
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	tr.beforeCommit = func(*bbolt.Tx) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return errors.New("injected: no space left on device")
		}
		return nil
	}
	ups := appendN(t, tr, "r", 0, 40, "")
	if err := tr.flush(); !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("flush while bbolt fails = %v, want ErrUnavailable with the cause", err)
	}
	if got := logtest.ReadAll(t, tr); !sameIDs(got, ups) {
		t.Fatalf("read %d updates while bbolt fails, want %d", len(got), len(ups))
	}
	if seq, err := tr.Lookup(ctx, ups[7].ID); err != nil || seq != ups[7].Seq {
		t.Fatalf("Lookup while bbolt fails = %d, %v; want %d", seq, err, ups[7].Seq)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for tr.flush() != nil { // the retry comes within maxRetry
		if time.Now().After(deadline) {
			t.Fatal("the applier did not retry within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n, _ := stored(t, tr); n != len(ups) {
		t.Fatalf("%d records in bbolt after it recovered, want %d", n, len(ups))
	}
}

// walBytes encodes records as the committer writes them, for the scan tests.
func walBytes(gen uint32, first uint64, payloads ...string) []byte {
	w := &wal{gen: gen}
	for i, p := range payloads {
		w.add(first+uint64(i), []byte(p))
	}
	return w.buf
}

func walSkipBytes(gen uint32, from, to uint64) []byte {
	w := &wal{gen: gen}
	w.skip(from, to)
	return w.buf
}

func TestScanWAL(t *testing.T) {
	good := walBytes(1, 7, "a", "bb", "ccc")
	for _, tc := range []struct {
		name string
		data []byte
		want int
	}{
		{"empty", nil, 0},
		{"three records then zeros", append(append([]byte{}, good...), make([]byte, 64)...), 3},
		{"torn last record", good[:len(good)-1], 2},
		{"bad checksum", func() []byte { b := append([]byte{}, good...); b[len(b)-1] ^= 1; return b }(), 2},
		{"older records after newer", append(append([]byte{}, good...), walBytes(1, 3, "old")...), 3},
		{"gap in seqs", append(append([]byte{}, good...), walBytes(1, 11, "x")...), 3},
		{"skip then the next seq", append(append(append([]byte{}, good...), walSkipBytes(1, 10, 14)...), walBytes(1, 15, "x")...), 5},
		{"skip then a seq past it", append(append(append([]byte{}, good...), walSkipBytes(1, 10, 14)...), walBytes(1, 16, "x")...), 4},
		{"skip not following", append(append([]byte{}, good...), walSkipBytes(1, 11, 14)...), 3},
		{"skip ending before it starts", append(append([]byte{}, good...), walSkipBytes(1, 10, 9)...), 3},
		{"lower generation", append(walBytes(2, 1, "a"), walBytes(1, 2, "failed")...), 1},
		{"higher generation", append(walBytes(1, 1, "a"), walBytes(2, 2, "retried")...), 2},
		{"length past the end", []byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 0},
	} {
		got := scanWAL(tc.data)
		if len(got) != tc.want {
			t.Errorf("%s: %d records, want %d", tc.name, len(got), tc.want)
		}
	}
	got := scanWAL(good)
	if got[0].seq != 7 || string(got[2].payload) != "ccc" || got[1].gen != 1 {
		t.Fatalf("scanned %+v", got)
	}
}

func FuzzScanWAL(f *testing.F) {
	f.Add(walBytes(1, 1, "a", "bb"))
	f.Add(append(walBytes(3, 9, "x"), walBytes(2, 10, "y")...))
	f.Add([]byte{5, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		recs := scanWAL(b)
		// What a scan accepts is consecutive and re-encodes to the bytes it came from.
		if len(recs) == 0 {
			return
		}
		w := &wal{}
		for i, r := range recs {
			if i > 0 && (r.seq != recs[i-1].next() || r.gen < recs[i-1].gen) {
				t.Fatalf("record %d: seq %d gen %d after seq %d gen %d", i, r.seq, r.gen, recs[i-1].seq, recs[i-1].gen)
			}
			w.gen = r.gen
			w.add(r.seq, r.payload)
		}
		if !bytes.Equal(w.buf, b[:len(w.buf)]) {
			t.Fatalf("records re-encode to other bytes")
		}
	})
}

// A log that cannot be opened or read fails Open with an error, and leaves nothing held: the
// file opens again once the cause is gone.
func TestOpenWALErrors(t *testing.T) {
	path := tempPath(t)
	tr := openT(t, path, Options{})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	logs := walPaths(path, DefaultBucketName)
	if err := os.Remove(logs[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logs[0], 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "write-ahead log") {
		t.Fatalf("Open with a directory for a log file = %v, want an error naming the write-ahead log", err)
	}
	if err := os.Remove(logs[0]); err != nil {
		t.Fatal(err)
	}
	// A log whose first update is not the one after bbolt's head lost updates: refuse it.
	if err := os.WriteFile(logs[0], walBytes(1, 5, "x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "lacks update 1") {
		t.Fatalf("Open of a log with a gap = %v, want an error naming update 1", err)
	}
	if err := os.Remove(logs[0]); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{LockTimeout: 100 * time.Millisecond}) // the lock was released
	if h := logtest.Head(t, tr); h != 0 {
		t.Fatalf("Head = %d, want 0", h)
	}
}

// The applier goes back to a backlog left after a failed and then a smaller successful
// commit even when no new append pokes it (appends wait for room meanwhile).
func TestApplierResumesAfterRetry(t *testing.T) {
	tr := openT(t, tempPath(t), Options{})
	tr.maxPending = 4
	var mu sync.Mutex
	calls := 0
	retried := make(chan struct{})
	tr.beforeCommit = func(*bbolt.Tx) error {
		mu.Lock()
		defer mu.Unlock()
		switch calls++; calls {
		case 1:
			return errors.New("injected: transient failure")
		case 2:
			close(retried)
		}
		return nil
	}
	batch := make([]*request, 40)
	for i := range batch {
		u := logtest.Upd("w", i)
		batch[i] = &request{ctx: context.Background(), u: u, enc: encodeUpdate(u), cost: memory.Cost(u), done: make(chan error, 1)}
	}
	tr.commit(batch) // one batch, one poke; the first bbolt commit fails, the retry takes 20
	for _, r := range batch {
		if err := <-r.done; err != nil {
			t.Fatal(err)
		}
	}
	<-retried
	// The retry lands (and clears the failure) on the applier's time, late on a loaded
	// machine: an append before that is refused by design. Then 20 updates still wait.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		tr.mu.Lock()
		failing := tr.applyErr != nil
		tr.mu.Unlock()
		if !failing {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the retried commit did not clear the failure within 10 s")
		}
	}
	res := make(chan error, 1)
	go func() { res <- tr.Append(context.Background(), logtest.Upd("late", 0)) }()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("append after the backlog = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append waited 10 s for a backlog that the applier left alone")
	}
}

// Close's last commit to bbolt failing wakes a Backup waiting for it, with an error.
func TestFlushDuringFailingClose(t *testing.T) {
	tr := openT(t, tempPath(t), Options{})
	stopApplying(t, tr)
	appendN(t, tr, "x", 0, 3, "")
	res := make(chan error, 1)
	go func() { res <- tr.flush() }()
	time.Sleep(20 * time.Millisecond) // flush is waiting (or has returned the commit's error)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("flush succeeded although bbolt refused every commit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("flush still waiting 5 s after Close")
	}
}

// When the records of a failed write cannot be erased either, the log refuses every later
// append until the hub restarts: a later write could otherwise make them look acknowledged.
func TestUnerasableFailedWrite(t *testing.T) {
	tr := openT(t, tempPath(t), Options{})
	appendN(t, tr, "a", 0, 3, "")
	tr.beforeSync = func() error {
		_ = tr.wal.files[tr.wal.cur].f.Close() // the erasing write and sync fail too
		return errors.New("injected: input/output error")
	}
	err := tr.Append(context.Background(), logtest.Upd("failed", 0))
	if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("append whose sync fails = %v, want ErrUnavailable with the cause", err)
	}
	tr.beforeSync = nil
	err = tr.Append(context.Background(), logtest.Upd("later", 0))
	if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "until the hub restarts") {
		t.Fatalf("append after an unerasable failed write = %v, want ErrUnavailable saying a restart is needed", err)
	}
}

// copyFiles copies the named files from one directory to another.
func copyFiles(t *testing.T, from, to string, names ...string) {
	t.Helper()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(from, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// With a sync interval, a power loss keeps of the file being appended to only what the kernel
// happened to write: from some point on, or in some pages, it holds what it held before (here
// the records of its previous use), or it is cut short. Whatever is lost, Open succeeds and
// the log is a prefix of the acknowledged updates, with every update bbolt or the older
// (synced) file holds, and appends go on after it.
func TestSyncIntervalPowerLoss(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "herald.db")
	// The interval never passes during the test: only the switches of files sync.
	tr := openT(t, path, Options{SyncInterval: time.Hour})
	var syncs atomic.Int32
	tr.beforeSync = func() error { syncs.Add(1); return nil }
	logs := walPaths(path, DefaultBucketName)
	data := strings.Repeat("d", 8192) // few updates fill a file
	switched := func(all []*transport.Update, cur int, n int32) {
		t.Helper()
		if tr.wal.cur != cur || syncs.Load() != n {
			t.Fatalf("after %d updates: appending to file %d after %d syncs, want file %d after %d (one per switch)",
				len(all), tr.wal.cur, syncs.Load(), cur, n)
		}
	}
	all := appendN(t, tr, "a", 0, 650, data) // past walSwitchSize in the first file
	switched(all, 1, 1)
	before, err := os.ReadFile(logs[0]) // what the first file holds when it is reused
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	all = append(all, appendN(t, tr, "b", 0, 500, data)...) // past walSwitchSize in the second
	switched(all, 0, 2)
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	all = append(all, appendN(t, tr, "c", 0, 50, data)...)
	stopApplying(t, tr) // bbolt holds a, b and c; the first file holds b's end, c and d, not synced
	kept := len(all)
	all = append(all, appendN(t, tr, "d", 0, 80, data)...)
	end := tr.wal.files[0].off
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	names := []string{filepath.Base(path), filepath.Base(logs[0]), filepath.Base(logs[1])}

	type loss struct {
		name       string
		from, to   int64 // the bytes in [from, to) hold what they held before the reuse
		truncateAt int64 // if positive, the file ends there
	}
	losses := []loss{
		{name: "everything survived"},
		{name: "nothing survived", from: 0, to: end},
		{name: "half a record survived", from: walHeaderLen + 100, to: end},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 4 {
		c := rng.Int64N(end)
		losses = append(losses, loss{name: fmt.Sprintf("lost from %d", c), from: c, to: end})
	}
	for range 3 {
		h := rng.Int64N(end/4096) * 4096
		losses = append(losses, loss{name: fmt.Sprintf("page at %d lost", h), from: h, to: h + 4096})
	}
	for range 2 {
		c := 1 + rng.Int64N(end)
		losses = append(losses, loss{name: fmt.Sprintf("cut at %d", c), truncateAt: c})
	}
	for _, l := range losses {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel() // each on its own copy of the files
			crashed := t.TempDir()
			copyFiles(t, dir, crashed, names...)
			old := make([]byte, l.to-l.from) // zeros where the file was shorter
			if l.from < int64(len(before)) {
				copy(old, before[l.from:min(l.to, int64(len(before)))])
			}
			b := bytes.Clone(written)
			copy(b[l.from:l.to], old)
			if l.truncateAt > 0 {
				b = b[:l.truncateAt]
			}
			if err := os.WriteFile(filepath.Join(crashed, names[1]), b, 0o600); err != nil {
				t.Fatal(err)
			}

			tr := openT(t, filepath.Join(crashed, names[0]), Options{SyncInterval: time.Hour})
			got := logtest.ReadAll(t, tr)
			if len(got) < kept || len(got) > len(all) || !sameIDs(got, all[:len(got)]) {
				t.Fatalf("after the power loss: %d updates, want a prefix of the %d acknowledged with at least %d", len(got), len(all), kept)
			}
			switch {
			case l.from == l.to && l.truncateAt == 0 && len(got) != len(all):
				t.Fatalf("nothing lost, yet %d updates of %d came back", len(got), len(all))
			case l.from == 0 && l.to == end && len(got) != kept:
				t.Fatalf("the whole file lost, yet %d updates came back, want the %d in bbolt", len(got), kept)
			}
			more := appendN(t, tr, "e", 0, 3, "")
			if more[0].Seq != uint64(len(got))+1 {
				t.Fatalf("first Seq after the power loss %d, want %d", more[0].Seq, len(got)+1)
			}
			t.Logf("%d of %d acknowledged updates survived", len(got), len(all))
		})
	}
}

// With a sync interval an append returns before any sync; the log is synced once the interval
// has passed after a write, and by Close. The sync takes every write made since the last one.
func TestSyncIntervalSyncsLater(t *testing.T) {
	ctx := context.Background()
	const interval = 200 * time.Millisecond
	tr := openT(t, tempPath(t), Options{SyncInterval: interval})
	synced := make(chan time.Time, 10)
	tr.beforeSync = func() error { synced <- time.Now(); return nil }
	start := time.Now()
	if err := tr.Append(ctx, logtest.Upd("s", 0)); err != nil { // one write: one sync
		t.Fatal(err)
	}
	if time.Since(start) < interval && len(synced) != 0 {
		t.Fatal("an append waited for a sync")
	}
	select {
	case at := <-synced:
		if d := at.Sub(start); d < interval {
			t.Fatalf("synced %v after the append, before the interval of %v", d, interval)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync 10 s after the append")
	}
	// Nothing written: no sync.
	time.Sleep(2 * interval)
	if len(synced) != 0 {
		t.Fatal("synced with nothing written")
	}

	tr = openT(t, tempPath(t), Options{SyncInterval: time.Hour}) // only Close syncs
	tr.beforeSync = func() error { synced <- time.Now(); return nil }
	if err := tr.Append(ctx, logtest.Upd("s", 1)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if len(synced) != 1 {
		t.Fatalf("%d syncs at Close, want 1", len(synced))
	}
}

// A failing background sync leaves the kernel's copy of the log in doubt: every later append
// fails until a restart, while the updates already acknowledged stay readable and reach bbolt.
func TestSyncIntervalSyncFailure(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{SyncInterval: 10 * time.Millisecond})
	var failing atomic.Bool
	failed := make(chan struct{})
	tr.beforeSync = func() error {
		if !failing.Load() {
			return nil
		}
		close(failed) // once: the log syncs nothing more
		return errors.New("injected: input/output error")
	}
	acked := appendN(t, tr, "a", 0, 10, "")
	failing.Store(true)
	acked = append(acked, appendN(t, tr, "b", 0, 1, "")...) // to be synced
	<-failed                                                // the committer goes on only once the failure is recorded
	err := tr.Append(ctx, logtest.Upd("later", 0))
	if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "until the hub restarts") ||
		!strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("append after a failed sync = %v, want ErrUnavailable saying a restart is needed, with the cause", err)
	}
	if got := logtest.ReadAll(t, tr); !sameIDs(got, acked) {
		t.Fatalf("read %d updates after the failed sync, want the %d acknowledged", len(got), len(acked))
	}
	if n, _ := stored(t, tr); n != len(acked) {
		t.Fatalf("%d updates in bbolt, want the %d acknowledged", n, len(acked))
	}
}

// An append that must wait for bbolt to catch up syncs the log first: the wait may outlast the
// interval, and the committer cannot sync while it waits.
func TestSyncIntervalSyncsBeforeWaiting(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{SyncInterval: time.Hour})
	tr.maxPending = 4
	var syncs atomic.Int32
	tr.beforeSync = func() error { syncs.Add(1); return nil }
	if err := tr.flush(); err != nil { // the applier is idle: its hook may change
		t.Fatal(err)
	}
	release := make(chan struct{})
	tr.beforeCommit = func(*bbolt.Tx) error { <-release; return nil }
	for i := range 4 {
		if err := tr.Append(ctx, logtest.Upd("w", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d syncs before the backlog bound, want none", n)
	}
	res := make(chan error, 1)
	go func() { res <- tr.Append(ctx, logtest.Upd("w", 4)) }()
	deadline := time.Now().Add(10 * time.Second)
	for syncs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no sync 10 s after an append started waiting for bbolt")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-res:
		t.Fatalf("append returned %v while bbolt held none of the backlog", err)
	default:
	}
	close(release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}
