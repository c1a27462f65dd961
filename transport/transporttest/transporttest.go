// Package transporttest is the conformance suite that every transport.Transport implementation
// runs from its own tests:
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Factory{
//			Open: func(t *testing.T, key string, opts transporttest.Options) transport.Transport {
//				return memory.New(memory.Options{Size: opts.Size, MaxBytes: opts.MaxBytes, SystemSize: opts.SystemSize})
//			},
//		})
//	}
//
// The suite checks the rules written on transport.Transport: ordering and exact round-trip of
// every field, reads after a position and with a limit, blocking reads woken by an append or
// ended by their context, Lookup and Head, duplicate IDs, the count and byte bounds, concurrent
// publishers and tailers, Close, system updates kept apart under their own bound (and a flood
// of them that leaves a publisher's update replayable), and (for persistent transports) a
// restart.
//
// The suite waits for events (a reader returning, an update arriving) rather than sleeping for
// them; a timeout only turns a hang into a failure. Apart from the flood, it stays well under
// five seconds per transport under -race when each append costs about a millisecond.
package transporttest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhub/herald/transport"
)

// Options bound the log a test opens. A zero field selects the transport's default.
type Options struct {
	// Size is the number of updates the log must retain (the newest ones).
	Size int
	// MaxBytes bounds the summed cost of the retained updates; each transport measures cost its
	// own way, but an update's Data counts at least its length.
	MaxBytes int64
	// SystemSize is the number of system updates (transport.Update.System) the log must
	// retain apart from Size.
	SystemSize int
}

// Factory tells the suite how to open the transport under test.
type Factory struct {
	// Open opens the log stored under key with the given bounds. It reports setup failures
	// with t.Fatal. The suite closes every transport it opens; Open may also register its own
	// cleanup (Close is idempotent). When Persistent is true, opening a key that was opened and
	// closed before must reopen the same log.
	Open func(t *testing.T, key string, opts Options) transport.Transport

	// NewKey returns a fresh key for one subtest, e.g. a file path in t.TempDir() or a unique
	// stream name. When nil, the suite uses a unique name made of letters, digits and '-'.
	NewKey func(t *testing.T) string

	// Persistent says the log survives Close: the restart subtests run only when it is true.
	Persistent bool

	// SharedLimit says the transport bounds both classes with one limit of Size+SystemSize
	// updates (nats): a system update replaces the oldest one of its class, so at most
	// SystemSize are retained and publishers' updates always keep at least Size, but these may
	// use the share that system updates leave unused, and then push out system updates older
	// than them. The System subtests check that weaker rule when it is true.
	SharedLimit bool

	// SystemFlood is how many system updates the flood subtest appends; zero selects
	// DefaultSystemFlood. A transport whose appends each cost a round trip to a server may
	// lower it to keep the suite fast.
	SystemFlood int
}

// DefaultSystemFlood is how many system updates the flood subtest appends by default: more
// than twice the default history bound of the persistent transports.
const DefaultSystemFlood = 250_000

// timeout turns a hang into a test failure. Nothing waits for it in a passing run.
const timeout = 5 * time.Second

// Run runs the conformance suite against the transport f opens, one subtest per rule.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.Open == nil {
		t.Fatal("transporttest: Factory.Open is nil")
	}
	s := &suite{f: f}
	t.Run("Empty", s.testEmpty)
	t.Run("AppendRead", s.testAppendRead)
	t.Run("ReadAfter", s.testReadAfter)
	t.Run("ReadLimit", s.testReadLimit)
	t.Run("ReadWaitBlocksUntilAppend", s.testReadWaitBlocks)
	t.Run("ReadWaitContext", s.testReadWaitContext)
	t.Run("Lookup", s.testLookup)
	t.Run("DuplicateID", s.testDuplicateID)
	t.Run("ConcurrentDuplicateIDs", s.testConcurrentDuplicateIDs)
	t.Run("SizeBound", s.testSizeBound)
	t.Run("ByteBound", s.testByteBound)
	t.Run("ConcurrentPublishers", s.testConcurrentPublishers)
	t.Run("ConcurrentTailers", s.testConcurrentTailers)
	t.Run("Close", s.testClose)
	t.Run("SystemApart", s.testSystemApart)
	t.Run("SystemFlood", s.testSystemFlood)
	if f.Persistent {
		t.Run("Restart", s.testRestart)
		t.Run("RestartBounds", s.testRestartBounds)
	}
}

type suite struct {
	f    Factory
	keys atomic.Uint64
}

var unsafeKeyChars = regexp.MustCompile(`[^a-z0-9]+`)

