package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/goleak"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
	"github.com/heraldhub/herald/transport/memory"
	"github.com/heraldhub/herald/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func factory(base Options) transporttest.Factory {
	return transporttest.Factory{
		NewKey: func(t *testing.T) string { return filepath.Join(t.TempDir(), "herald.db") },
		Open: func(t *testing.T, path string, opts transporttest.Options) transport.Transport {
			o := base
			o.Size, o.MaxBytes, o.SystemSize = opts.Size, opts.MaxBytes, opts.SystemSize
			tr, err := Open(path, o)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return tr
		},
		Persistent:  true,
		SystemFlood: systemFlood,
	}
}

// systemFlood is the size of the conformance suite's flood of system updates: the default
// 250 000, or 100 000 under the race detector, where each append's index check in bbolt
// costs tenfold (it then takes about 10 s on 2 cores).
var systemFlood = map[bool]int{false: transporttest.DefaultSystemFlood, true: 100_000}[raceEnabled]

func TestConformance(t *testing.T) {
	transporttest.Run(t, factory(Options{}))
}

// The bounds must hold even when dropped records stay in the file until a forced cleanup (the
// default run deletes them at every commit).
func TestConformanceForcedCleanupOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("the default conformance run is enough with -short")
	}
	f := factory(Options{CleanupFrequency: -1})
	f.SystemFlood = 10_000 // system updates never reach bbolt: its cleanup does not matter to them
	transporttest.Run(t, f)
}

// Acknowledging before the sync changes nothing that a reader or a restart can see.
func TestConformanceSyncInterval(t *testing.T) {
	if testing.Short() {
		t.Skip("the default conformance run is enough with -short")
	}
	f := factory(Options{SyncInterval: 5 * time.Millisecond})
	f.SystemFlood = 10_000 // system updates never reach the log: its syncing does not matter to them
	transporttest.Run(t, f)
}

// ---- helpers ----

func openT(t testing.TB, path string, opts Options) *Transport {
	t.Helper()
	tr, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "herald.db")
}

// bulkAppend stores ups through the committer's own path, in batches far larger than the
// committer's, to build a large history quickly, and waits until bbolt holds them. No Append
// may run concurrently.
func bulkAppend(t testing.TB, tr *Transport, ups []*transport.Update) {
	t.Helper()
	for len(ups) > 0 {
		n := min(len(ups), 20_000)
		batch := make([]*request, n)
		for i, u := range ups[:n] {
			batch[i] = &request{ctx: context.Background(), u: u, enc: encodeUpdate(u), cost: memory.Cost(u), done: make(chan error, 1)}
		}
		tr.commit(batch)
		for _, r := range batch {
			if err := <-r.done; err != nil {
				t.Fatalf("bulk append %q: %v", r.u.ID, err)
			}
		}
		ups = ups[n:]
	}
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
}

