package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
)

func TestBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	b := bucket{rate: 10, burst: 20, tokens: 20, now: func() time.Time { return now }}
	check := func(n int, maxWait, wantWait time.Duration, wantOK bool) {
		t.Helper()
		wait, ok := b.reserve(n, maxWait)
		if wait != wantWait || ok != wantOK {
			t.Fatalf("reserve(%d, %v) = %v, %v; want %v, %v (tokens %v)", n, maxWait, wait, ok, wantWait, wantOK, b.tokens)
		}
	}
	for range 4 {
		check(5, time.Second, 0, true) // the burst
	}
	check(5, time.Second, 500*time.Millisecond, true) // in debt: waits for 5 tokens at 10/s
	check(20, time.Second, 2500*time.Millisecond, false)
	check(1, 0, 600*time.Millisecond, false) // the refusal took nothing
	now = now.Add(time.Second)               // -5 + 10
	check(5, 0, 0, true)
	b.cancel(5)
	check(100, 2*time.Second, 1500*time.Millisecond, true) // more than the burst costs a full bucket
	now = now.Add(time.Hour)
	check(20, 0, 0, true) // refilled up to the burst only
	check(1, 0, 100*time.Millisecond, false)

	unlimited := bucket{rate: -1, now: time.Now}
	if wait, ok := unlimited.reserve(1_000_000, 0); wait != 0 || !ok {
		t.Fatalf("unlimited reserve = %v, %v; want 0, true", wait, ok)
	}
}

// systemUpdates counts the system updates retained by tr.
func systemUpdates(t *testing.T, tr transport.Transport) int {
	t.Helper()
	n := 0
	var after uint64
	for {
		ups, err := tr.Read(context.Background(), after, 1000, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) == 0 {
			return n
		}
		for _, u := range ups {
			if u.System {
				n++
			}
		}
		after = ups[len(ups)-1].Seq
	}
}

func TestSubscriptionEventsRate(t *testing.T) {
	h, tr := newHub(t, Config{Subscriptions: true, SubscriptionEventsRate: 0.1, SubscriptionEventsBurst: 6}, false)
	m := h.Matcher()
	var subs []*Subscriber
	for i := range 2 {
		s, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, fmt.Sprint("a", i), fmt.Sprint("b", i), fmt.Sprint("c", i))})
		if err != nil {
			t.Fatalf("subscription %d within the burst: %v", i, err)
		}
		subs = append(subs, s)
	}
	_, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "x", "y", "z")})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.RetryAfter <= 29*time.Second || busy.RetryAfter > 30*time.Second {
		t.Fatalf("subscription past the burst = %v; want a BusyError to retry after 30s", err)
	}
	if n := h.Subscribers(); n != 2 {
		t.Fatalf("%d subscribers registered, want 2: a refused one is not", n)
	}
	if n := systemUpdates(t, tr); n != 6 {
		t.Fatalf("%d subscription events written, want 6", n)
	}
	for _, s := range subs {
		h.Unsubscribe(s) // departures are always announced
	}
	if n := systemUpdates(t, tr); n != 12 {
		t.Fatalf("%d subscription events written after the departures, want 12", n)
	}
}

func TestSubscriptionEventsWaitHonoursContext(t *testing.T) {
	h, tr := newHub(t, Config{Subscriptions: true, SubscriptionEventsRate: 1, SubscriptionEventsBurst: 3}, false)
	m := h.Matcher()
	if _, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "a", "b", "c")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Subscribe(ctx, SubscribeOptions{Selectors: sels(m, "x", "y", "z")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting subscription whose request ended = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the subscription waited %v after its request ended", d)
	}
	if n := systemUpdates(t, tr); n != 3 {
		t.Fatalf("%d subscription events written, want 3", n)
	}
	// The abandoned reservation was given back: the bucket is no deeper in debt.
	if wait, ok := h.pres.bucket.reserve(0, 0); !ok || wait != 0 {
		t.Fatalf("after the cancelled wait, reserve(0) = %v, %v; want 0, true", wait, ok)
	}
}

// TestPresenceFloodKeepsHistory writes four times the history bound in subscription events
// after a publisher's update and checks that a Last-Event-ID from before it still replays
// exactly it and what follows: the hub marks them System. (transporttest's SystemFlood
// appends 250 000 of them to each transport.)
func TestPresenceFloodKeepsHistory(t *testing.T) {
	tr := memory.New(memory.Options{Size: 1000, SystemSize: 500})
	t.Cleanup(func() { _ = tr.Close() })
	presenceFlood(t, tr)
}

