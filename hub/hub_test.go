package hub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newHub returns a hub on an in-memory log; run starts its dispatch loop, stopped at cleanup.
func newHub(t testing.TB, cfg Config, run bool) (*Hub, *memory.Transport) {
	t.Helper()
	tr := memory.New(memory.Options{Size: 100_000})
	cfg.Transport = tr
	cfg.Matcher = topic.NewMatcher(1000)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if run {
		startRun(t, h)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return h, tr
}

// startRun runs h's dispatch loop until cleanup.
func startRun(t testing.TB, h *Hub) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func sels(m *topic.Matcher, raw ...string) []*topic.Selector {
	out := make([]*topic.Selector, len(raw))
	for i, r := range raw {
		out[i] = m.Compile(r)
	}
	return out
}

// specSels compiles selectors given with their types.
func specSels(t testing.TB, m *topic.Matcher, specs ...topic.Spec) []*topic.Selector {
	t.Helper()
	out := make([]*topic.Selector, len(specs))
	for i, spec := range specs {
		sel, err := m.CompileSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sel
	}
	return out
}

func publish(t testing.TB, h *Hub, id string, private bool, topics ...string) {
	t.Helper()
	if err := h.Publish(context.Background(), &transport.Update{ID: id, Topics: topics, Private: private, Data: id}); err != nil {
		t.Fatal(err)
	}
}

// collectEvents drains s until it has n events or 5 s pass.
func collectEvents(t testing.TB, s *Subscriber, n int) []*Event {
	t.Helper()
	var all, evs []*Event
	deadline := time.After(5 * time.Second)
	for len(all) < n {
		select {
		case <-s.Ready():
			evs = s.Drain(evs[:0])
			all = append(all, evs...)
		case <-deadline:
			t.Fatalf("got %d events, want %d", len(all), n)
		}
	}
	return all
}

// collect drains s until it has n events or 5 s pass, and returns their IDs.
func collect(t testing.TB, s *Subscriber, n int) []string {
	t.Helper()
	return idsOf(collectEvents(t, s, n))
}

func equal(t testing.TB, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestDispatchRoutes(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	m := h.Matcher()
	sub := func(selectors []string, allowed ...string) *Subscriber {
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, selectors...), Allowed: sels(m, allowed...)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unsubscribe(s) })
		return s
	}
	exact := sub([]string{"a", "b"})
	template := sub([]string{"/books/{id}"}, "/books/{id}")
	all := sub([]string{"*"})
	if n := h.Subscribers(); n != 3 {
		t.Fatalf("%d subscribers", n)
	}
	publish(t, h, "1", false, "a")
	publish(t, h, "2", false, "/books/1")
	publish(t, h, "3", true, "/books/2")
	publish(t, h, "4", false, "a", "b") // two matching topics: delivered once
	publish(t, h, "5", true, "a")       // private, exact has no claim
	publish(t, h, "6", false, "c")
	equal(t, collect(t, exact, 2), "1", "4")
	equal(t, collect(t, template, 2), "2", "3")
	equal(t, collect(t, all, 4), "1", "2", "4", "6")
	// The dispatch loop records the last id after handing the update out: wait for it.
	for deadline := time.Now().Add(5 * time.Second); h.LastEventID() != "6"; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("LastEventID %q, want 6", h.LastEventID())
		}
	}
}