// newKey returns a key no other subtest uses.
func (s *suite) newKey(t *testing.T) string {
	t.Helper()
	if s.f.NewKey != nil {
		return s.f.NewKey(t)
	}
	name := strings.Trim(unsafeKeyChars.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	return fmt.Sprintf("transporttest-%s-%d-%d", name, time.Now().UnixNano(), s.keys.Add(1))
}

// open opens the transport under key and closes it when the test ends.
func (s *suite) open(t *testing.T, key string, opts Options) transport.Transport {
	t.Helper()
	tr := s.f.Open(t, key, opts)
	if tr == nil {
		t.Fatal("Factory.Open returned nil")
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// fresh opens an empty log under a new key.
func (s *suite) fresh(t *testing.T, opts Options) transport.Transport {
	t.Helper()
	return s.open(t, s.newKey(t), opts)
}

// ---- helpers ----

// system returns the i-th system update of a test, shaped like a subscription event.
func system(prefix string, i int) *transport.Update {
	topic := fmt.Sprintf("/.well-known/mercure/subscriptions/%s/%d", prefix, i)
	return &transport.Update{
		ID:      fmt.Sprintf("%s-sys-%d", prefix, i),
		Topics:  []string{topic},
		Private: true,
		System:  true,
		Data:    fmt.Sprintf(`{"id":%q,"active":true}`, topic),
	}
}

// sample returns the i-th update of a test, with a distinct ID and a payload that varies with i.
func sample(prefix string, i int) *transport.Update {
	return &transport.Update{
		ID:     fmt.Sprintf("%s-%d", prefix, i),
		Topics: []string{fmt.Sprintf("https://example.com/books/%d", i%7)},
		Data:   fmt.Sprintf("payload %d", i),
	}
}

// clone copies u so that a test keeps what it appended even if a transport shared the pointer.
func clone(u *transport.Update) *transport.Update {
	c := *u
	c.Topics = append([]string(nil), u.Topics...)
	return &c
}

// appendOK appends u and fails the test on error. It returns a copy of u as appended.
func appendOK(t *testing.T, tr transport.Transport, u *transport.Update) *transport.Update {
	t.Helper()
	if err := tr.Append(t.Context(), u); err != nil {
		t.Fatalf("Append(%q): %v", u.ID, err)
	}
	if u.Seq == 0 {
		t.Fatalf("Append(%q) returned nil but left Seq at 0", u.ID)
	}
	return clone(u)
}

// appendMany appends n sample updates and returns them as appended, checking Seq increases.
func appendMany(t *testing.T, tr transport.Transport, prefix string, n int) []*transport.Update {
	t.Helper()
	out := make([]*transport.Update, 0, n)
	for i := range n {
		u := appendOK(t, tr, sample(prefix, i))
		if len(out) > 0 && u.Seq <= out[len(out)-1].Seq {
			t.Fatalf("Append(%q) got Seq %d, not greater than the previous %d", u.ID, u.Seq, out[len(out)-1].Seq)
		}
		out = append(out, u)
	}
	return out
}

// readNow calls Read with wait=false and fails the test on error or when it does not return
// promptly.
func readNow(t *testing.T, tr transport.Transport, after uint64, limit int) []*transport.Update {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	ups, err := tr.Read(ctx, after, limit, false)
	if err != nil {
		t.Fatalf("Read(after=%d, limit=%d, wait=false): %v", after, limit, err)
	}
	if d := time.Since(start); d >= timeout {
		t.Fatalf("Read(after=%d, limit=%d, wait=false) took %v; it must not wait", after, limit, d)
	}
	if len(ups) > limit {
		t.Fatalf("Read(after=%d, limit=%d) returned %d updates, more than the limit", after, limit, len(ups))
	}
	return ups
}

// readAll pages through the whole retained log after the given Seq, checking that each page
// continues the previous one.
func readAll(t *testing.T, tr transport.Transport, after uint64) []*transport.Update {
	t.Helper()
	var out []*transport.Update
	for {
		page := readNow(t, tr, after, 1000)
		if len(page) == 0 {
			return out
		}
		for _, u := range page {
			if u.Seq <= after {
				t.Fatalf("Read(after=%d) returned Seq %d, not after it", after, u.Seq)
			}
			after = u.Seq
		}
		out = append(out, page...)
	}
}

// sameUpdate reports how got differs from want, or "" when every field is equal.
func sameUpdate(got, want *transport.Update) string {
	if got == nil {
		return "got a nil update"
	}
	var diffs []string
	check := func(field string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", field, fmt.Sprint(g), fmt.Sprint(w)))
		}
	}
	check("Seq", got.Seq, want.Seq)
	check("ID", got.ID, want.ID)
	if len(got.Topics) != len(want.Topics) {
		diffs = append(diffs, fmt.Sprintf("Topics: got %q, want %q", got.Topics, want.Topics))
	} else {
		for i := range got.Topics {
			check(fmt.Sprintf("Topics[%d]", i), got.Topics[i], want.Topics[i])
		}
	}
	check("Private", got.Private, want.Private)
	check("Type", got.Type, want.Type)
	check("Retry", got.Retry, want.Retry)
	check("System", got.System, want.System)
	if got.Data != want.Data {
		diffs = append(diffs, fmt.Sprintf("Data: got %d bytes %.80q, want %d bytes %.80q", len(got.Data), got.Data, len(want.Data), want.Data))
	}
	return strings.Join(diffs, "; ")
}

// checkUpdates fails the test unless got holds exactly want, in order, field by field.
func checkUpdates(t *testing.T, what string, got, want []*transport.Update) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d updates %s, want %d %s", what, len(got), seqs(got), len(want), seqs(want))
	}
	for i := range want {
		if d := sameUpdate(got[i], want[i]); d != "" {
			t.Fatalf("%s: update %d differs: %s", what, i, d)
		}
	}
}

