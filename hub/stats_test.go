package hub

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport/memory"
)

// TestTopicSummaryKeepsTheBusiest floods a small summary with one-off topics between the
// updates of two busy ones: they stay, with exact counts, in bounded memory.
func TestTopicSummaryKeepsTheBusiest(t *testing.T) {
	s := newTopicSummary(8)
	for i := range 1000 {
		s.add("busy", 3)
		s.add(fmt.Sprintf("once-%d", i), 1)
		if i%2 == 0 {
			s.add("half", 2)
		}
	}
	if len(s.items) != 8 || len(s.index) != 8 {
		t.Fatalf("%d items, %d indexed, want 8", len(s.items), len(s.index))
	}
	got := map[string]uint64{}
	for _, e := range s.items {
		got[e.topic] = e.count
		if s.items[e.pos] != e || s.index[e.topic] != e {
			t.Fatalf("item %+v out of place", e)
		}
	}
	if got["busy"] != 3000 || got["half"] != 1000 {
		t.Fatalf("busy %d, half %d, want 3000 and 1000", got["busy"], got["half"])
	}
}

// TestDeliveryCounterWindows checks the minute's windows: counts age out after a minute and a
// long silence empties them all.
func TestDeliveryCounterWindows(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newDeliveryCounter(func() time.Time { return now })
	c.add("a", 5)
	now = now.Add(30 * time.Second)
	c.add("b", 7)
	c.add("a", 1)
	top, span := c.top(20)
	if want := []TopicCount{{"b", 7}, {"a", 6}}; !slices.Equal(top, want) || span != 30*time.Second {
		t.Fatalf("%v over %v, want %v over 30s", top, span, want)
	}
	now = now.Add(35 * time.Second) // a's first 5 are over a minute old
	top, span = c.top(1)
	if want := []TopicCount{{"b", 7}}; !slices.Equal(top, want) || span != time.Minute {
		t.Fatalf("%v over %v, want %v over 1m", top, span, want)
	}
	now = now.Add(time.Hour)
	if top, _ = c.top(20); len(top) != 0 {
		t.Fatalf("after an hour of silence: %v", top)
	}
	c.add("c", 1)
	if top, _ = c.top(20); !slices.Equal(top, []TopicCount{{"c", 1}}) {
		t.Fatalf("%v", top)
	}
}