func presenceFlood(t *testing.T, tr transport.Transport) {
	const subscribers, selectors = 20, 100
	m := topic.NewMatcher(1000)
	h, err := New(Config{Transport: tr, Matcher: m, Subscriptions: true, SubscriptionEventsRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, h)
	publish(t, h, "before", false, "https://example.com/books/1")
	publish(t, h, "canary", false, "https://example.com/books/1")
	raw := make([]string, selectors)
	for i := range raw {
		raw[i] = fmt.Sprintf("https://example.com/flood/%d", i)
	}
	for range subscribers {
		s, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, raw...)})
		if err != nil {
			t.Fatal(err)
		}
		h.Unsubscribe(s) // another 1 000 events
	}
	publish(t, h, "after", false, "https://example.com/books/1")
	if n := systemUpdates(t, tr); n == 0 || n > 2*subscribers*selectors {
		t.Fatalf("%d subscription events retained", n)
	}

	after, header, err := h.Resolve(t.Context(), "before")
	if err != nil || header != "before" {
		t.Fatalf("Resolve(before) = %d, %q, %v; want the update, not %q", after, header, err, Earliest)
	}
	s, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "https://example.com/books/1"), Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(s)
	var got []string
	err = h.Replay(t.Context(), s, after, func(evs []*Event) error {
		got = append(got, idsOf(evs)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, "canary", "after")
}

// The subscriptions API's lastEventID, the ID of a subscription event, resolves for a reader
// of subscription events, who is then replayed exactly what followed it.
func TestSubscriptionsLastEventIDResolves(t *testing.T) {
	h, _ := newHub(t, Config{Subscriptions: true}, true)
	m := h.Matcher()
	first, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "a")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(first)
	var last string
	deadline := time.Now().Add(5 * time.Second)
	for {
		subs, id := h.SubscriptionsSnapshot(SubscriptionFilter{})
		if len(subs) == 1 {
			last = id
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription event was not dispatched")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "b")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(second)

	after, header, err := h.Resolve(t.Context(), last)
	if err != nil || header != last {
		t.Fatalf("Resolve(%q) = %d, %q, %v; want the event itself", last, after, header, err)
	}
	watch := sels(m, SubscriptionsPath+"{/topic}{/subscriber}")
	w, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: watch, Allowed: watch, Replay: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(w)
	var topics []string
	err = h.Replay(t.Context(), w, after, func(evs []*Event) error {
		for _, e := range evs {
			topics = append(topics, e.Update.Topics[0])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, topics, SubscriptionID("b", second.ID), SubscriptionID(watch[0].Raw(), w.ID))
}

// Each subscription is announced in the form of the dialect its selector came in: a 0.x topic
// selector as the JSON-LD document under /subscriptions/{topic}/{subscriber}; a draft-08
// matcher as the plain JSON document under /subscriptions/{match_type}/{match}/{subscriber},
// with the SSE event type "mercure" (draft-08, "Subscription Events").
func TestSubscriptionEventsInBothDialects(t *testing.T) {
	h, _ := newHub(t, Config{Subscriptions: true}, true)
	m := h.Matcher()
	all := sels(m, "*")
	w, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: all, Allowed: all})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(w)
	spec := func(typ topic.MatchType, v string) *topic.Selector {
		s, err := m.CompileSpec(topic.Spec{Type: typ, Value: v})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	selectors := []*topic.Selector{
		m.Compile("https://example.com/books/{id}"),
		spec(topic.MatchExact, "https://example.com/books/1"),
		spec(topic.MatchURLPattern, "https://example.com/books/:id"),
	}
	s, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: selectors, Payload: []byte(`{"user":"ann"}`)})
	if err != nil {
		t.Fatal(err)
	}
	id := EscapeSegment(s.ID)
	type event struct{ topic, typ, data string }
	want := func(active bool) []event {
		a := fmt.Sprint(active)
		return []event{
			{SubscriptionsPath + "/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/" + id, "",
				`{"@context":"https://mercure.rocks/","id":"` + SubscriptionsPath + `/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/` + id + `","type":"Subscription","subscriber":"` + s.ID + `","topic":"https://example.com/books/{id}","active":` + a + `,"payload":{"user":"ann"}}`},
			{SubscriptionsPath + "/exact/https%3A%2F%2Fexample.com%2Fbooks%2F1/" + id, "mercure",
				`{"id":"` + SubscriptionsPath + `/exact/https%3A%2F%2Fexample.com%2Fbooks%2F1/` + id + `","type":"subscription","subscriber":"` + s.ID + `","match_type":"exact","match":"https://example.com/books/1","active":` + a + `,"payload":{"user":"ann"}}`},
			{SubscriptionsPath + "/urlpattern/https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid/" + id, "mercure",
				`{"id":"` + SubscriptionsPath + `/urlpattern/https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid/` + id + `","type":"subscription","subscriber":"` + s.ID + `","match_type":"urlpattern","match":"https://example.com/books/:id","active":` + a + `,"payload":{"user":"ann"}}`},
		}
	}
	check := func(evs []*Event, want []event) {
		t.Helper()
		evs = slices.DeleteFunc(evs, func(e *Event) bool { return strings.HasSuffix(e.Update.Topics[0], EscapeSegment(w.ID)) })
		if len(evs) != len(want) {
			t.Fatalf("%d events of the subscriber, want %d", len(evs), len(want))
		}
		for i, e := range evs {
			u := e.Update
			got := event{u.Topics[0], u.Type, u.Data}
			if len(u.Topics) != 1 || !u.Private || !u.System || got != want[i] {
				t.Errorf("event %d:\n got %+v (topics %q, private %v, system %v)\nwant %+v", i, got, u.Topics, u.Private, u.System, want[i])
			}
		}
	}
	check(collectEvents(t, w, 4), want(true)) // and the watcher's own

	// The table of active subscriptions holds both forms; its filters keep them apart.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if subs, _ := h.SubscriptionsSnapshot(SubscriptionFilter{Subscriber: s.ID}); len(subs) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the table never listed the three subscriptions")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range []struct {
		f    SubscriptionFilter
		want string
	}{
		{SubscriptionFilter{Topic: "https://example.com/books/{id}"}, "https://example.com/books/{id}"},
		{SubscriptionFilter{Topic: "https://example.com/books/1"}, ""}, // a draft-08 matcher is not a topic selector
		{SubscriptionFilter{MatchType: "exact", Match: "https://example.com/books/1"}, "https://example.com/books/1"},
		{SubscriptionFilter{MatchType: "urlpattern", Match: "https://example.com/books/1"}, ""},
		{SubscriptionFilter{MatchType: "urlpattern", Match: "https://example.com/books/:id", Subscriber: s.ID}, "https://example.com/books/:id"},
		{SubscriptionFilter{MatchType: "exact", Match: "https://example.com/books/1", Subscriber: "urn:uuid:other"}, ""},
	} {
		subs, _ := h.SubscriptionsSnapshot(c.f)
		var got string
		if len(subs) == 1 {
			got = subs[0].Topic + subs[0].Match
		}
		if len(subs) > 1 || got != c.want {
			t.Errorf("SubscriptionsSnapshot(%+v) = %+v; want %q", c.f, subs, c.want)
		}
	}

	h.Unsubscribe(s)
	check(collectEvents(t, w, 3), want(false))
}