// seqs formats the Seqs of ups for a failure message, eliding the middle of long lists.
func seqs(ups []*transport.Update) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, u := range ups {
		if len(ups) > 20 && i == 10 {
			fmt.Fprintf(&b, " … (%d more)", len(ups)-20)
		}
		if len(ups) > 20 && i >= 10 && i < len(ups)-10 {
			continue
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		if u == nil {
			b.WriteString("nil")
		} else {
			fmt.Fprintf(&b, "%d", u.Seq)
		}
	}
	b.WriteByte(']')
	return b.String()
}

// checkHead fails the test unless Head returns want.
func checkHead(t *testing.T, tr transport.Transport, want uint64) {
	t.Helper()
	got, err := tr.Head(t.Context())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if got != want {
		t.Fatalf("Head = %d, want %d", got, want)
	}
}

// checkLookup fails the test unless Lookup(id) returns want.
func checkLookup(t *testing.T, tr transport.Transport, id string, want uint64) {
	t.Helper()
	got, err := tr.Lookup(t.Context(), id)
	if err != nil {
		t.Fatalf("Lookup(%q): %v, want %d", id, err, want)
	}
	if got != want {
		t.Fatalf("Lookup(%q) = %d, want %d", id, got, want)
	}
}

// checkUnknown fails the test unless Lookup(id) returns ErrUnknownID.
func checkUnknown(t *testing.T, tr transport.Transport, id string) {
	t.Helper()
	seq, err := tr.Lookup(t.Context(), id)
	if !errors.Is(err, transport.ErrUnknownID) {
		t.Fatalf("Lookup(%q) = %d, %v; want an error wrapping ErrUnknownID", id, seq, err)
	}
}

type readResult struct {
	ups []*transport.Update
	err error
}

// readAsync calls Read with wait=true in a goroutine and delivers its result on the channel.
func readAsync(ctx context.Context, tr transport.Transport, after uint64, limit int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		ups, err := tr.Read(ctx, after, limit, true)
		ch <- readResult{ups, err}
	}()
	return ch
}

// await waits for a blocked Read to return, failing the test if it does not within timeout.
func await(t *testing.T, ch <-chan readResult, what string) readResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("%s: Read did not return within %v", what, timeout)
		return readResult{}
	}
}

// stillBlocked gives a waiting Read a moment to return wrongly; it fails the test if it did.
// A pass here proves nothing about timing; it only catches Reads that do not wait.
func stillBlocked(t *testing.T, ch <-chan readResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: Read(wait=true) returned before any append: %d updates, err %v", what, len(r.ups), r.err)
	case <-time.After(20 * time.Millisecond):
	}
}

// ---- subtests ----

func (s *suite) testEmpty(t *testing.T) {
	tr := s.fresh(t, Options{})
	checkHead(t, tr, 0)
	if ups := readNow(t, tr, 0, 10); len(ups) != 0 {
		t.Fatalf("Read on an empty log returned %d updates", len(ups))
	}
	checkUnknown(t, tr, "nope")
}

