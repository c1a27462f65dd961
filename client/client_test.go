package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhub/herald/client"
	"github.com/heraldhub/herald/server"
)

func TestPublishAndSubscribe(t *testing.T) {
	th := newTestHub(t, nil)
	ctx := context.Background()
	onConnect, conns := connected()
	sub := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{
		Topics:    []string{"https://example.com/books/{id}"},
		Token:     mercureToken(t, nil, []string{"https://example.com/books/1"}),
		OnConnect: onConnect,
	})
	defer sub.Close()
	c := waitConn(t, conns)
	if c.Attempt != 0 || c.LastEventID != "" || c.ResponseLastEventID != "" || c.Header.Get("Content-Type") == "" {
		t.Fatalf("first connection %+v", c)
	}

	pub := mercureToken(t, []string{"*"}, nil)
	id, err := th.Client.Publish(ctx, th.URL, pub, client.Update{
		Topics: []string{"https://example.com/books/1", "https://example.com/all"},
		Data:   "line 1\nline 2", ID: "book-1", Type: "created", Retry: 1500, Private: true,
	})
	if err != nil || id != "book-1" {
		t.Fatalf("publish = %q, %v", id, err)
	}
	// A private update the token may not see, then a public one with an id chosen by the hub.
	if _, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{"https://example.com/books/2"}, Data: "secret", Private: true}); err != nil {
		t.Fatal(err)
	}
	id2, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{"https://example.com/books/2"}, Data: "public"})
	if err != nil || id2 == "" {
		t.Fatalf("publish = %q, %v", id2, err)
	}

	if ev := next(t, sub); ev != (client.Event{ID: "book-1", Type: "created", Data: "line 1\nline 2"}) {
		t.Fatalf("event %+v", ev)
	}
	if ev := next(t, sub); ev != (client.Event{ID: id2, Data: "public"}) {
		t.Fatalf("event %+v", ev)
	}
	if got := sub.LastEventID(); got != id2 {
		t.Fatalf("LastEventID = %q, want %q", got, id2)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, ok := <-sub.Events(); ok {
		t.Fatal("Events not closed after Close")
	}
	if sub.Reconnects() != 0 || sub.Connections() != 1 {
		t.Fatalf("reconnects %d, connections %d", sub.Reconnects(), sub.Connections())
	}
}

