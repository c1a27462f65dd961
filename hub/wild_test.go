package hub

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/yosida95/uritemplate/v3"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// TestWildRoutes checks that the wild loop delivers what a check of every selector against
// every topic would, for templates filed at many prefix lengths, and each update once.
func TestWildRoutes(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	m := h.Matcher()
	raws := []string{
		"{any}",
		"/{a}",
		"/books/{id}",
		"/books/{id}.json",
		"/books/{id}/chapters/{ch}",
		"https://example.com/books/{id}",
		"https://example.com/books/{id}{?q}",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index/{x}",
		"https://example.com/{+path}",
		"https://example.com/books/1",
		"*",
	}
	topics := []string{
		"/books/1", "/books/1.json", "/books/1/chapters/2", "/x", "",
		"https://example.com/books/1", "https://example.com/books/2?q=3", "https://example.com/a/b",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index/1",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index",
	}
	subs := make([]*Subscriber, len(raws))
	for i, raw := range raws {
		// Each subscriber has its template and an exact selector, with one topic in common
		// with the template, so that deduplication is exercised.
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, raw, "/books/1")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Unsubscribe(s) })
		subs[i] = s
	}
	for i, tp := range topics {
		publish(t, h, strconv.Itoa(i), false, tp)
	}
	publish(t, h, "all", false, topics...)
	for i, raw := range raws {
		sel := topic.Compile(raw)
		var want []string
		for j, tp := range topics {
			if sel.Match(tp) || tp == "/books/1" {
				want = append(want, strconv.Itoa(j))
			}
		}
		want = append(want, "all")
		equal(t, collect(t, subs[i], len(want)), want...)
	}
}

// TestTemplateSubscribersShareSelectors checks that subscribers of one template hold one
// selector, and that the index forgets a template with its last subscriber.
func TestTemplateSubscribersShareSelectors(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	sub := func(raw ...string) *Subscriber {
		ss := make([]*topic.Selector, len(raw))
		for i, r := range raw {
			ss[i] = topic.Compile(r) // a selector of its own, as a matcher without a cache gives
		}
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: ss})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := sub("/books/{id}", "/x")
	b := sub("/x", "/books/{id}")
	if a.Selectors[0] != b.Selectors[1] || a.Selectors[1] != b.Selectors[0] {
		t.Error("subscribers of one template hold selectors of their own")
	}
	publish(t, h, "1", false, "/books/1")
	equal(t, collect(t, a, 1), "1")
	equal(t, collect(t, b, 1), "1")
	h.Unsubscribe(a)
	h.Unsubscribe(b)
	h.wmu.RLock()
	defer h.wmu.RUnlock()
	w := &h.wild
	if w.count != 0 || len(w.tpls.entries) != 0 || len(w.pats.entries) != 0 || len(w.exact) != 0 || len(w.any) != 0 {
		t.Fatalf("index not empty: %d subscribers, %d templates, %d patterns, %d exact", w.count, len(w.tpls.entries), len(w.pats.entries), len(w.exact))
	}
	for _, x := range []*prefixIndex{&w.tpls, &w.pats} {
		if len(x.buckets) != 0 || len(x.pairs) != 0 {
			t.Fatalf("buckets left: %v %v", x.buckets, x.pairs)
		}
	}
}