// stored counts the records physically present in the file, once the applier has committed
// every acknowledged update: updates and index entries.
func stored(t testing.TB, tr *Transport) (updates, ids int) {
	t.Helper()
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	err := tr.view(func(b buckets) error {
		updates = b.seqs.Stats().KeyN
		ids = b.ids.Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return updates, ids
}

// ---- tests ----

func TestParseURL(t *testing.T) {
	tests := []struct {
		url     string
		path    string
		opts    Options
		wantErr string // substring; empty means success
	}{
		{url: "bolt:///var/lib/herald/updates.db", path: "/var/lib/herald/updates.db"},
		{url: "bolt://herald.db", path: "herald.db"},
		{url: "bolt://data/herald.db", path: "data/herald.db"},
		{url: "bolt:herald.db", path: "herald.db"},
		{url: "BOLT://herald.db", path: "herald.db"},
		{url: "bolt://data/my%20dir/h.db", path: "data/my dir/h.db"},
		{url: "bolt:///tmp/x.db?bucket_name=mercure&size=1000&cleanup_frequency=0.5", path: "/tmp/x.db",
			opts: Options{BucketName: "mercure", Size: 1000, CleanupFrequency: 0.5}},
		{url: "bolt://x.db?cleanup_frequency=0", path: "x.db", opts: Options{CleanupFrequency: -1}},
		{url: "bolt://x.db?cleanup_frequency=1", path: "x.db", opts: Options{CleanupFrequency: 1}},
		{url: "bolt://x.db?max_bytes=1048576&lock_timeout=250ms&max_file_size=1073741824", path: "x.db",
			opts: Options{MaxBytes: 1 << 20, LockTimeout: 250 * time.Millisecond, MaxFileSize: 1 << 30}},
		{url: "bolt://x.db?size=0", path: "x.db"},
		{url: "bolt://x.db?sync_interval=100ms", path: "x.db", opts: Options{SyncInterval: 100 * time.Millisecond}},
		{url: "bolt://x.db?sync_interval=0", path: "x.db", opts: Options{SyncInterval: -1}},
		{url: "bolt://x.db?sync_interval=-1s", wantErr: "sync_interval"},
		{url: "bolt://x.db?sync_interval=100", wantErr: "sync_interval"},
		{url: "bolt://x.db?system_size=500", path: "x.db", opts: Options{SystemSize: 500}},
		{url: "bolt://", wantErr: "no file path"},
		{url: "bolt:///", path: "/"}, // a directory: Open reports it
		{url: "redis://localhost/0", wantErr: `want "bolt"`},
		{url: "bolt://x.db?size=-1", wantErr: "size"},
		{url: "bolt://x.db?size=ten", wantErr: "size"},
		{url: "bolt://x.db?cleanup_frequency=1.5", wantErr: "cleanup_frequency"},
		{url: "bolt://x.db?cleanup_frequency=NaN", wantErr: "cleanup_frequency"},
		{url: "bolt://x.db?max_bytes=-5", wantErr: "max_bytes"},
		{url: "bolt://x.db?lock_timeout=5", wantErr: "lock_timeout"},
		{url: "bolt://x.db?bucket_name=", wantErr: "bucket_name"},
		{url: "bolt://x.db?size=1&size=2", wantErr: "size given 2 times"},
		{url: "bolt://x.db?sise=10&colour=red&size=3", wantErr: "unknown parameter(s) colour, sise"},
		{url: "bolt://user:pw@x.db", wantErr: "user info"},
		{url: "bolt://x.db#frag", wantErr: "fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatalf("url.Parse: %v", err)
			}
			path, opts, err := ParseURL(u)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q", tt.url, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if path != tt.path || opts != tt.opts {
				t.Fatalf("ParseURL(%q) = %q, %+v; want %q, %+v", tt.url, path, opts, tt.path, tt.opts)
			}
		})
	}
}