func (s *suite) testAppendRead(t *testing.T) {
	tr := s.fresh(t, Options{})
	big := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
	ups := []*transport.Update{
		{ID: "plain", Topics: []string{"https://example.com/a"}, Data: "hello"},
		{ID: "urn:uuid:1b0c6a3e-4d7e-4e0b-9a43-2a1f6a0e5b7c", Topics: []string{
			"https://example.com/books/1", "https://example.com/authors/2", "urn:x:topic",
		}, Data: "multi-topic"},
		{ID: "private", Topics: []string{"https://example.com/private"}, Private: true, Data: "secret"},
		{ID: "typed", Topics: []string{"t"}, Type: "book-updated", Retry: 2500, Data: `{"json":true}`},
		{ID: "lines", Topics: []string{"t"}, Data: "line 1\nline 2\r\nline 3\n\ntrailing\n"},
		{ID: "unicode ïd ✓", Topics: []string{"https://example.com/ü/世界"}, Data: "héllo 世界 🎉 \u2028 \x00 nul"},
		{ID: "empty-data", Topics: []string{"t"}},
		{ID: "big", Topics: []string{"t"}, Data: big},
		{ID: "max-retry", Topics: []string{"t"}, Retry: 1<<64 - 1, Data: "x"},
	}
	var want []*transport.Update
	var last uint64
	for _, u := range ups {
		a := appendOK(t, tr, u)
		if a.Seq <= last {
			t.Fatalf("Append(%q) got Seq %d, not greater than the previous %d", a.ID, a.Seq, last)
		}
		last = a.Seq
		checkHead(t, tr, a.Seq)
		want = append(want, a)
	}
	checkUpdates(t, "Read(0)", readNow(t, tr, 0, 100), want)
	if got := readNow(t, tr, last, 100); len(got) != 0 {
		t.Fatalf("Read(after=head) returned %d updates, want none", len(got))
	}
}

func (s *suite) testReadAfter(t *testing.T) {
	tr := s.fresh(t, Options{})
	want := appendMany(t, tr, "after", 10)
	for k := range want {
		checkUpdates(t, fmt.Sprintf("Read(after=%d)", want[k].Seq), readNow(t, tr, want[k].Seq, 100), want[k+1:])
	}
	// A position between two Seqs (transports may leave gaps) reads from the next update.
	for k := 1; k < len(want); k++ {
		if want[k].Seq-want[k-1].Seq > 1 {
			checkUpdates(t, "Read(in a gap)", readNow(t, tr, want[k].Seq-1, 100), want[k:])
		}
	}
	checkUpdates(t, "Read(0)", readAll(t, tr, 0), want)
}

func (s *suite) testReadLimit(t *testing.T) {
	tr := s.fresh(t, Options{})
	want := appendMany(t, tr, "limit", 10)
	checkUpdates(t, "Read(0, limit=3)", readNow(t, tr, 0, 3), want[:3])
	checkUpdates(t, "Read(0, limit=1)", readNow(t, tr, 0, 1), want[:1])
	checkUpdates(t, "Read(0, limit=10)", readNow(t, tr, 0, 10), want)
	checkUpdates(t, "Read(3rd, limit=4)", readNow(t, tr, want[2].Seq, 4), want[3:7])
	var got []*transport.Update
	after := uint64(0)
	for range 20 {
		page := readNow(t, tr, after, 3)
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	checkUpdates(t, "paging with limit=3", got, want)
}

func (s *suite) testReadWaitBlocks(t *testing.T) {
	tr := s.fresh(t, Options{})

	// On an empty log.
	ch := readAsync(t.Context(), tr, 0, 10)
	stillBlocked(t, ch, "empty log")
	first := appendOK(t, tr, sample("wait", 0))
	r := await(t, ch, "empty log")
	if r.err != nil {
		t.Fatalf("Read(wait=true) after an append: %v", r.err)
	}
	checkUpdates(t, "woken Read", r.ups, []*transport.Update{first})

	// At the head of a non-empty log, with several waiters.
	var chans []<-chan readResult
	for range 3 {
		chans = append(chans, readAsync(t.Context(), tr, first.Seq, 10))
	}
	stillBlocked(t, chans[0], "at head")
	second := appendOK(t, tr, sample("wait", 1))
	for i, ch := range chans {
		r := await(t, ch, fmt.Sprintf("waiter %d", i))
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		checkUpdates(t, fmt.Sprintf("waiter %d", i), r.ups, []*transport.Update{second})
	}

	// With wait=true and updates already there, Read returns them at once.
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	ups, err := tr.Read(ctx, 0, 10, true)
	if err != nil {
		t.Fatalf("Read(0, wait=true) with updates available: %v", err)
	}
	checkUpdates(t, "Read(0, wait=true)", ups, []*transport.Update{first, second})
}

func (s *suite) testReadWaitContext(t *testing.T) {
	tr := s.fresh(t, Options{})
	u := appendOK(t, tr, sample("ctx", 0))

	ctx, cancel := context.WithCancel(t.Context())
	ch := readAsync(ctx, tr, u.Seq, 10)
	stillBlocked(t, ch, "before cancel")
	cancel()
	if r := await(t, ch, "after cancel"); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Read after cancel = %d updates, %v; want context.Canceled", len(r.ups), r.err)
	}

	dctx, dcancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer dcancel()
	r := await(t, readAsync(dctx, tr, u.Seq, 10), "deadline")
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("Read past its deadline = %d updates, %v; want context.DeadlineExceeded", len(r.ups), r.err)
	}

	// The transport still works for others.
	v := appendOK(t, tr, sample("ctx", 1))
	checkUpdates(t, "Read after cancelled readers", readNow(t, tr, u.Seq, 10), []*transport.Update{v})
}

