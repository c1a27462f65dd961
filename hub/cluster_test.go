package hub

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport/memory"
)

// node is one hub of a test cluster sharing a transport.
type node struct {
	*Hub
	stop func() // stops Run (and the cluster loop): the node "dies" without goodbyes
}

func startNode(t *testing.T, tr *memory.Transport) *node {
	t.Helper()
	return startNodeAt(t, tr, "")
}

// startNodeAt starts a node whose heartbeats give addr.
func startNodeAt(t *testing.T, tr *memory.Transport, addr string) *node {
	t.Helper()
	h, err := New(Config{Transport: tr, Matcher: topic.NewMatcher(100), Subscriptions: true, Cluster: true,
		NodeHeartbeat: 20 * time.Millisecond, NodeTTL: 150 * time.Millisecond, NodeAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	stopped := false
	n := &node{Hub: h, stop: func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}}
	t.Cleanup(n.stop)
	return n
}

func waitSubs(t *testing.T, n *node, what string, want int) []Subscription {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		subs, _ := n.SubscriptionsSnapshot(SubscriptionFilter{})
		if len(subs) == want {
			return subs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d subscriptions, want %d: %+v", what, len(subs), want, subs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterSharesSubscriptions(t *testing.T) {
	tr := memory.New(memory.Options{})
	t.Cleanup(func() { _ = tr.Close() })
	a, b := startNode(t, tr), startNode(t, tr)
	m := a.Matcher()

	// A watcher on node b follows presence.
	watcher, err := b.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, SubscriptionsPath+"{/topic}{/subscriber}"), Allowed: sels(m, "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Unsubscribe(watcher)

	s1, err := a.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "x", "y"), Payload: []byte(`{"u":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if tag, ok := nodeOf(s1.ID); !ok || tag != a.node {
		t.Fatalf("subscriber id %s does not carry node a's tag", s1.ID)
	}
	waitSubs(t, b, "node b sees node a's subscriber", 3) // x, y and the watcher

	// A node that starts later learns the existing subscriptions from the others' snapshots.
	c := startNode(t, tr)
	subs := waitSubs(t, c, "late node c", 3)
	for _, s := range subs {
		if s.Subscriber == s1.ID && string(s.Payload) != `{"u":1}` {
			t.Fatalf("snapshot lost the payload: %+v", s)
		}
	}

	// Control updates are never delivered to subscribers, even to one that sees everything.
	all, err := c.Subscribe(context.Background(), SubscribeOptions{Selectors: sels(m, "*"), Allowed: sels(m, "*")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Unsubscribe(all)

	// Node a dies without a word: its subscriptions expire on b and c, and one departure
	// event per subscription reaches the watcher.
	a.stop()
	waitSubs(t, b, "node b after a died", 2)
	waitSubs(t, c, "node c after a died", 2)
	departures := map[string]int{}
	var evs []*Event
	deadline := time.After(5 * time.Second)
	for len(departures) < 2 {
		select {
		case <-watcher.Ready():
		case <-deadline:
			t.Fatalf("departures seen: %v", departures)
		}
		evs = watcher.Drain(evs)
		for _, e := range evs {
			var s Subscription
			if err := json.Unmarshal([]byte(e.Update.Data), &s); err != nil {
				t.Fatal(err)
			}
			if s.Subscriber == s1.ID && !s.Active {
				departures[s.Topic]++
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // more heartbeats: no second announcement
	for _, e := range watcher.Drain(nil) {
		var s Subscription
		_ = json.Unmarshal([]byte(e.Update.Data), &s)
		if s.Subscriber == s1.ID && !s.Active {
			departures[s.Topic]++
		}
	}
	if departures["x"] != 1 || departures["y"] != 1 {
		t.Fatalf("departure events %v, want one each for x and y", departures)
	}
	for _, e := range all.Drain(nil) {
		if isControl(e.Update) {
			t.Fatalf("a control update was delivered: %+v", e.Update)
		}
	}
}

func TestSubscriberIDCarriesNode(t *testing.T) {
	for range 100 {
		tag := newNodeTag()
		id := newSubscriberID(tag)
		got, ok := nodeOf(id)
		if !ok || got != tag {
			t.Fatalf("%s: tag %x, want %x", id, got, tag)
		}
	}
	if _, ok := nodeOf("urn:uuid:" + "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"); ok {
		t.Fatal("a v4 uuid has no node tag")
	}
}