// TestWatchDeliveries counts deliveries by topic only while watched, exact and wild loops
// alike, and gives the busiest selectors and queue fill.
func TestWatchDeliveries(t *testing.T) {
	tr := memory.New(memory.Options{})
	t.Cleanup(func() { _ = tr.Close() })
	h, err := New(Config{Transport: tr, Matcher: topic.NewMatcher(100), QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	m := h.Matcher()
	var subs []*Subscriber
	for _, sel := range []string{"x", "x", "y", "{t}", "*"} {
		s, err := h.Subscribe(ctx, SubscribeOptions{Selectors: sels(m, sel)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if got, want := h.TopSubscribed(20), []TopicCount{{"x", 2}, {"*", 1}, {"y", 1}, {"{t}", 1}}; !slices.Equal(got, want) {
		t.Fatalf("top subscribed %v, want %v", got, want)
	}
	waitDone := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for h.done.Load() < n || h.wildDone.Load() < n {
			if time.Now().After(deadline) {
				t.Fatal("not dispatched")
			}
			time.Sleep(time.Millisecond)
		}
	}
	publish(t, h, "u1", false, "x")
	waitDone(1)
	if top, _ := h.TopDelivered(20); top != nil {
		t.Fatalf("counted while nobody watches: %v", top)
	}
	stop1 := h.WatchDeliveries()
	stop2 := h.WatchDeliveries()
	publish(t, h, "u2", false, "x")
	publish(t, h, "u3", false, "x", "y")
	publish(t, h, "u4", false, "y")
	waitDone(4)
	// x: 2 exact, {t} and * for u2 and u3 (u3 reaches y's subscriber too); y: 1 exact and 2 wild.
	if top, _ := h.TopDelivered(20); !slices.Equal(top, []TopicCount{{"x", 9}, {"y", 3}}) {
		t.Fatalf("top delivered %v", top)
	}
	// The x subscribers, never drained, hold 3 of 4 events: above half their queue.
	if above, size := h.QueueFill(); above != 4 || size != 4 {
		t.Fatalf("queue fill %d of size %d, want 4 (x, x, {t}, *) of 4", above, size)
	}
	stop1()
	stop1() // idempotent
	if top, _ := h.TopDelivered(20); top == nil {
		t.Fatal("stopped with a watch left")
	}
	stop2()
	if top, _ := h.TopDelivered(20); top != nil {
		t.Fatalf("still counting: %v", top)
	}
	publish(t, h, "u5", false, "y") // not counted: nobody watches
	waitDone(5)
	// A watch that starts soon after (a dashboard reconnecting) takes the counts over.
	stop3 := h.WatchDeliveries()
	if top, _ := h.TopDelivered(20); !slices.Equal(top, []TopicCount{{"x", 9}, {"y", 3}}) {
		t.Fatalf("top delivered after a reconnect %v", top)
	}
	stop3()
	h.watchMu.Lock()
	h.idleSince = h.idleSince.Add(-watchGrace - time.Second)
	h.watchMu.Unlock()
	stop4 := h.WatchDeliveries()
	if top, _ := h.TopDelivered(20); len(top) != 0 {
		t.Fatalf("a watch long after kept %v", top)
	}
	stop4()
	for _, s := range subs {
		h.Unsubscribe(s)
	}
}

// TestNodesFromHeartbeats: every node lists every node, with what its heartbeats said.
func TestNodesFromHeartbeats(t *testing.T) {
	tr := memory.New(memory.Options{})
	t.Cleanup(func() { _ = tr.Close() })
	a, b := startNodeAt(t, tr, "a:1"), startNodeAt(t, tr, "b:2")
	s, err := a.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(a.Matcher(), "x")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Unsubscribe(s)
	for _, tc := range []struct {
		n          *node
		self, peer NodeInfo
	}{
		{a, NodeInfo{Tag: a.Tag(), Addr: "a:1", Subscribers: 1, Self: true}, NodeInfo{Tag: b.Tag(), Addr: "b:2"}},
		{b, NodeInfo{Tag: b.Tag(), Addr: "b:2", Self: true}, NodeInfo{Tag: a.Tag(), Addr: "a:1", Subscribers: 1}},
	} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			nodes := tc.n.Nodes(0)
			if len(nodes) == 2 {
				nodes[1].SeenSecondsAgo = 0
				if nodes[0] == tc.self && nodes[1] == tc.peer {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("nodes %+v, want %+v and %+v", nodes, tc.self, tc.peer)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A dead node leaves the list.
	b.stop()
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Nodes(0)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("nodes %+v after b died", a.Nodes(0))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkFanOutWatched is BenchmarkFanOut's exact and template cases while deliveries are
// counted by topic, as they are while a dashboard watches: compare the two.
func BenchmarkFanOutWatched(b *testing.B) {
	for _, n := range []int{1, 1000} {
		for _, kind := range []string{"exact", "template"} {
			b.Run(fmt.Sprintf("subscribers=%d/%s", n, kind), func(b *testing.B) { benchFanOut(b, n, kind, true) })
		}
	}
}

// BenchmarkDashboardFigures measures what the hub does for one snapshot of the live stats,
// once a second while someone watches: 10 000 subscribers over 1 000 topics.
func BenchmarkDashboardFigures(b *testing.B) {
	h, _ := newHub(b, Config{}, false)
	m := h.Matcher()
	for i := range 10_000 {
		if _, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, fmt.Sprintf("https://example.com/t/%d", i%1000))}); err != nil {
			b.Fatal(err)
		}
	}
	defer h.WatchDeliveries()()
	for i := range 1000 {
		h.countDelivered([]string{fmt.Sprintf("https://example.com/t/%d", i)}, 10)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.QueueFill()
		h.TopSubscribed(20)
		h.TopDelivered(20)
		h.Nodes(0)
	}
}