func TestLockedByAnotherOpen(t *testing.T) {
	path := tempPath(t)
	first := openT(t, path, Options{})
	start := time.Now()
	second, err := Open(path, Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		_ = second.Close()
		t.Fatal("a second Open of the same file succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) || !strings.Contains(err.Error(), "is locked by another process") ||
		!strings.Contains(err.Error(), path) {
		t.Fatalf("second Open error = %v; want it to name the file and say it is locked", err)
	}
	t.Log(err)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("second Open took %v to fail", d)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openT(t, path, Options{LockTimeout: 50 * time.Millisecond}) // released by Close
}

func TestCorruptFile(t *testing.T) {
	garbage := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	valid := func(t *testing.T) []byte { // a real log with a few updates
		path := tempPath(t)
		tr := openT(t, path, Options{})
		for i := range 5 {
			if err := tr.Append(context.Background(), logtest.Upd("c", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		content func(t *testing.T) []byte
		wantErr string
	}{
		{"random bytes", func(*testing.T) []byte { return garbage }, "not a readable bbolt database"},
		{"short text", func(*testing.T) []byte { return []byte("hello, world\n") }, "open"},
		{"zeros", func(*testing.T) []byte { return make([]byte, 16<<10) }, "not a readable bbolt database"},
		{"both meta pages damaged", func(t *testing.T) []byte {
			b := valid(t)
			copy(b[16:4096], garbage)
			copy(b[4096+16:8192], garbage)
			return b
		}, "not a readable bbolt database"},
		{"data pages damaged", func(t *testing.T) []byte {
			b := valid(t)
			copy(b[8192:], garbage)
			return b
		}, "open"},
		{"foreign bucket", func(t *testing.T) []byte {
			path := tempPath(t)
			db, err := bbolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucket([]byte(DefaultBucketName))
				if err != nil {
					return err
				}
				return b.Put([]byte("some-key"), []byte(`{"json":1}`))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			return b
		}, "does not hold a Herald log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tempPath(t)
			if err := os.WriteFile(path, tt.content(t), 0o600); err != nil {
				t.Fatal(err)
			}
			tr, err := Open(path, Options{})
			if err == nil {
				_ = tr.Close()
				t.Fatal("Open of a damaged file succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open error = %v; want it to name the file and contain %q", err, tt.wantErr)
			}
			t.Log(err)
			if strings.Contains(err.Error(), "unreadable file") {
				return // bbolt panicked: its mapping keeps the file locked until the process exits
			}
			// A failed Open leaves no lock behind: once the same file (same inode) is repaired,
			// it opens.
			if err := os.WriteFile(path, valid(t), 0o600); err != nil {
				t.Fatal(err)
			}
			if h := logtest.Head(t, openT(t, path, Options{LockTimeout: 50 * time.Millisecond})); h != 5 {
				t.Fatalf("repaired file has head %d, want 5", h)
			}
		})
	}

	t.Run("damaged meta record", func(t *testing.T) {
		path := tempPath(t)
		if err := os.WriteFile(path, valid(t), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte(DefaultBucketName)).Put(metaKey, []byte{9, 9, 9})
		})
		_ = db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if tr, err := Open(path, Options{}); err == nil || !errors.Is(err, errCorrupt) {
			if tr != nil {
				_ = tr.Close()
			}
			t.Fatalf("Open with a damaged meta record = %v, want a corrupt record error", err)
		}
	})

	t.Run("not a file", func(t *testing.T) {
		if tr, err := Open(t.TempDir(), Options{}); err == nil {
			_ = tr.Close()
			t.Fatal("Open of a directory succeeded")
		}
	})
}

func TestBoundsAcrossRestart(t *testing.T) {
	path := tempPath(t)
	ctx := context.Background()
	tr := openT(t, path, Options{Size: 100, CleanupFrequency: -1})
	var all []*transport.Update
	for i := range 150 {
		u := logtest.Upd("r", i)
		if err := tr.Append(ctx, u); err != nil {
			t.Fatal(err)
		}
		all = append(all, u)
	}
	if got := logtest.ReadAll(t, tr); len(got) != 100 || got[0].ID != "r-50" {
		t.Fatalf("before restart: %d updates from %q, want 100 from r-50", len(got), got[0].ID)
	}
	if n, _ := stored(t, tr); n != 150 {
		t.Fatalf("%d records stored with cleanup left to forced runs, want 150 (50 awaiting cleanup)", n)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	// Same bounds: same log, and the dropped records are cleaned up at Open.
	tr = openT(t, path, Options{Size: 100})
	if got := logtest.ReadAll(t, tr); len(got) != 100 || got[0].ID != "r-50" {
		t.Fatalf("after restart: %d updates from %q, want 100 from r-50", len(got), got[0].ID)
	}
	if n, ids := stored(t, tr); n != 100 || ids != 100 {
		t.Fatalf("after restart: %d records and %d index entries stored, want 100 of each", n, ids)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	// Lower bounds apply at Open.
	tr = openT(t, path, Options{Size: 30})
	got := logtest.ReadAll(t, tr)
	if len(got) != 30 || got[0].ID != "r-120" {
		t.Fatalf("with Size lowered to 30: %d updates from %q, want 30 from r-120", len(got), got[0].ID)
	}
	if _, err := tr.Lookup(ctx, "r-119"); !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup of a dropped id = %v, want ErrUnknownID", err)
	}
	if n, ids := stored(t, tr); n != 30 || ids != 30 {
		t.Fatalf("with Size lowered to 30: %d records and %d index entries stored", n, ids)
	}
	if h := logtest.Head(t, tr); h != all[149].Seq {
		t.Fatalf("Head = %d, want %d", h, all[149].Seq)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	// A byte bound lowered at Open; the meta tallies survive exactly.
	tr = openT(t, path, Options{Size: 30, MaxBytes: 10 * memory.Cost(all[149])})
	if got := logtest.ReadAll(t, tr); len(got) != 10 || got[9].ID != "r-149" {
		t.Fatalf("with MaxBytes for 10 updates: %d updates, want the last 10", len(got))
	}
	tr.view(func(b buckets) error {
		m, err := b.meta()
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, u := range logtest.ReadAll(t, tr) {
			sum += memory.Cost(u)
		}
		if m.bytes != sum || m.garbageBytes != 0 || m.base != m.first {
			t.Errorf("meta %+v, want bytes %d and no garbage", m, sum)
		}
		return nil
	})
}

// Records of dropped updates wait for cleanup, but never beyond the forced threshold, and an ID
// reused while its old record still waits keeps its new index entry.
func TestCleanup(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{Size: 10, CleanupFrequency: -1})
	var ups []*transport.Update
	for i := range 3000 {
		ups = append(ups, logtest.Upd("g", i))
	}
	bulkAppend(t, tr, ups[:2000])
	n, _ := stored(t, tr)
	if n > 10+forceCleanupCount {
		t.Fatalf("%d records stored with Size 10: forced cleanup did not run", n)
	}
	// "g-1995" is retained; "g-1000" was dropped and its record may still be stored.
	again := logtest.Upd("g", 1000)
	if err := tr.Append(ctx, again); err != nil {
		t.Fatalf("re-append of a dropped id: %v", err)
	}
	if err := tr.Append(ctx, logtest.Upd("g", 1995)); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("re-append of a retained id = %v, want ErrDuplicateID", err)
	}
	bulkAppend(t, tr, ups[2000:2005])
	if n, _ := stored(t, tr); n <= 10 {
		t.Fatal("dropped records were deleted before the forced threshold")
	}
	// Force the next bbolt commit to clean up. The applier is idle: stored waited for it, and
	// no Append runs.
	tr.st.garbageBytes = tr.opts.MaxBytes
	bulkAppend(t, tr, ups[2005:2006])
	if n, ids := stored(t, tr); n != 10 || ids != 10 {
		t.Fatalf("after cleanup: %d records and %d index entries, want 10 of each", n, ids)
	}
	if seq, err := tr.Lookup(ctx, again.ID); err != nil || seq != again.Seq {
		t.Fatalf("Lookup(%q) = %d, %v; want %d (cleanup removed the new index entry?)", again.ID, seq, err, again.Seq)
	}
}

// A failing write-ahead log sync fails the whole batch, and nothing of it is visible.
func TestLogSyncFailure(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{})
	ok := logtest.Upd("f", 0)
	if err := tr.Append(ctx, ok); err != nil {
		t.Fatal(err)
	}
	var fail sync.Mutex // held while commits must fail
	failing := true
	tr.beforeSync = func() error {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return errors.New("injected: no space left on device")
		}
		return nil
	}

	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() { errs[i] = tr.Append(ctx, logtest.Upd("f", 1+i)) })
	}
	// A duplicate inside a failing batch is not reported as a duplicate: nothing was stored.
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
			t.Fatalf("append %d during failing commits = %v, want ErrUnavailable with the cause", i, err)
		}
	}
	if h := logtest.Head(t, tr); h != ok.Seq {
		t.Fatalf("Head = %d after failed commits, want %d", h, ok.Seq)
	}
	if got := logtest.ReadAll(t, tr); len(got) != 1 {
		t.Fatalf("Read after failed commits: %d updates, want 1", len(got))
	}
	if _, err := tr.Lookup(ctx, "f-1"); !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup of a failed append = %v, want ErrUnknownID", err)
	}

	fail.Lock()
	failing = false
	fail.Unlock()
	retry := logtest.Upd("f", 1)
	if err := tr.Append(ctx, retry); err != nil {
		t.Fatalf("retry after the store recovered: %v", err)
	}
	if retry.Seq <= ok.Seq {
		t.Fatalf("retry got Seq %d, want > %d", retry.Seq, ok.Seq)
	}
	if got := logtest.ReadAll(t, tr); len(got) != 2 || got[1].ID != "f-1" {
		t.Fatalf("Read after recovery: %d updates", len(got))
	}
}