func (s *suite) testLookup(t *testing.T) {
	tr := s.fresh(t, Options{})
	want := appendMany(t, tr, "lookup", 20)
	for _, u := range want {
		checkLookup(t, tr, u.ID, u.Seq)
	}
	checkUnknown(t, tr, "lookup-20")
	checkUnknown(t, tr, "")
	checkUnknown(t, tr, "LOOKUP-1") // IDs are case-sensitive
	checkHead(t, tr, want[len(want)-1].Seq)
}

func (s *suite) testDuplicateID(t *testing.T) {
	tr := s.fresh(t, Options{})
	want := appendMany(t, tr, "dup", 3)
	head := want[2].Seq

	dup := sample("dup", 1)
	dup.Data = "a different payload"
	if err := tr.Append(t.Context(), dup); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("Append of a retained ID = %v, want an error wrapping ErrDuplicateID", err)
	}
	checkHead(t, tr, head)
	checkLookup(t, tr, "dup-1", want[1].Seq)
	checkUpdates(t, "Read after a rejected duplicate", readAll(t, tr, 0), want)

	next := appendOK(t, tr, sample("dup", 3))
	if next.Seq <= head {
		t.Fatalf("Append after a rejected duplicate got Seq %d, not after %d", next.Seq, head)
	}
	checkUpdates(t, "Read", readAll(t, tr, 0), append(want, next))
}