func TestPublishErrors(t *testing.T) {
	th := newTestHub(t, nil)
	ctx := context.Background()
	books := mercureToken(t, []string{"https://example.com/books/{id}"}, nil)
	tests := []struct {
		name   string
		token  string
		u      client.Update
		status int
		reason string
	}{
		{"no token", "", client.Update{Topics: []string{"a"}}, 401, "missing JWT"},
		{"bad token", "not.a.jwt", client.Update{Topics: []string{"a"}}, 401, ""},
		{"topic not allowed", books, client.Update{Topics: []string{"https://example.com/authors/1"}}, 403, `token may not publish to topic "https://example.com/authors/1"`},
		{"empty topic", books, client.Update{Topics: []string{""}}, 400, "empty topic"},
		{"reserved id", books, client.Update{Topics: []string{"https://example.com/books/1"}, ID: "earliest"}, 400, `Invalid "id"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := th.Client.Publish(ctx, th.URL, tc.token, tc.u)
			var he *client.HTTPError
			if !errors.As(err, &he) || he.Status != tc.status || he.Reason == "" || (tc.reason != "" && !startsWith(he.Reason, tc.reason)) {
				t.Fatalf("err = %#v (%v), want status %d reason %q", err, err, tc.status, tc.reason)
			}
		})
	}
	if _, err := th.Client.Publish(ctx, th.URL, books, client.Update{}); err == nil {
		t.Fatal("an update without topic was sent")
	}
	// A duplicate id: 409.
	u := client.Update{Topics: []string{"https://example.com/books/1"}, ID: "dup"}
	if _, err := th.Client.Publish(ctx, th.URL, books, u); err != nil {
		t.Fatal(err)
	}
	_, err := th.Client.Publish(ctx, th.URL, books, u)
	if he := (*client.HTTPError)(nil); !errors.As(err, &he) || he.Status != http.StatusConflict {
		t.Fatalf("duplicate id: %v", err)
	}
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }

// TestSubscribeRefused: a 4xx ends the subscription at once with the hub's reason.
func TestSubscribeRefused(t *testing.T) {
	th := newTestHub(t, nil)
	for _, tc := range []struct {
		name   string
		opts   client.SubscribeOptions
		status int
	}{
		{"no token", client.SubscribeOptions{Topics: []string{"a"}}, 401},
		{"bad token", client.SubscribeOptions{Topics: []string{"a"}, Token: "x.y.z"}, 401},
		{"bad cookie", client.SubscribeOptions{Topics: []string{"a"}, Token: "x.y.z", CookieName: client.DefaultCookieName}, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.RetryDelay = time.Millisecond
			sub := th.Client.Subscribe(context.Background(), th.URL, tc.opts)
			select {
			case <-sub.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the subscription did not stop")
			}
			var he *client.HTTPError
			if err := sub.Err(); !errors.As(err, &he) || he.Status != tc.status || he.Reason == "" {
				t.Fatalf("Err = %v", err)
			}
			if _, ok := <-sub.Events(); ok {
				t.Fatal("an event on a refused subscription")
			}
			if sub.Reconnects() != 0 || sub.Connections() != 0 {
				t.Fatalf("reconnects %d, connections %d", sub.Reconnects(), sub.Connections())
			}
		})
	}
	// No topic and a bad URL fail without a request.
	if err := th.Client.Subscribe(context.Background(), th.URL, client.SubscribeOptions{}).Close(); err == nil {
		t.Fatal("no error without topics")
	}
	if err := th.Client.Subscribe(context.Background(), "ftp://x", client.SubscribeOptions{Topics: []string{"a"}}).Close(); err == nil {
		t.Fatal("no error for an ftp URL")
	}
}

// TestSubscribeCookieAndHandler: the token in the cookie, events through a Handler.
func TestSubscribeCookieAndHandler(t *testing.T) {
	th := newTestHub(t, nil)
	got := make(chan client.Event, 10)
	onConnect, conns := connected()
	sub := th.Client.Subscribe(context.Background(), th.URL, client.SubscribeOptions{
		Topics: []string{"news"}, Token: mercureToken(t, nil, []string{"news"}), CookieName: client.DefaultCookieName,
		Handler: func(ev client.Event) { got <- ev }, OnConnect: onConnect,
	})
	defer sub.Close()
	if sub.Events() != nil {
		t.Fatal("Events is not nil with a Handler")
	}
	waitConn(t, conns)
	if _, err := th.Client.Publish(context.Background(), th.URL, mercureToken(t, []string{"*"}, nil), client.Update{Topics: []string{"news"}, Data: "private", ID: "p1", Private: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.ID != "p1" || ev.Data != "private" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// TestSubscribeHistory: LastEventID replays what followed that id, "earliest" everything,
// and the response header of each connection is exposed.
func TestSubscribeHistory(t *testing.T) {
	th := newTestHub(t, nil)
	ctx := context.Background()
	pub := mercureToken(t, []string{"*"}, nil)
	for i := range 5 {
		if _, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{"h"}, Data: strconv.Itoa(i), ID: fmt.Sprint("h", i)}); err != nil {
			t.Fatal(err)
		}
	}
	subTok := mercureToken(t, nil, []string{"*"})
	for _, tc := range []struct{ last, header, first string }{
		{"h1", "h1", "2"},
		{"earliest", "earliest", "0"},
		{"unknown", "earliest", "0"},
	} {
		onConnect, conns := connected()
		sub := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{Topics: []string{"h"}, Token: subTok, LastEventID: tc.last, OnConnect: onConnect})
		c := waitConn(t, conns)
		if c.LastEventID != tc.last || c.ResponseLastEventID != tc.header || sub.ResponseLastEventID() != tc.header {
			t.Fatalf("%s: connection %+v, ResponseLastEventID %q", tc.last, c, sub.ResponseLastEventID())
		}
		if ev := next(t, sub); ev.Data != tc.first {
			t.Fatalf("%s: first event %+v", tc.last, ev)
		}
		for ev := next(t, sub); ev.Data != "4"; ev = next(t, sub) {
		}
		if sub.LastEventID() != "h4" {
			t.Fatalf("LastEventID = %q", sub.LastEventID())
		}
		sub.Close()
	}
}

// TestSubscribeReconnects is the reconnection test: streams end every ~300 ms while a
// publisher publishes; the subscription delivers every update exactly once and in order.
func TestSubscribeReconnects(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.WriteTimeout = 300 * time.Millisecond })
	ctx := context.Background()
	onConnect, conns := connected()
	sub := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{
		Topics: []string{"r"}, Token: mercureToken(t, nil, []string{"*"}),
		RetryDelay: 20 * time.Millisecond, OnConnect: onConnect, Buffer: 1,
	})
	defer sub.Close()
	waitConn(t, conns)

	const n = 300
	pubErr := make(chan error, 1)
	go func() {
		pub := mercureToken(t, []string{"*"}, nil)
		for i := range n {
			if _, err := th.Client.Publish(ctx, th.URL, pub, client.Update{Topics: []string{"r"}, Data: strconv.Itoa(i)}); err != nil {
				pubErr <- err
				return
			}
			time.Sleep(4 * time.Millisecond)
		}
		pubErr <- nil
	}()
	var lastID string
	for i := range n {
		ev := next(t, sub)
		if ev.Data != strconv.Itoa(i) {
			t.Fatalf("event %d has data %q (id %s)", i, ev.Data, ev.ID)
		}
		if ev.ID == "" || ev.ID == lastID {
			t.Fatalf("event %d has id %q after %q", i, ev.ID, lastID)
		}
		lastID = ev.ID
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.Events():
		t.Fatalf("an extra event %+v", ev)
	case <-time.After(400 * time.Millisecond): // past at least one more reconnection
	}
	if sub.Reconnects() < 2 || sub.Connections() < 3 {
		t.Fatalf("reconnects %d, connections %d: the streams did not end", sub.Reconnects(), sub.Connections())
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	// Later connections resumed after the last id received, which the hub knew.
	close(conns)
	for c := range conns {
		if c.Attempt > 0 && (c.LastEventID == "" || c.ResponseLastEventID != c.LastEventID) {
			t.Fatalf("reconnection %+v", c)
		}
	}
}

// TestRetryField: a retry field from the hub replaces the reconnection delay.
func TestRetryField(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.WriteTimeout = 200 * time.Millisecond })
	ctx := context.Background()
	onConnect, conns := connected()
	sub := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{
		Topics: []string{"r"}, Token: mercureToken(t, nil, []string{"*"}),
		RetryDelay: time.Hour, OnConnect: onConnect,
	})
	defer sub.Close()
	waitConn(t, conns)
	if _, err := th.Client.Publish(ctx, th.URL, mercureToken(t, []string{"*"}, nil), client.Update{Topics: []string{"r"}, Data: "x", Retry: 10}); err != nil {
		t.Fatal(err)
	}
	next(t, sub)
	if c := waitConn(t, conns); c.Attempt != 1 {
		t.Fatalf("reconnection %+v", c)
	}
}

// TestBackoff: failed attempts (5xx, then a refused connection) are retried with backoff
// until the hub answers; a 4xx after that stops the subscription.
func TestBackoff(t *testing.T) {
	var calls atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := calls.Add(1); {
		case n <= 3:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
		case n == 4:
			if r.Header.Get("Last-Event-ID") != "" {
				t.Errorf("Last-Event-ID %q before any event", r.Header.Get("Last-Event-ID"))
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ":\nid: a\ndata: 1\n\ndata: 2\n\n")
		case n == 5:
			if r.Header.Get("Last-Event-ID") != "a" {
				t.Errorf("Last-Event-ID %q, want a", r.Header.Get("Last-Event-ID"))
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, ":\ndata: 3\n\nid: b\ndata: 4\n\ndata: incomplete")
		default:
			if r.Header.Get("Last-Event-ID") != "b" {
				t.Errorf("Last-Event-ID %q, want b", r.Header.Get("Last-Event-ID"))
			}
			http.Error(w, "go away", http.StatusForbidden)
		}
	}))
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	c := &client.Client{HTTPClient: hc}
	sub := c.Subscribe(context.Background(), ts.URL, client.SubscribeOptions{Topics: []string{"x"}, RetryDelay: 5 * time.Millisecond})
	var got []client.Event
	for ev := range sub.Events() {
		got = append(got, ev)
	}
	want := []client.Event{{ID: "a", Data: "1"}, {ID: "a", Data: "2"}, {ID: "a", Data: "3"}, {ID: "b", Data: "4"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	var he *client.HTTPError
	if err := sub.Err(); !errors.As(err, &he) || he.Status != 403 || he.Reason != "go away" {
		t.Fatalf("Err = %v", err)
	}
	if sub.Reconnects() != 5 || sub.Connections() != 2 {
		t.Fatalf("reconnects %d, connections %d", sub.Reconnects(), sub.Connections())
	}
	if !errors.As(sub.LastError(), &he) {
		t.Fatalf("LastError = %v", sub.LastError())
	}
}

// TestNotAStream: an answer that is not an event stream stops the subscription.
func TestNotAStream(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>")
	}))
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	sub := (&client.Client{HTTPClient: hc}).Subscribe(context.Background(), ts.URL, client.SubscribeOptions{Topics: []string{"x"}})
	<-sub.Done()
	if sub.Err() == nil {
		t.Fatal("no error")
	}
}

// TestCancel: cancelling the context stops a subscription that is waiting to reconnect and
// one that is reading.
func TestCancel(t *testing.T) {
	th := newTestHub(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	onConnect, conns := connected()
	reading := th.Client.Subscribe(ctx, th.URL, client.SubscribeOptions{Topics: []string{"a"}, Token: mercureToken(t, nil, nil), OnConnect: onConnect})
	waiting := th.Client.Subscribe(ctx, "http://127.0.0.1:1/", client.SubscribeOptions{Topics: []string{"a"}, RetryDelay: time.Hour})
	waitConn(t, conns)
	time.Sleep(50 * time.Millisecond) // the failed attempt is done: waiting an hour to retry
	cancel()
	for _, s := range []*client.Subscription{reading, waiting} {
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("not stopped")
		}
		if s.Err() != nil {
			t.Fatalf("Err = %v", s.Err())
		}
	}
}
