package client_test

import (
	"context"
	"testing"

	"github.com/heraldhub/herald/client"
)

// Draft-08 matchers travel as match= and match_urlpattern=, beside 0.x topic selectors, and the
// hub's Mercure-Last-Event-ID answer is what ResponseLastEventID reports.
func TestSubscribeMatchers(t *testing.T) {
	th := newTestHub(t, nil)
	ctx := context.Background()
	pub := mercureToken(t, []string{"*"}, nil)
	first, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{"https://example.com/books/0"}, Data: "before"})
	if err != nil {
		t.Fatal(err)
	}
	onConnect, conns := connected()
	sub := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{
		Topics: []string{"https://example.com/legacy/{id}"},
		Matchers: []client.Matcher{
			{Value: "https://example.com/books/1"},
			{Type: "urlpattern", Value: "https://example.com/authors/:id"},
		},
		Token:       mercureToken(t, nil, []string{"*"}),
		LastEventID: first,
		OnConnect:   onConnect,
	})
	defer sub.Close()
	if c := waitConn(t, conns); c.ResponseLastEventID != first {
		t.Fatalf("first connection %+v, want the hub to resume after %q", c, first)
	}
	for _, topic := range []string{"https://example.com/books/2", "https://example.com/books/1", "https://example.com/authors/7", "https://example.com/authors/7/books", "https://example.com/legacy/3"} {
		if _, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{topic}, ID: topic, Data: topic}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"https://example.com/books/1", "https://example.com/authors/7", "https://example.com/legacy/3"} {
		if ev := next(t, sub); ev != (client.Event{ID: want, Data: want}) {
			t.Fatalf("event %+v, want %s", ev, want)
		}
	}
}
