package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
)

const subscriptionsSelector = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"

func newSubscriptionsHub(t *testing.T) *testHub {
	return newTestHubWith(t, func(c *hub.Config) { c.Subscriptions = true }, func(c *server.Config) { c.Subscriptions = true; c.Anonymous = true })
}

// get fetches an API document and returns status, headers and body.
func (th *testHub) get(t *testing.T, path string, header http.Header) (int, http.Header, string) {
	t.Helper()
	base := strings.TrimSuffix(th.URL, server.Path)
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestSubscriptionEventsAndAPI(t *testing.T) {
	th := newSubscriptionsHub(t)
	watcherTok := mercureToken(t, nil, []string{subscriptionsSelector})
	watcher := th.subscribe(t, "topic="+url.QueryEscape(subscriptionsSelector), bearer(watcherTok))
	watcherID := (nextPresence(t, watcher)).Subscriber // the watcher sees its own arrival

	// A client with a payload connects with two selectors, on a raw connection so that it
	// can vanish abruptly later.
	clientTok := token(t, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"*"}, "payload": map[string]any{"user": "alice"}}})
	addr := strings.TrimPrefix(strings.TrimSuffix(th.URL, server.Path), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET %s?topic=%s&topic=a HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", server.Path, url.QueryEscape("https://example.com/books/{id}"), addr, clientTok)

	first, second := nextPresence(t, watcher), nextPresence(t, watcher)
	clientID := first.Subscriber
	books := "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/" + hub.EscapeSegment(clientID)
	aID := "/.well-known/mercure/subscriptions/a/" + hub.EscapeSegment(clientID)
	if !strings.HasPrefix(clientID, "urn:uuid:") || first.ID != books || second.ID != aID {
		t.Fatalf("events %+v %+v", first, second)
	}
	wantEvent := fmt.Sprintf(`{"@context":"https://mercure.rocks/","id":%q,"type":"Subscription","subscriber":%q,"topic":"https://example.com/books/{id}","active":true,"payload":{"user":"alice"}}`, books, clientID)
	if first.raw != wantEvent {
		t.Fatalf("event\n%s\nwant\n%s", first.raw, wantEvent)
	}

	watcherSub := fmt.Sprintf(`{"id":%q,"type":"Subscription","subscriber":%q,"topic":%q,"active":true}`,
		"/.well-known/mercure/subscriptions/"+hub.EscapeSegment(subscriptionsSelector)+"/"+hub.EscapeSegment(watcherID), watcherID, subscriptionsSelector)
	booksSub := fmt.Sprintf(`{"id":%q,"type":"Subscription","subscriber":%q,"topic":"https://example.com/books/{id}","active":true,"payload":{"user":"alice"}}`, books, clientID)
	aSub := fmt.Sprintf(`{"id":%q,"type":"Subscription","subscriber":%q,"topic":"a","active":true,"payload":{"user":"alice"}}`, aID, clientID)
	sorted := func(docs ...string) string { // the API sorts by id
		ids := map[string]string{}
		var keys []string
		for _, d := range docs {
			var s struct{ ID string }
			_ = json.Unmarshal([]byte(d), &s)
			ids[s.ID] = d
			keys = append(keys, s.ID)
		}
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				if keys[j] < keys[i] {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		var out []string
		for _, k := range keys {
			out = append(out, ids[k])
		}
		return strings.Join(out, ",")
	}

	code, h, body := th.get(t, "/.well-known/mercure/subscriptions", bearer(watcherTok))
	last := second.eventID
	want := fmt.Sprintf(`{"@context":"https://mercure.rocks/","id":"/.well-known/mercure/subscriptions","type":"Subscriptions","lastEventID":%q,"subscriptions":[%s]}`+"\n", last, sorted(watcherSub, booksSub, aSub))
	if code != 200 || body != want || h.Get("Content-Type") != "application/ld+json" || h.Get("ETag") != `"`+last+`"` {
		t.Fatalf("collection: %d %v\n%s\nwant\n%s", code, h, body, want)
	}

	code, _, body = th.get(t, "/.well-known/mercure/subscriptions/a", bearer(watcherTok))
	want = fmt.Sprintf(`{"@context":"https://mercure.rocks/","id":"/.well-known/mercure/subscriptions/a","type":"Subscriptions","lastEventID":%q,"subscriptions":[%s]}`+"\n", last, aSub)
	if code != 200 || body != want {
		t.Fatalf("topic collection: %d\n%s\nwant\n%s", code, body, want)
	}

	code, _, body = th.get(t, aID, bearer(watcherTok))
	want = fmt.Sprintf(`{"@context":"https://mercure.rocks/","id":%q,"type":"Subscription","subscriber":%q,"topic":"a","active":true,"payload":{"user":"alice"},"lastEventID":%q}`+"\n", aID, clientID, last)
	if code != 200 || body != want {
		t.Fatalf("one subscription: %d\n%s\nwant\n%s", code, body, want)
	}

	if code, _, _ := th.get(t, "/.well-known/mercure/subscriptions", http.Header{"Authorization": {"Bearer " + watcherTok}, "If-None-Match": {`"` + last + `"`}}); code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", code)
	}

	// The client vanishes without closing its stream cleanly: a reset.
	_ = conn.(*net.TCPConn).SetLinger(0)
	conn.Close()
	gone1, gone2 := nextPresence(t, watcher), nextPresence(t, watcher)
	if gone1.Active || gone2.Active || gone1.Subscriber != clientID || gone2.Subscriber != clientID {
		t.Fatalf("departure events %+v %+v", gone1, gone2)
	}
	code, _, body = th.get(t, "/.well-known/mercure/subscriptions", bearer(watcherTok))
	want = fmt.Sprintf(`{"@context":"https://mercure.rocks/","id":"/.well-known/mercure/subscriptions","type":"Subscriptions","lastEventID":%q,"subscriptions":[%s]}`+"\n", gone2.eventID, watcherSub)
	if code != 200 || body != want {
		t.Fatalf("after departure: %d\n%s\nwant\n%s", code, body, want)
	}
	if code, _, _ := th.get(t, aID, bearer(watcherTok)); code != http.StatusNotFound {
		t.Fatalf("ended subscription: %d", code)
	}
}