func (s *suite) testConcurrentDuplicateIDs(t *testing.T) {
	tr := s.fresh(t, Options{})
	const goroutines, ids = 8, 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins = make(map[string]int)
		errs []error
	)
	for g := range goroutines {
		wg.Go(func() {
			for i := range ids {
				u := sample("cdup", i)
				u.Data = fmt.Sprintf("from goroutine %d", g)
				err := tr.Append(t.Context(), u)
				mu.Lock()
				switch {
				case err == nil:
					wins[u.ID]++
				case !errors.Is(err, transport.ErrDuplicateID):
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("Append failed with errors other than ErrDuplicateID: %v", errs)
	}
	for i := range ids {
		id := sample("cdup", i).ID
		if wins[id] != 1 {
			t.Fatalf("ID %q was appended %d times, want exactly once", id, wins[id])
		}
	}
	if got := readAll(t, tr, 0); len(got) != ids {
		t.Fatalf("log holds %d updates, want %d", len(got), ids)
	}
}

func (s *suite) testSizeBound(t *testing.T) {
	const size, extra = 10, 15
	tr := s.fresh(t, Options{Size: size})
	all := appendMany(t, tr, "size", size+extra)
	kept, dropped := all[extra:], all[:extra]

	checkUpdates(t, "Read(0) on a full log", readAll(t, tr, 0), kept)
	checkUpdates(t, "Read(after a dropped Seq)", readAll(t, tr, dropped[3].Seq), kept)
	for _, u := range dropped {
		checkUnknown(t, tr, u.ID)
	}
	for _, u := range kept {
		checkLookup(t, tr, u.ID, u.Seq)
	}
	checkHead(t, tr, all[len(all)-1].Seq)

	// One more append drops exactly one more.
	more := appendOK(t, tr, sample("size", size+extra))
	checkUnknown(t, tr, kept[0].ID)
	checkUpdates(t, "Read(0) after one more", readAll(t, tr, 0), append(kept[1:], more))

	// IDs are unique among retained updates only: a dropped ID may be published again.
	again := appendOK(t, tr, sample("size", 0))
	checkLookup(t, tr, again.ID, again.Seq)
	checkUpdates(t, "Read(0) after reusing a dropped ID", readAll(t, tr, 0), append(kept[2:], more, again))
}

func (s *suite) testByteBound(t *testing.T) {
	const (
		maxBytes = 20_000
		dataLen  = 1000
		n        = 100
	)
	tr := s.fresh(t, Options{MaxBytes: maxBytes})
	var all []*transport.Update
	for i := range n {
		u := sample("bytes", i)
		u.Data = strings.Repeat(string(rune('a'+i%26)), dataLen)
		all = append(all, appendOK(t, tr, u))
	}
	got := readAll(t, tr, 0)
	if len(got) == 0 {
		t.Fatal("the byte bound dropped every update, even the newest")
	}
	if len(got)*dataLen > maxBytes {
		t.Fatalf("%d updates of %d bytes retained, over MaxBytes=%d", len(got), dataLen, maxBytes)
	}
	if len(got) < maxBytes/dataLen/4 {
		t.Fatalf("only %d updates of %d bytes retained with MaxBytes=%d; the bound drops far too much", len(got), dataLen, maxBytes)
	}
	kept := all[n-len(got):]
	checkUpdates(t, "retained updates (the newest ones)", got, kept)
	checkUnknown(t, tr, all[0].ID)
	checkUnknown(t, tr, all[n-len(got)-1].ID)
	checkLookup(t, tr, kept[0].ID, kept[0].Seq)
	checkHead(t, tr, all[n-1].Seq)
}

func (s *suite) testConcurrentPublishers(t *testing.T) {
	const publishers, each = 8, 200
	tr := s.fresh(t, Options{Size: publishers * each})
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs = make(map[string]uint64)
		errs []error
	)
	for p := range publishers {
		wg.Go(func() {
			var last uint64
			for i := range each {
				u := sample(fmt.Sprintf("pub%d", p), i)
				if err := tr.Append(t.Context(), u); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if u.Seq <= last {
					mu.Lock()
					errs = append(errs, fmt.Errorf("publisher %d: Seq %d after its own %d", p, u.Seq, last))
					mu.Unlock()
					return
				}
				last = u.Seq
				mu.Lock()
				seqs[u.ID] = u.Seq
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent appends failed: %v", errs)
	}
	got := readAll(t, tr, 0)
	if len(got) != publishers*each {
		t.Fatalf("log holds %d updates, want %d", len(got), publishers*each)
	}
	seen := make(map[string]bool, len(got))
	next := make([]int, publishers) // next index expected from each publisher
	for _, u := range got {
		if seen[u.ID] {
			t.Fatalf("update %q read twice", u.ID)
		}
		seen[u.ID] = true
		if seqs[u.ID] != u.Seq {
			t.Fatalf("update %q read with Seq %d, but Append set %d", u.ID, u.Seq, seqs[u.ID])
		}
		var p, i int
		if _, err := fmt.Sscanf(u.ID, "pub%d-%d", &p, &i); err != nil {
			t.Fatalf("unexpected ID %q", u.ID)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: read update %d where %d was expected (per-publisher order lost)", p, i, next[p])
		}
		next[p]++
		if d := sameUpdate(u, withSeq(sample(fmt.Sprintf("pub%d", p), i), u.Seq)); d != "" {
			t.Fatalf("update %q: %s", u.ID, d)
		}
	}
}

func withSeq(u *transport.Update, seq uint64) *transport.Update {
	u.Seq = seq
	return u
}

func (s *suite) testConcurrentTailers(t *testing.T) {
	const tailers, publishers, each = 20, 4, 75
	const total = publishers * each
	tr := s.fresh(t, Options{Size: total})
	ctx, cancel := context.WithTimeout(t.Context(), 4*timeout)
	defer cancel()

	results := make([][]*transport.Update, tailers)
	errs := make([]error, tailers)
	var tailing sync.WaitGroup
	for r := range tailers {
		tailing.Go(func() {
			var after uint64
			for len(results[r]) < total {
				ups, err := tr.Read(ctx, after, 7, true)
				if err != nil {
					errs[r] = fmt.Errorf("tailer %d after %d updates: %w", r, len(results[r]), err)
					return
				}
				if len(ups) == 0 {
					errs[r] = fmt.Errorf("tailer %d: Read(wait=true) returned no update and no error", r)
					return
				}
				results[r] = append(results[r], ups...)
				after = ups[len(ups)-1].Seq
			}
		})
	}
	var publishing sync.WaitGroup
	pubErrs := make([]error, publishers)
	for p := range publishers {
		publishing.Go(func() {
			for i := range each {
				if err := tr.Append(ctx, sample(fmt.Sprintf("tail%d", p), i)); err != nil {
					pubErrs[p] = err
					return
				}
			}
		})
	}
	publishing.Wait()
	if err := errors.Join(pubErrs...); err != nil {
		cancel()
		tailing.Wait()
		t.Fatalf("publishing: %v", err)
	}
	tailing.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, tr, 0)
	if len(want) != total {
		t.Fatalf("log holds %d updates, want %d", len(want), total)
	}
	for r, got := range results {
		checkUpdates(t, fmt.Sprintf("tailer %d", r), got, want)
	}
}

func (s *suite) testClose(t *testing.T) {
	tr := s.fresh(t, Options{})
	u := appendOK(t, tr, sample("close", 0))

	var chans []<-chan readResult
	for range 5 {
		chans = append(chans, readAsync(t.Context(), tr, u.Seq, 10))
	}
	stillBlocked(t, chans[0], "before Close")
	closed := make(chan error, 1)
	go func() { closed <- tr.Close() }()
	for i, ch := range chans {
		if r := await(t, ch, fmt.Sprintf("reader %d after Close", i)); !errors.Is(r.err, transport.ErrClosed) {
			t.Fatalf("reader %d waiting during Close = %d updates, %v; want ErrClosed", i, len(r.ups), r.err)
		}
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(timeout):
		t.Fatalf("Close did not return within %v", timeout)
	}

	ctx := t.Context()
	if err := tr.Append(ctx, sample("close", 1)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := tr.Read(ctx, 0, 10, false); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Read(wait=false) after Close = %v, want ErrClosed", err)
	}
	if _, err := tr.Read(ctx, u.Seq, 10, true); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Read(wait=true) after Close = %v, want ErrClosed", err)
	}
	if _, err := tr.Lookup(ctx, u.ID); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Lookup after Close = %v, want ErrClosed", err)
	}
	if _, err := tr.Head(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Head after Close = %v, want ErrClosed", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
}

func (s *suite) testRestart(t *testing.T) {
	key := s.newKey(t)
	tr := s.open(t, key, Options{})
	var want []*transport.Update
	want = append(want, appendMany(t, tr, "restart", 4)...)
	want = append(want, appendOK(t, tr, &transport.Update{
		ID: "restart-odd", Topics: []string{"a", "b"}, Private: true, Type: "t", Retry: 42,
		Data: "multi\nline ✓",
	}))
	head := want[len(want)-1].Seq
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	tr = s.open(t, key, Options{})
	checkHead(t, tr, head)
	checkUpdates(t, "Read(0) after a restart", readAll(t, tr, 0), want)
	for _, u := range want {
		checkLookup(t, tr, u.ID, u.Seq)
	}
	if err := tr.Append(t.Context(), sample("restart", 0)); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("Append of an ID retained before the restart = %v, want ErrDuplicateID", err)
	}
	next := appendOK(t, tr, sample("restart", 100))
	if next.Seq <= head {
		t.Fatalf("first Append after a restart got Seq %d, not after the old head %d", next.Seq, head)
	}
	want = append(want, next)
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	tr = s.open(t, key, Options{})
	checkHead(t, tr, next.Seq)
	checkUpdates(t, "Read(0) after a second restart", readAll(t, tr, 0), want)
}

func (s *suite) testRestartBounds(t *testing.T) {
	const size = 10
	key := s.newKey(t)
	tr := s.open(t, key, Options{Size: size})
	all := appendMany(t, tr, "rbound", size+5)
	if err := tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	tr = s.open(t, key, Options{Size: size})
	checkUpdates(t, "Read(0) after a restart", readAll(t, tr, 0), all[5:])
	checkUnknown(t, tr, all[4].ID)
	checkHead(t, tr, all[len(all)-1].Seq)
	more := appendOK(t, tr, sample("rbound", 100))
	checkUnknown(t, tr, all[5].ID)
	checkUpdates(t, "Read(0) after a restart and an append", readAll(t, tr, 0), append(all[6:], more))
}

func (s *suite) testSystemApart(t *testing.T) {
	const size, systemSize = 5, 3
	tr := s.fresh(t, Options{Size: size, SystemSize: systemSize})
	var users, systems []*transport.Update
	users = append(users, appendOK(t, tr, sample("apart", 0)))
	for i := range 10 {
		systems = append(systems, appendOK(t, tr, system("apart", i)))
	}
	users = append(users, appendOK(t, tr, sample("apart", 1)))
	systems = append(systems, appendOK(t, tr, system("apart", 10)))
	users = append(users, appendOK(t, tr, sample("apart", 2)))
	all := append(append([]*transport.Update(nil), users...), systems...)
	for i := 1; i < len(all); i++ {
		for j := range i {
			if all[i].Seq == all[j].Seq {
				t.Fatalf("updates %q and %q share Seq %d", all[i].ID, all[j].ID, all[i].Seq)
			}
		}
	}

	// Eleven system updates dropped only system updates: every publisher's update is kept.
	keptSys := systems[len(systems)-systemSize:]
	want := s.retained(users, systems, size, systemSize)
	checkUpdates(t, "Read(0) of both classes", readAll(t, tr, 0), want)
	checkUpdates(t, "Read(after the first update)", readAll(t, tr, users[0].Seq), want[1:])
	checkUpdates(t, "Read(0, limit=2)", readNow(t, tr, 0, 2), want[:2])
	for _, u := range append(users, keptSys...) {
		checkLookup(t, tr, u.ID, u.Seq)
	}
	for _, u := range systems[:len(systems)-systemSize] {
		checkUnknown(t, tr, u.ID)
	}
	checkHead(t, tr, users[2].Seq)

	// A retained ID is unique across both classes.
	dup := system("apart", 99)
	dup.ID = users[1].ID
	if err := tr.Append(t.Context(), dup); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("system Append of a publisher's retained ID = %v, want ErrDuplicateID", err)
	}
	dup = sample("apart", 99)
	dup.ID = keptSys[0].ID
	if err := tr.Append(t.Context(), dup); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("Append of a system update's retained ID = %v, want ErrDuplicateID", err)
	}

	// Publishers' updates obey their own bound, without dropping system updates.
	for i := 3; i < 3+size; i++ {
		users = append(users, appendOK(t, tr, sample("apart", i)))
	}
	want = s.retained(users, systems, size, systemSize)
	checkUpdates(t, "Read(0) after publishers' updates", readAll(t, tr, 0), want)
	checkUnknown(t, tr, users[0].ID)

	// A waiting reader is woken by a system update.
	ch := readAsync(t.Context(), tr, users[len(users)-1].Seq, 10)
	stillBlocked(t, ch, "at head")
	last := appendOK(t, tr, system("apart", 100))
	r := await(t, ch, "system append")
	if r.err != nil {
		t.Fatalf("Read(wait=true) woken by a system update: %v", r.err)
	}
	checkUpdates(t, "woken Read", r.ups, []*transport.Update{last})
}

