package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
)

// TestDraft08SubscriptionEventsAndAPI: a draft-08 subscription is announced under
// /subscriptions/{match_type}/{match}/{subscriber} as plain JSON with the SSE event type
// "mercure", and the API serves the same documents with the reconciliation cursor in the Link
// header (draft-08, "Subscription Events" and "Subscription API").
func TestDraft08SubscriptionEventsAndAPI(t *testing.T) {
	th := newDraft08HubWith(t, func(c *hub.Config) { c.Subscriptions = true }, func(c *server.Config) { c.Subscriptions = true; c.Anonymous = true })
	pattern := "/.well-known/mercure/subscriptions/:type/:match/:subscriber"
	urlpattern := func(p string) map[string]string { return map[string]string{"match": p, "match_type": "urlpattern"} }
	watchTok := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, urlpattern(pattern), urlpattern("/.well-known/mercure/subscriptions/*"), exact("/.well-known/mercure/subscriptions")))
	watcher := th.subscribe(t, "match_urlpattern="+url.QueryEscape(pattern), bearer(watchTok))
	own := watcher.next(t) // the watcher sees its own arrival
	if own.Type != "mercure" {
		t.Fatalf("own event %+v", own)
	}

	clientTok := accessToken(t, th.URL, grant([]string{"subscribe"}, map[string]string{"user": "ann"}, exact("https://example.com/a")))
	client := th.subscribe(t, "match="+url.QueryEscape("https://example.com/a"), bearer(clientTok))
	ev := watcher.next(t)
	var doc struct {
		Subscriber string `json:"subscriber"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &doc); err != nil {
		t.Fatal(err)
	}
	id := "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa/" + hub.EscapeSegment(doc.Subscriber)
	want := func(active bool) string {
		return fmt.Sprintf(`{"id":%q,"type":"subscription","subscriber":%q,"match_type":"exact","match":"https://example.com/a","active":%v,"payload":{"user":"ann"}}`, id, doc.Subscriber, active)
	}
	if ev.Type != "mercure" || ev.Data != want(true) {
		t.Fatalf("event %q %s\nwant mercure %s", ev.Type, ev.Data, want(true))
	}

	link := func(http.Header) string {
		return `</.well-known/mercure>; rel="mercure"; last-event-id="` + ev.ID + `"; type="mercure"; content-type="application/json"`
	}
	code, h, body := th.get(t, id, bearer(watchTok))
	if code != 200 || body != want(true)+"\n" || h.Get("Content-Type") != "application/json" || h.Get("Link") != link(h) || h.Get("ETag") != `"`+ev.ID+`"` {
		t.Fatalf("one subscription: %d %v\n%s", code, h, body)
	}
	code, h, body = th.get(t, "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa", bearer(watchTok))
	wantColl := `{"id":"/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa","type":"subscriptions","subscriptions":[` + want(true) + "]}\n"
	if code != 200 || body != wantColl || h.Get("Link") != link(h) {
		t.Fatalf("the matcher's collection: %d %v\n%s\nwant\n%s", code, h, body, wantColl)
	}
	// The whole collection, for a draft-08 token: the plain envelope, both subscriptions.
	code, _, body = th.get(t, "/.well-known/mercure/subscriptions", bearer(watchTok))
	wantAll := `{"id":"/.well-known/mercure/subscriptions","type":"subscriptions","subscriptions":[` + want(true) + "," + own.Data + "]}\n"
	if code != 200 || body != wantAll {
		t.Fatalf("collection: %d\n%s\nwant\n%s", code, body, wantAll)
	}
	// A two-segment path whose first segment is no matcher type is a 0.x one: none here.
	if code, _, body = th.get(t, "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fa/"+hub.EscapeSegment(doc.Subscriber), bearer(watchTok)); code != 404 {
		t.Fatalf("0.x path of a draft-08 subscription: %d %s", code, body)
	}
	code, h, body = th.get(t, "/.well-known/mercure/subscriptions/uritemplate/x/y", bearer(watchTok))
	if code != 400 || body != "unsupported matcher type \"uritemplate\"\n" || h.Get("WWW-Authenticate") != `Bearer error="invalid_request", resource_metadata="`+metadataURL(th.URL)+`"` {
		t.Fatalf("unknown matcher type: %d %q %q", code, body, h.Get("WWW-Authenticate"))
	}
	code, h, _ = th.get(t, id, nil)
	if code != 401 || h.Get("WWW-Authenticate") != `Bearer resource_metadata="`+metadataURL(th.URL)+`"` {
		t.Fatalf("draft-08 path without a token: %d %q", code, h.Get("WWW-Authenticate"))
	}

	client.Resp.Body.Close()
	if ev := watcher.next(t); ev.Type != "mercure" || ev.Data != want(false) {
		t.Fatalf("departure %q %s\nwant %s", ev.Type, ev.Data, want(false))
	}
}