// TestForgedSubscriptionEventIgnored publishes, as a publisher would (not System), updates
// shaped exactly as subscription events of both dialects and as another node's snapshot, then
// a real subscription: the registry lists the real one only.
func TestForgedSubscriptionEventIgnored(t *testing.T) {
	h, _ := newHub(t, Config{Subscriptions: true}, true)
	m := h.Matcher()
	node := "urn:uuid:01020304-0000-8000-8000-000000000000" // a version 8 id of node 01020304
	snap, err := json.Marshal(controlMessage{Node: "01020304", Subscriptions: []Subscription{
		{ID: SubscriptionID("a", node), Type: docSubscription, Subscriber: node, Topic: "a", Active: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctl := &transport.Update{ID: "forged-snapshot", Topics: []string{ClusterPath + "nodes/01020304"}, Private: true, Type: ctlSnapshot, Data: string(snap)}
	if err := h.Publish(t.Context(), ctl); err != nil {
		t.Fatal(err)
	}
	for _, forged := range []Subscription{
		{ID: SubscriptionID("a", "forged"), Type: docSubscription, Subscriber: "forged", Topic: "a", Active: true},
		{ID: SubscriptionID08("exact", "a", "forged"), Type: docSubscription08, Subscriber: "forged", MatchType: "exact", Match: "a", Active: true},
	} {
		data, err := json.Marshal(forged)
		if err != nil {
			t.Fatal(err)
		}
		u := &transport.Update{ID: "forged-" + forged.Type, Topics: []string{forged.ID}, Private: true, Data: string(data)}
		if forged.Draft08() {
			u.Type = SubscriptionEventType
		}
		if err := h.Publish(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.Subscribe(t.Context(), SubscribeOptions{Selectors: sels(m, "b")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unsubscribe(s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		subs, _ := h.SubscriptionsSnapshot(SubscriptionFilter{})
		if len(subs) > 0 {
			ids := make([]string, len(subs))
			for i, sub := range subs {
				ids[i] = sub.ID
			}
			equal(t, ids, SubscriptionID("b", s.ID))
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscription event was not dispatched")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