func TestPublishAssignsIDs(t *testing.T) {
	h, tr := newHub(t, Config{}, false)
	u := &transport.Update{Topics: []string{"a"}}
	if err := h.Publish(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if len(u.ID) != len("urn:uuid:")+36 || u.Seq != 1 {
		t.Fatalf("update %+v", u)
	}
	if err := h.Publish(context.Background(), &transport.Update{ID: u.ID, Topics: []string{"a"}}); !errors.Is(err, transport.ErrDuplicateID) {
		t.Fatalf("duplicate: %v", err)
	}
	if head, _ := tr.Head(context.Background()); head != 1 {
		t.Fatalf("head %d", head)
	}
}

// A replay that reads the log ahead of the lagging dispatch loop must not send those updates
// twice when the loop catches up.
func TestReplayAheadOfDispatch(t *testing.T) {
	h, _ := newHub(t, Config{}, false)
	m := h.Matcher()
	for i := range 5 {
		publish(t, h, strconv.Itoa(i), false, "a")
	}
	s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "a"), Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(s)
	var replayed []string
	err = h.Replay(context.Background(), s, 0, func(evs []*Event) error {
		for _, e := range evs {
			replayed = append(replayed, e.Update.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, replayed, "0", "1", "2", "3", "4")
	// Start the loop from the beginning of the log, as if it lagged behind the replay.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for after := uint64(0); ; {
			batch, err := h.tr.Read(ctx, after, 10, true)
			if err != nil {
				return
			}
			for _, u := range batch {
				h.dispatch(u)
				after = u.Seq
			}
		}
	}()
	defer func() { cancel(); <-done }()
	publish(t, h, "5", false, "a")
	equal(t, collect(t, s, 1), "5")
}

// Live updates that overflow the queue during a long replay are read from the log instead:
// nothing lost, nothing doubled, and the subscriber is not dropped as slow.
func TestReplayOverflowReadsOn(t *testing.T) {
	h, _ := newHub(t, Config{QueueSize: 3, ReadBatch: 2}, true)
	m := h.Matcher()
	for i := range 4 {
		publish(t, h, fmt.Sprintf("h%d", i), false, "a")
	}
	s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "a"), Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(s)
	var got []string
	first := true
	err = h.Replay(context.Background(), s, 0, func(evs []*Event) error {
		if first {
			// While the client is "slow", ten live updates arrive: the queue (3) overflows.
			first = false
			for i := range 10 {
				publish(t, h, fmt.Sprintf("l%d", i), false, "a")
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				s.mu.Lock()
				over := s.overflowed
				s.mu.Unlock()
				if over {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the queue did not overflow")
				}
				time.Sleep(time.Millisecond)
			}
		}
		for _, e := range evs {
			got = append(got, e.Update.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, h, "after", false, "a")
	got = append(got, collect(t, s, 1)...)
	equal(t, got, "h0", "h1", "h2", "h3", "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "after")
	if s.Err() != nil {
		t.Fatalf("subscriber closed: %v", s.Err())
	}
}

func TestSlowSubscriberClosed(t *testing.T) {
	h, _ := newHub(t, Config{QueueSize: 2}, true)
	m := h.Matcher()
	slow, _ := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "a")})
	fast, _ := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "a")})
	defer h.Unsubscribe(slow)
	defer h.Unsubscribe(fast)
	var got []string
	for i := range 6 {
		publish(t, h, strconv.Itoa(i), false, "a")
		got = append(got, collect(t, fast, 1)...)
	}
	equal(t, got, "0", "1", "2", "3", "4", "5")
	select {
	case <-slow.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the slow subscriber was not closed")
	}
	if !errors.Is(slow.Err(), ErrSlow) {
		t.Fatalf("Err = %v", slow.Err())
	}
	// What was queued before the overflow can still be flushed.
	equal(t, idsOf(slow.Drain(nil)), "0", "1")
}

func idsOf(evs []*Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.Update.ID
	}
	return ids
}

func TestResolve(t *testing.T) {
	h, _ := newHub(t, Config{}, false)
	publish(t, h, "x", false, "a")
	publish(t, h, "y", false, "a")
	for _, tc := range []struct {
		id, header string
		after      uint64
	}{
		{"earliest", "earliest", 0},
		{"x", "x", 1},
		{"y", "y", 2},
		{"unknown", "earliest", 0},
	} {
		after, header, err := h.Resolve(context.Background(), tc.id)
		if err != nil || after != tc.after || header != tc.header {
			t.Errorf("Resolve(%q) = %d, %q, %v; want %d, %q", tc.id, after, header, err, tc.after, tc.header)
		}
	}
}

func TestShutdown(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	s, _ := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "a")})
	h.Shutdown()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("subscriber not closed")
	}
	if !errors.Is(s.Err(), ErrShutdown) {
		t.Fatalf("Err = %v", s.Err())
	}
	if _, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "a")}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Subscribe after Shutdown: %v", err)
	}
	h.Unsubscribe(s)
	if n := h.Subscribers(); n != 0 {
		t.Fatalf("%d subscribers left", n)
	}
}

// TestExactSubscribersShareSelectors checks that subscribers of the same exact topics end up
// holding one compiled selector between them, and that sharing changes nothing they receive.
func TestExactSubscribersShareSelectors(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	sub := func(selectors ...string) *Subscriber {
		// topic.Compile, not the matcher: each subscriber starts with selectors of its own.
		ss := make([]*topic.Selector, len(selectors))
		for i, raw := range selectors {
			ss[i] = topic.Compile(raw)
		}
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: ss})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unsubscribe(s) })
		return s
	}
	first := sub("a", "b")
	second := sub("b", "c", "a")
	if second.Selectors[0] != first.Selectors[1] || second.Selectors[2] != first.Selectors[0] {
		t.Error("the second subscriber of a and b holds selectors of its own")
	}
	if raws := []string{second.Selectors[0].Raw(), second.Selectors[1].Raw(), second.Selectors[2].Raw()}; fmt.Sprint(raws) != "[b c a]" {
		t.Errorf("second subscriber's selectors: %v", raws)
	}
	// A subscriber with a template selector is not in the exact index and keeps its own.
	mixed := sub("a", "/books/{id}")
	if mixed.Selectors[0] == first.Selectors[0] {
		t.Error("a subscriber outside the exact index shares a selector")
	}
	// Once the first leaves, a newcomer shares the second's.
	h.Unsubscribe(first)
	third := sub("a")
	if third.Selectors[0] != second.Selectors[2] {
		t.Error("the third subscriber of a holds a selector of its own")
	}
	publish(t, h, "1", false, "a")
	publish(t, h, "2", false, "c")
	publish(t, h, "3", false, "b")
	equal(t, collect(t, second, 3), "1", "2", "3")
	equal(t, collect(t, third, 1), "1")
	equal(t, collect(t, mixed, 1), "1")
}