// TestTemplateFloodDoesNotDelayExact registers 100 000 distinct templates that match nothing
// published, then publishes 1 000-topic updates and, between them, updates to one exact topic:
// the exact subscriber gets each of them at once, whatever the wild loop is doing. Before the
// wild loop existed, one dispatch goroutine matched each update against every template, and an
// update took seconds to reach anyone.
func TestTemplateFloodDoesNotDelayExact(t *testing.T) {
	if testing.Short() {
		t.Skip("registers 100 000 templates")
	}
	h, _ := newHub(t, Config{QueueSize: 100_000}, true)
	m := topic.NewMatcher(0) // compile each selector afresh: no cache hides the flood
	regStart := time.Now()
	var flood []*Subscriber
	for i := range 1000 {
		raws := make([]string, 100)
		for j := range raws {
			raws[j] = fmt.Sprintf("https://example.com/{a}/s%d/t%d/{b}", i, j) // empty prefix: a candidate for every topic
			if j%2 == 1 {
				raws[j] = fmt.Sprintf("https://example.com/hostile/s%d/t%d/{b}", i, j)
			}
		}
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, raws...)})
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, s)
	}
	exact, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "https://example.com/news")})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]string, 1000)
	for i := range big {
		big[i] = "https://example.com/books/" + strconv.Itoa(i)
	}
	t.Logf("registered in %v", time.Since(regStart))
	var worst time.Duration
	for i := range 20 {
		publish(t, h, "big"+strconv.Itoa(i), false, big...)
		start := time.Now()
		publish(t, h, "news"+strconv.Itoa(i), false, "https://example.com/news")
		equal(t, collect(t, exact, 1), "news"+strconv.Itoa(i))
		worst = max(worst, time.Since(start))
	}
	t.Logf("slowest exact delivery %v", worst)
	if worst > time.Second {
		t.Errorf("an exact subscriber waited %v for an update beside a template flood", worst)
	}
	unsubStart := time.Now()
	for _, s := range flood {
		h.Unsubscribe(s)
	}
	h.Unsubscribe(exact)
	t.Logf("unsubscribed in %v", time.Since(unsubStart))
}

// TestWildLoopFollowsDispatch checks that a wild subscriber never receives an update before
// the dispatch loop has recorded it, so that LastEventID covers what it got.
func TestWildLoopFollowsDispatch(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(s)
	for i := range 200 {
		publish(t, h, strconv.Itoa(i), false, "t")
	}
	got := 0
	var evs []*Event
	for deadline := time.After(5 * time.Second); got < 200; {
		select {
		case <-s.Ready():
			evs = s.Drain(evs)
			for _, e := range evs {
				if h.done.Load() < e.Update.Seq {
					t.Fatalf("update %d delivered before the dispatch loop reached it (%d)", e.Update.Seq, h.done.Load())
				}
				got++
			}
		case <-deadline:
			t.Fatalf("%d of 200 delivered", got)
		}
	}
}

// TestWildBacklogOverflow checks that wild subscribers are told when the wild loop falls
// further behind than its backlog holds: closed as slow, to reconnect and catch up from
// history, while exact subscribers get everything. Holding the wild index's lock stands in
// for a long template match.
func TestWildBacklogOverflow(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	h.wq.max = 10
	exact, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "t")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(exact)
	wild, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(wild)
	h.wmu.Lock()
	want := make([]string, 30)
	for i := range want {
		want[i] = strconv.Itoa(i)
		publish(t, h, want[i], false, "t")
	}
	equal(t, collect(t, exact, 30), want...)
	h.wmu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); !errors.Is(wild.Err(), ErrSlow); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the wild subscriber left behind was not closed: %v", wild.Err())
		}
	}
	// A wild subscriber that arrives now is served as usual.
	late, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(late)
	publish(t, h, "after", false, "t")
	equal(t, collect(t, late, 1), "after")
	if late.Err() != nil {
		t.Fatalf("the late subscriber was closed: %v", late.Err())
	}
}

// TestWildSubscriberStartsAtRegistration checks that a wild subscriber does not get what the
// dispatch loop had gone past before it registered, however far behind the wild loop is.
func TestWildSubscriberStartsAtRegistration(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	first, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(first)
	publish(t, h, "before", false, "t")
	// Wait for the dispatch loop (not the wild loop) to have gone past it.
	for deadline := time.Now().Add(5 * time.Second); h.done.Load() < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the update was not dispatched")
		}
	}
	second, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(h.Matcher(), "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(second)
	publish(t, h, "after", false, "t")
	equal(t, collect(t, first, 2), "before", "after")
	equal(t, collect(t, second, 1), "after")
}

// TestTemplateIndexMemory bounds what the hub keeps per distinct template: its selector, its
// index entry and its share of the subscriber that holds it, at most 1 KiB.
func TestTemplateIndexMemory(t *testing.T) {
	h, _ := newHub(t, Config{}, false)
	m := topic.NewMatcher(0)
	const subs, per = 100, 100
	before := heapAlloc()
	var all []*Subscriber
	for i := range subs {
		raws := make([]string, per)
		for j := range raws {
			raws[j] = fmt.Sprintf("https://example.com/s%d/books/{id}/chapters/%d{?page}", i, j)
		}
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, raws...)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	perTemplate := (heapAlloc() - before) / (subs * per)
	t.Logf("%d bytes per distinct template", perTemplate)
	if perTemplate > 1024 {
		t.Errorf("%d bytes per distinct template, want at most 1024", perTemplate)
	}
	for _, s := range all {
		h.Unsubscribe(s)
	}
}