// testSystemFlood appends a flood of system updates, as a presence flood would, and checks
// that the publishers' update written before it is still found and replayed exactly.
func (s *suite) testSystemFlood(t *testing.T) {
	const size, systemSize, workers = 10, 100, 4
	flood := s.f.SystemFlood
	if flood <= 0 {
		flood = DefaultSystemFlood
	}
	tr := s.fresh(t, Options{Size: size, SystemSize: systemSize})
	before := appendOK(t, tr, sample("flood", 0))
	canary := appendOK(t, tr, sample("flood", 1))

	var (
		wg   sync.WaitGroup
		next atomic.Int64
		mu   sync.Mutex
		sys  []*transport.Update
		errs []error
	)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= flood {
					return
				}
				u := system("flood", i)
				if err := tr.Append(t.Context(), u); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mu.Lock()
				sys = append(sys, clone(u))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("appending %d system updates: %v", flood, err)
	}
	after := appendOK(t, tr, sample("flood", 2))

	checkLookup(t, tr, canary.ID, canary.Seq)
	checkLookup(t, tr, before.ID, before.Seq)
	sys = bySeq(sys)
	want := append([]*transport.Update{canary}, sys[len(sys)-min(systemSize, len(sys)):]...)
	want = append(want, after)
	checkUpdates(t, "Read(after the update before the canary)", readAll(t, tr, before.Seq), want)
	checkUnknown(t, tr, sys[0].ID)
}

// retained returns, in Seq order, what a log bounded by size and systemSize retains of the
// publishers' updates users and the system updates systems, each in Seq order.
func (s *suite) retained(users, systems []*transport.Update, size, systemSize int) []*transport.Update {
	systems = systems[max(0, len(systems)-systemSize):]
	if !s.f.SharedLimit {
		users = users[max(0, len(users)-size):]
		return bySeq(append(append([]*transport.Update(nil), users...), systems...))
	}
	all := bySeq(append(append([]*transport.Update(nil), users...), systems...))
	return all[max(0, len(all)-size-systemSize):]
}

// bySeq sorts ups by Seq, in place, and returns it.
func bySeq(ups []*transport.Update) []*transport.Update {
	slices.SortFunc(ups, func(a, b *transport.Update) int { return cmp.Compare(a.Seq, b.Seq) })
	return ups
}