// A real failing bbolt commit: the file may not grow past MaxFileSize, as on a full disk.
// Appends go on in the write-ahead log until the updates waiting for bbolt reach their bound,
// then fail with the cause; every acknowledged update stays readable, and lands in bbolt once
// the file may grow.
func TestFileFull(t *testing.T) {
	ctx := context.Background()
	path := tempPath(t)
	tr := openT(t, path, Options{MaxFileSize: 1 << 20})
	tr.maxPendingBytes = 256 << 10
	data := strings.Repeat("x", 16<<10)
	var acked []*transport.Update
	var err error
	for i := range 1000 {
		u := logtest.Upd("full", i)
		u.Data = data
		if err = tr.Append(ctx, u); err != nil {
			break
		}
		acked = append(acked, u)
	}
	if err == nil {
		t.Fatal("1000 appends of 16 KiB fitted in a 1 MiB file and 256 KiB of backlog")
	}
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, berrors.ErrMaxSizeReached) {
		t.Fatalf("append to a full file = %v, want ErrUnavailable wrapping bbolt's ErrMaxSizeReached", err)
	}
	if len(acked) < 16 {
		t.Fatalf("only %d appends fitted", len(acked))
	}
	last := acked[len(acked)-1]
	if h := logtest.Head(t, tr); h != last.Seq {
		t.Fatalf("Head = %d after a failed append, want %d", h, last.Seq)
	}
	if got := logtest.ReadAll(t, tr); !sameIDs(got, acked) {
		t.Fatalf("read %d updates, want the %d acknowledged ones", len(got), len(acked))
	}
	if seq, err := tr.Lookup(ctx, last.ID); err != nil || seq != last.Seq {
		t.Fatalf("Lookup of the last acknowledged update = %d, %v", seq, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	tr = openT(t, path, Options{}) // the file may grow: Open commits the backlog to bbolt
	if again := logtest.ReadAll(t, tr); !sameIDs(again, acked) {
		t.Fatalf("after reopening: %d updates, want the %d acknowledged ones", len(again), len(acked))
	}
	if n, _ := stored(t, tr); n != len(acked) {
		t.Fatalf("after reopening: %d records in bbolt, want %d", n, len(acked))
	}
}

func sameIDs(got, want []*transport.Update) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].ID != want[i].ID || got[i].Seq != want[i].Seq {
			return false
		}
	}
	return true
}