func heapAlloc() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// FuzzTemplateIndex checks that the prefix index never hides a template that matches a topic:
// every template that matches is among the candidates the index gives for that topic.
func FuzzTemplateIndex(f *testing.F) {
	f.Add("https://example.com/books/{id}", "https://example.com/books/1", uint64(1))
	f.Add("{a}", "", uint64(2))
	f.Add("https://example.com/{+p}", "https://example.com/a/b/c", uint64(3))
	f.Add("/a/very/long/prefix/that/goes/on/and/on/for/more/than/sixty/four/bytes/{x}", "/a/very/long/prefix/that/goes/on/and/on/for/more/than/sixty/four/bytes/1", uint64(4))
	f.Fuzz(func(t *testing.T, raw, tp string, seed uint64) {
		sel := topic.Compile(raw)
		if sel.Kind() != topic.KindTemplate {
			return
		}
		w := newWildIndex()
		r := rand.New(rand.NewPCG(seed, seed))
		// Other templates filed beside it, with prefixes cut from the topic.
		var others []*Subscriber
		for range 5 {
			n := r.IntN(len(tp) + 1)
			o := &Subscriber{Selectors: []*topic.Selector{topic.Compile(tp[:n] + "{x}")}}
			if o.Selectors[0].Kind() == topic.KindTemplate {
				w.add(o)
				others = append(others, o)
			}
		}
		s := &Subscriber{Selectors: []*topic.Selector{sel}}
		w.add(s)
		want := uritemplate.MustNew(raw).Regexp().MatchString(tp)
		found := false
		for _, c := range w.tpls.candidates(nil, tp, tp, 1) {
			if c.e.sel == s.Selectors[0] {
				found = true
			}
		}
		if want && !found {
			t.Fatalf("%q matches %q but the index does not offer it", raw, tp)
		}
		w.remove(s)
		for _, o := range others {
			w.remove(o)
		}
		if w.count != 0 || len(w.tpls.entries) != 0 {
			t.Fatalf("index not empty after removing everything: %d, %d", w.count, len(w.tpls.entries))
		}
	})
}

// BenchmarkTemplateFlood measures what one update to an exact topic costs the wild loop when
// 100 000 distinct templates are registered, with and without the prefix index's help.
//
// The urlpattern rows do the same with as many distinct URL patterns ("distinct": each with its
// own literal path; "shared": all under the topic's path, each with its own literal end).
func BenchmarkTemplateFlood(b *testing.B) {
	for _, kind := range []string{"template", "urlpattern"} {
		for _, prefix := range []string{"distinct", "shared"} {
			name := "prefix=" + prefix
			if kind == "urlpattern" {
				name = "urlpattern/" + name
			}
			b.Run(name, func(b *testing.B) { benchFlood(b, kind, prefix) })
		}
	}
}

func benchFlood(b *testing.B, kind, prefix string) {
	{
		{
			h, _ := newHub(b, Config{}, false)
			m := h.Matcher()
			for i := range 1000 {
				specs := make([]topic.Spec, 100)
				for j := range specs {
					switch {
					case kind == "template" && prefix == "distinct":
						specs[j] = topic.Spec{Value: fmt.Sprintf("https://example.com/s%d/t%d/{id}", i, j)}
					case kind == "template":
						specs[j] = topic.Spec{Value: fmt.Sprintf("https://example.com/books/{id}/s%d/t%d", i, j)}
					case prefix == "distinct":
						specs[j] = topic.Spec{Type: topic.MatchURLPattern, Value: fmt.Sprintf("https://example.com/s%d/t%d/:id", i, j)}
					default:
						specs[j] = topic.Spec{Type: topic.MatchURLPattern, Value: fmt.Sprintf("https://example.com/books/:id/s%d/t%d", i, j)}
					}
				}
				if _, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(b, m, specs...)}); err != nil {
					b.Fatal(err)
				}
			}
			u := &transport.Update{ID: "x", Topics: []string{"https://example.com/books/1"}, Data: "x"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				u.Seq = uint64(i + 1)
				h.dispatchWild(context.Background(), u)
			}
		}
	}
}
