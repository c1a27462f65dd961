package hub

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// BenchmarkFanOut measures dispatching one update to N subscribers of its topic: matching,
// encoding once and enqueueing. The template and urlpattern rows go through the wild loop, one
// shared selector for all the subscribers. Queues are drained every 64 updates, outside the timer.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 1000, 10_000} {
		for _, kind := range []string{"exact", "template", "urlpattern"} {
			b.Run(fmt.Sprintf("subscribers=%d/%s", n, kind), func(b *testing.B) { benchFanOut(b, n, kind, false) })
		}
	}
}

// benchFanOut is BenchmarkFanOut's body; watched counts deliveries by topic meanwhile, as
// while a dashboard watches.
func benchFanOut(b *testing.B, n int, kind string, watched bool) {
	h, _ := newHub(b, Config{QueueSize: 1000}, false)
	if watched {
		defer h.WatchDeliveries()()
	}
	spec := topic.Spec{Type: topic.MatchTopic, Value: "https://example.com/books/1"}
	switch kind {
	case "template":
		spec.Value = "https://example.com/books/{id}"
	case "urlpattern":
		spec = topic.Spec{Type: topic.MatchURLPattern, Value: "https://example.com/books/:id"}
	}
	subs := make([]*Subscriber, n)
	for i := range subs {
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(b, h.Matcher(), spec)})
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	// A second topic with other subscribers, which the dispatch must not visit.
	for range 100 {
		if _, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "https://example.com/other")}); err != nil {
			b.Fatal(err)
		}
	}
	u := &transport.Update{ID: "urn:uuid:0190a8f0-0000-7000-8000-000000000000", Topics: []string{"https://example.com/books/1"}, Data: strings.Repeat("x", 200)}
	var buf []*Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u.Seq = uint64(i + 1)
		if kind == "exact" {
			h.dispatch(u)
		} else {
			h.dispatchWild(context.Background(), u)
		}
		if i%64 == 63 {
			b.StopTimer()
			for _, s := range subs {
				buf = s.Drain(buf)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	for _, s := range subs {
		if s.Err() != nil {
			b.Fatalf("subscriber closed: %v", s.Err())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
}

// BenchmarkEncode measures encoding one update's SSE frame, done once per update.
func BenchmarkEncode(b *testing.B) {
	u := &transport.Update{ID: "urn:uuid:0190a8f0-0000-7000-8000-000000000000", Type: "update", Data: `{"id":1,"title":"a book","tags":["x","y"]}`}
	b.ReportAllocs()
	for b.Loop() {
		_ = Encode(u)
	}
}