func TestSubscriptionsAPIAuthorization(t *testing.T) {
	th := newSubscriptionsHub(t)
	topicOnly := mercureToken(t, nil, []string{"/.well-known/mercure/subscriptions/a{/subscriber}"})
	for _, tc := range []struct {
		name, path string
		header     http.Header
		code       int
	}{
		{"no token, even with anonymous", "/.well-known/mercure/subscriptions", nil, 401},
		{"invalid token", "/.well-known/mercure/subscriptions", bearer("x.y.z"), 401},
		{"claim for other topics", "/.well-known/mercure/subscriptions", bearer(mercureToken(t, nil, []string{"https://example.com/{x}"})), 403},
		{"no subscribe claim", "/.well-known/mercure/subscriptions", bearer(mercureToken(t, []string{"*"}, nil)), 403},
		{"claim for one selector: its collection", "/.well-known/mercure/subscriptions/a", bearer(topicOnly), 200},
		{"claim for one selector: the root", "/.well-known/mercure/subscriptions", bearer(topicOnly), 403},
		{"claim for one selector: another one", "/.well-known/mercure/subscriptions/b", bearer(topicOnly), 403},
		{"wildcard claim", "/.well-known/mercure/subscriptions", bearer(mercureToken(t, nil, []string{"*"})), 200},
		{"unknown subscription", "/.well-known/mercure/subscriptions/a/urn%3Auuid%3Ax", bearer(topicOnly), 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, body := th.get(t, tc.path, tc.header); code != tc.code {
				t.Fatalf("got %d %q, want %d", code, body, tc.code)
			}
		})
	}
	off := newTestHub(t, nil)
	if code, _, _ := off.get(t, "/.well-known/mercure/subscriptions", bearer(mercureToken(t, nil, []string{"*"}))); code != http.StatusNotFound {
		t.Fatalf("API without the subscriptions directive: %d", code)
	}
}

// presenceEvent is a parsed subscription event.
type presenceEvent struct {
	hub.Subscription
	raw     string
	eventID string
}

// nextPresence reads the stream's next event as a subscription event.
func nextPresence(t *testing.T, s *stream) presenceEvent {
	t.Helper()
	m := s.next(t)
	var p presenceEvent
	if err := json.Unmarshal([]byte(m.Data), &p.Subscription); err != nil {
		t.Fatalf("event %q: %v", m.Data, err)
	}
	p.raw, p.eventID = m.Data, m.ID
	return p
}

func TestSubscriptionEventsRateRefused(t *testing.T) {
	th := newTestHubWith(t, func(c *hub.Config) {
		c.Subscriptions = true
		c.SubscriptionEventsRate, c.SubscriptionEventsBurst = 0.1, 2
	}, func(c *server.Config) { c.Subscriptions = true; c.Anonymous = true })
	th.subscribe(t, "topic=a&topic=b", nil) // the burst
	resp := th.open(t, "topic=c", nil)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "10" ||
		string(body) != "too many subscriptions are starting; retry later\n" {
		t.Fatalf("subscription past the rate = %d, Retry-After %q, %q; want 503, 10, the reason", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