// A long history costs nothing to Open, read from near its end, or look up in: no scan.
func TestLargeHistory(t *testing.T) {
	n := 200_000
	if testing.Short() || raceEnabled {
		n = 50_000
	}
	ctx := context.Background()
	path := tempPath(t)
	tr := openT(t, path, Options{Size: n})
	ups := make([]*transport.Update, n)
	for i := range ups {
		ups[i] = logtest.Upd("big", i)
	}
	tr.db.NoSync = true // building the fixture needs no durability; one Sync at the end
	bulkAppend(t, tr, ups)
	if err := tr.db.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	tr = openT(t, path, Options{Size: n})
	openTime := time.Since(start)

	// The cost of one full scan, as the yardstick.
	start = time.Now()
	var scanned int
	tr.view(func(b buckets) error {
		return b.seqs.ForEach(func(k, v []byte) error {
			seq, _ := keySeq(k)
			if _, err := decodeUpdate(seq, v); err != nil {
				return err
			}
			scanned++
			return nil
		})
	})
	scan := time.Since(start)
	if scanned != n {
		t.Fatalf("scanned %d updates, want %d", scanned, n)
	}

	const ops = 200
	start = time.Now()
	for i := range ops {
		u := ups[n-1-i*7]
		seq, err := tr.Lookup(ctx, u.ID)
		if err != nil || seq != u.Seq {
			t.Fatalf("Lookup(%q) = %d, %v; want %d", u.ID, seq, err, u.Seq)
		}
		page, err := tr.Read(ctx, seq-10, 10, false)
		if err != nil || len(page) != 10 || page[9].ID != u.ID {
			t.Fatalf("Read near the end: %d updates, %v", len(page), err)
		}
	}
	perOp := time.Since(start) / ops
	t.Logf("%d updates: open %v, full scan %v, Lookup+Read near the end %v", n, openTime, scan, perOp)
	if perOp > scan/50 {
		t.Fatalf("Lookup+Read near the end takes %v, more than 1/50 of a full scan (%v): it scans", perOp, scan)
	}
	if openTime > scan {
		t.Fatalf("Open takes %v, longer than a full scan (%v)", openTime, scan)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	tr := openT(t, tempPath(t), Options{})
	for i := range 20 {
		if err := tr.Append(ctx, logtest.Upd("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := tr.Backup(&buf); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	copyPath := tempPath(t)
	if err := os.WriteFile(copyPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	restored := openT(t, copyPath, Options{})
	want, got := logtest.ReadAll(t, tr), logtest.ReadAll(t, restored)
	if len(got) != len(want) || logtest.Head(t, restored) != logtest.Head(t, tr) {
		t.Fatalf("backup holds %d updates, head %d; want %d, head %d", len(got), logtest.Head(t, restored), len(want), logtest.Head(t, tr))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Backup(&buf); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Backup after Close = %v, want ErrClosed", err)
	}
}

func TestAppendRejects(t *testing.T) {
	tr := openT(t, tempPath(t), Options{})
	if err := tr.Append(context.Background(), &transport.Update{Topics: []string{"t"}}); err == nil {
		t.Fatal("Append without an id succeeded")
	}
	if err := tr.Append(context.Background(), &transport.Update{ID: strings.Repeat("i", bbolt.MaxKeySize+1)}); err == nil {
		t.Fatal("Append with an oversized id succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.Append(ctx, logtest.Upd("c", 0)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	if h := logtest.Head(t, tr); h != 0 {
		t.Fatalf("Head = %d after rejected appends, want 0", h)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{
		{Size: -1}, {MaxBytes: -1}, {CleanupFrequency: 1.5}, {LockTimeout: -time.Second}, {MaxFileSize: -1},
	} {
		if tr, err := Open(tempPath(t), o); err == nil {
			_ = tr.Close()
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}

func TestBucketName(t *testing.T) {
	ctx := context.Background()
	path := tempPath(t)
	a := openT(t, path, Options{BucketName: "a"})
	if err := a.Append(ctx, logtest.Upd("a", 0)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openT(t, path, Options{BucketName: "b"})
	if h := logtest.Head(t, b); h != 0 {
		t.Fatalf("bucket b has head %d, want an empty log", h)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a = openT(t, path, Options{BucketName: "a"})
	if h := logtest.Head(t, a); h != 1 {
		t.Fatalf("bucket a has head %d after reopening, want 1", h)
	}
}

func TestCodec(t *testing.T) {
	u := &transport.Update{
		Seq: 42, ID: "urn:uuid:x", Topics: []string{"a", "b/ü"}, Private: true, Type: "t",
		Retry: 1<<64 - 1, Data: "line\nline 2 ✓",
	}
	enc := encodeUpdate(u)
	got, err := decodeUpdate(42, enc)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", u) {
		t.Fatalf("round trip = %#v, want %#v", got, u)
	}
	if id, err := decodeID(42, enc); err != nil || string(id) != u.ID {
		t.Fatalf("decodeID = %q, %v", id, err)
	}
	for i := range len(enc) { // every truncation is an error, never a panic
		if _, err := decodeUpdate(1, enc[:i]); !errors.Is(err, errCorrupt) {
			t.Fatalf("decode of %d/%d bytes = %v, want errCorrupt", i, len(enc), err)
		}
	}
	if _, err := decodeUpdate(1, append(enc, 0)); !errors.Is(err, errCorrupt) {
		t.Fatal("trailing bytes accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeUpdate(logtest.Upd("f", 1)))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := decodeUpdate(1, b)
		if err != nil {
			return
		}
		again, err := decodeUpdate(1, encodeUpdate(u))
		if err != nil || fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", u) {
			t.Fatalf("decoded %x to %#v, which does not round-trip: %#v, %v", b, u, again, err)
		}
		_, _ = decodeID(1, b)
	})
}
