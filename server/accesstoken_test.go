package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
)

const (
	testIssuer = "https://issuer.example"
	detailType = auth.AuthorizationDetailType
)

// newDraft08Hub is a test hub that also trusts testIssuer, with the test key for both roles.
func newDraft08Hub(t *testing.T, configure func(*server.Config)) *testHub {
	t.Helper()
	return newDraft08HubWith(t, nil, configure)
}

// newDraft08HubWith is newDraft08Hub with a hook for the hub's configuration too.
func newDraft08HubWith(t *testing.T, configureHub func(*hub.Config), configure func(*server.Config)) *testHub {
	t.Helper()
	return newTestHubWith(t, configureHub, func(c *server.Config) {
		is, err := auth.NewIssuers([]auth.Issuer{{ID: testIssuer, Publisher: c.Publisher, Subscriber: c.Subscriber}})
		if err != nil {
			t.Fatal(err)
		}
		c.Issuers = is
		if configure != nil {
			configure(c)
		}
	})
}

// grant is one Mercure authorization detail.
func grant(actions []string, payload any, matchers ...map[string]string) map[string]any {
	d := map[string]any{"type": detailType, "actions": actions, "topics": matchers}
	if payload != nil {
		d["payload"] = payload
	}
	return d
}

func exact(s string) map[string]string { return map[string]string{"match": s} }

// accessToken signs a draft-08 access token (typ at+jwt) for the hub at aud with the test key.
func accessToken(t testing.TB, aud string, details ...map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "aud": aud, "sub": "alice", "client_id": "app", "iat": time.Now().Unix(),
		"jti": "j1", "exp": time.Now().Add(time.Hour).Unix(), "authorization_details": details,
	})
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// metadataURL is the RFC 9728 URL of the protected resource metadata of the hub at hubURL.
func metadataURL(hubURL string) string {
	return strings.TrimSuffix(hubURL, server.Path) + server.MetadataPath
}

// TestDraft08PublishReachesOldSubscriber: a publish authorised by a draft-08 access token
// ("Publishers") is received by a Mercure 0.x subscriber (topic=), private updates included
// when its old token allows them.
func TestDraft08PublishReachesOldSubscriber(t *testing.T) {
	th := newDraft08Hub(t, nil)
	sub := th.subscribe(t, "topic=https://example.com/books/1", bearer(mercureToken(t, nil, []string{"*"})))
	tok := accessToken(t, th.URL, grant([]string{"publish"}, nil, exact("https://example.com/books/1")))
	for _, private := range []bool{false, true} {
		form := url.Values{"topic": {"https://example.com/books/1"}, "data": {fmt.Sprint("private ", private)}}
		if private {
			form.Set("private", "on")
		}
		code, id := th.post(t, "application/x-www-form-urlencoded", form.Encode(), bearer(tok))
		if code != http.StatusOK || !strings.HasPrefix(id, "urn:uuid:") {
			t.Fatalf("publish: %d %q", code, id)
		}
		if m := sub.next(t); m.ID != id || m.Data != form.Get("data") {
			t.Fatalf("got %+v, want id %s data %q", m, id, form.Get("data"))
		}
	}
}

// TestDraft08SubscriberGrants: "Subscribers": a private update reaches a subscriber whose
// draft-08 token grants subscribe on one of its topics (canonical or alternate), and no other.
func TestDraft08SubscriberGrants(t *testing.T) {
	th := newDraft08Hub(t, nil)
	tok := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("https://example.com/books/1"), exact("https://example.com/users/42/books/2")))
	sub := th.subscribe(t, "topic=https://example.com/books/{id}", bearer(tok))
	publish := func(topics ...string) string {
		return th.publish(t, url.Values{"topic": topics, "private": {"on"}, "data": {topics[0]}})
	}
	publish("https://example.com/books/3") // not granted: never delivered
	want := publish("https://example.com/books/1")
	if m := sub.next(t); m.ID != want {
		t.Fatalf("got %s (%s), want the update of books/1", m.ID, m.Data)
	}
	want = publish("https://example.com/books/2", "https://example.com/users/42/books/2")
	if m := sub.next(t); m.ID != want {
		t.Fatalf("got %s (%s), want the update granted by its alternate topic", m.ID, m.Data)
	}
	sub.expectNothing(t, 100*time.Millisecond)
}

// TestDraft08ErrorResponses checks "Error Responses" exactly (status, WWW-Authenticate, body)
// for draft-08 requests, beside the unchanged 0.x answers to the same mistakes.
func TestDraft08ErrorResponses(t *testing.T) {
	th := newDraft08Hub(t, func(c *server.Config) { c.PublishOrigins = []string{"https://app.example"} })
	meta := metadataURL(th.URL)
	good := accessToken(t, th.URL, grant([]string{"publish", "subscribe"}, nil, exact("https://example.com/a")))
	otherHub := accessToken(t, "https://other.example/.well-known/mercure", grant([]string{"publish"}, nil, exact("*")))
	subscribeOnly := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("*")))
	old := mercureToken(t, []string{"https://example.com/a"}, nil)
	form := "topic=https://example.com/b&data=x"
	cookie := func(name, tok string) http.Header {
		return http.Header{"Cookie": {name + "=" + tok}, "Origin": {"https://evil.example"}}
	}
	tests := []struct {
		name      string
		publish   bool   // POST form, else GET with query
		query     string // subscribe query
		header    http.Header
		code      int
		challenge string // WWW-Authenticate; "" = none
		body      string
	}{
		// Mercure 0.x: as ever, no challenge.
		{name: "0.x publish without token", publish: true, code: 401,
			body: "missing JWT: send it in the Authorization header, the authorization query parameter or the mercureAuthorization cookie\n"},
		{name: "0.x publish with a bad token", publish: true, header: bearer("x.y.z"), code: 401, body: "malformed token\n"},
		{name: "0.x publish to a topic not granted", publish: true, header: bearer(old), code: 403,
			body: "token may not publish to topic \"https://example.com/b\"\n"},
		{name: "0.x subscribe with a Basic header", query: "topic=a", header: http.Header{"Authorization": {"Basic eDp5"}}, code: 401,
			body: "Authorization header must use the \"Bearer\" scheme\n"},
		{name: "0.x cookie publish from another origin", publish: true, header: cookie("mercureAuthorization", old), code: 403,
			body: "origin not allowed: origin \"https://evil.example\"\n"},

		// Draft-08: RFC 6750 challenges.
		{name: "subscribe with match= and no token", query: "match=a", code: 401,
			challenge: `Bearer resource_metadata="` + meta + `"`,
			body:      "missing access token: send it in the Authorization header or the __Secure-mercure_access_token cookie\n"},
		{name: "access token for another hub", publish: true, header: bearer(otherHub), code: 401,
			challenge: `Bearer error="invalid_token", resource_metadata="` + meta + `"`,
			body:      "the token's aud does not name this hub (" + th.URL + ")\n"},
		{name: "access token cookie that does not verify", header: http.Header{"Cookie": {auth.AccessTokenCookie + "=x.y.z"}}, query: "topic=a", code: 401,
			challenge: `Bearer error="invalid_token", resource_metadata="` + meta + `"`, body: "malformed token\n"},
		{name: "access token publishing to a topic not granted", publish: true, header: bearer(good), code: 403,
			challenge: `Bearer error="insufficient_scope", resource_metadata="` + meta + `"`,
			body:      "token may not publish to topic \"https://example.com/b\"\n"},
		{name: "access token without a publish grant", publish: true, header: bearer(subscribeOnly), code: 403,
			challenge: `Bearer error="insufficient_scope", resource_metadata="` + meta + `"`,
			body:      "token has no authorization detail granting publish\n"},
		{name: "access token in the URL", query: "topic=a&authorization=" + good, code: 400,
			challenge: `Bearer error="invalid_request", resource_metadata="` + meta + `"`,
			body:      "access tokens must not be sent in the URL: use the Authorization header or the __Secure-mercure_access_token cookie\n"},
		{name: "match= with a Basic header", query: "match=a", header: http.Header{"Authorization": {"Basic eDp5"}}, code: 400,
			challenge: `Bearer error="invalid_request", resource_metadata="` + meta + `"`,
			body:      "Authorization header must use the \"Bearer\" scheme\n"},
		{name: "access token cookie publish from another origin", publish: true, header: cookie(auth.AccessTokenCookie, good), code: 400,
			challenge: `Bearer error="invalid_request", resource_metadata="` + meta + `"`,
			body:      "origin not allowed: origin \"https://evil.example\"\n"},
		{name: "0.x token in the access token cookie, topic not granted", publish: true,
			header: http.Header{"Cookie": {auth.AccessTokenCookie + "=" + old}, "Origin": {"https://app.example"}}, code: 403,
			challenge: `Bearer error="insufficient_scope", resource_metadata="` + meta + `"`,
			body:      "token may not publish to topic \"https://example.com/b\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req *http.Request
			var err error
			if tc.publish {
				req, err = http.NewRequest(http.MethodPost, th.URL, strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, err = http.NewRequest(http.MethodGet, th.URL+"?"+tc.query, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, vs := range tc.header {
				req.Header[k] = vs
			}
			resp, err := th.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(body) != tc.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.code, tc.body)
			}
			if got := resp.Header.Values("WWW-Authenticate"); strings.Join(got, "|") != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
		})
	}
}

// TestDraft08CookieSubscribe: "Cookie": a browser's access token in __Secure-mercure_access_token
// authorises a subscription to private updates.
func TestDraft08CookieSubscribe(t *testing.T) {
	th := newDraft08Hub(t, nil)
	tok := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("https://example.com/p")))
	sub := th.subscribe(t, "topic=https://example.com/p", http.Header{"Cookie": {auth.AccessTokenCookie + "=" + tok}})
	id := th.publish(t, url.Values{"topic": {"https://example.com/p"}, "private": {"on"}, "data": {"secret"}})
	if m := sub.next(t); m.ID != id || m.Data != "secret" {
		t.Fatalf("got %+v", m)
	}
}

// TestDraft08CookiePublish: a cookie publish from an allowed origin passes the same CSRF rule
// as the 0.x cookie.
func TestDraft08CookiePublish(t *testing.T) {
	th := newDraft08Hub(t, func(c *server.Config) { c.PublishOrigins = []string{"https://app.example"} })
	tok := accessToken(t, th.URL, grant([]string{"publish"}, nil, exact("*")))
	for _, h := range []http.Header{
		{"Cookie": {auth.AccessTokenCookie + "=" + tok}, "Origin": {"https://app.example"}},
		{"Cookie": {auth.AccessTokenCookie + "=" + tok}, "Referer": {"https://app.example/page"}},
	} {
		if code, body := th.post(t, "application/x-www-form-urlencoded", "topic=t&data=x", h); code != http.StatusOK {
			t.Fatalf("%v: %d %s", h, code, body)
		}
	}
	code, body := th.post(t, "application/x-www-form-urlencoded", "topic=t&data=x", http.Header{"Cookie": {auth.AccessTokenCookie + "=" + tok}})
	if code != http.StatusBadRequest || body != "origin not allowed: request has neither Origin nor Referer\n" {
		t.Fatalf("no Origin: %d %q", code, body)
	}
}

// TestProtectedResourceMetadata checks the document of "Protected Resource Metadata", derived
// from the request and with resource_identifier configured, and its CORS headers.
func TestProtectedResourceMetadata(t *testing.T) {
	get := func(t *testing.T, th *testHub, origin string) (*http.Response, map[string]any) {
		req, err := http.NewRequest(http.MethodGet, metadataURL(th.URL), nil)
		if err != nil {
			t.Fatal(err)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := th.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return resp, doc
	}
	want := func(resource string, extra map[string]any) map[string]any {
		m := map[string]any{
			"resource":                              resource,
			"authorization_details_types_supported": []any{detailType},
			"bearer_methods_supported":              []any{"header"},
			"mercure_cookie":                        "__Secure-mercure_access_token",
			"mercure_matcher_types_supported":       []any{"exact", "urlpattern"},
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	same := func(a, b map[string]any) bool {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return string(x) == string(y)
	}

	t.Run("derived", func(t *testing.T) {
		th := newDraft08Hub(t, func(c *server.Config) { c.CORSOrigins = []string{"https://app.example"} })
		resp, doc := get(t, th, "https://app.example")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if w := want(th.URL, nil); !same(doc, w) {
			t.Errorf("document %v, want %v", doc, w)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
			t.Errorf("Access-Control-Allow-Origin %q", got)
		}
	})
	t.Run("configured", func(t *testing.T) {
		th := newDraft08Hub(t, func(c *server.Config) {
			c.ResourceIdentifier = "https://hub.example/.well-known/mercure"
			c.Subscriptions = true
			is, err := auth.NewIssuers([]auth.Issuer{{ID: "https://as.example", AuthorizationServer: true}, {ID: testIssuer, Subscriber: c.Subscriber}})
			if err != nil {
				t.Fatal(err)
			}
			c.Issuers = is
		})
		_, doc := get(t, th, "")
		w := want("https://hub.example/.well-known/mercure", map[string]any{"authorization_servers": []any{"https://as.example"}, "mercure_subscriptions": true})
		if !same(doc, w) {
			t.Errorf("document %v, want %v", doc, w)
		}
		// The challenge points at the document derived from the configured identifier, and a
		// token for the address the client used is not one for this hub.
		tok := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("*")))
		resp := th.open(t, "topic=a", bearer(tok))
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token", resource_metadata="https://hub.example/.well-known/oauth-protected-resource/.well-known/mercure"` {
			t.Errorf("%d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		tok = accessToken(t, "https://hub.example/.well-known/mercure", grant([]string{"subscribe"}, nil, exact("*")))
		if resp := th.open(t, "topic=a", bearer(tok)); resp.StatusCode != http.StatusOK {
			t.Errorf("token for the configured identifier: %d", resp.StatusCode)
		}
	})
}

// TestDraft08Payloads: "Payloads": each subscription gets the payload of the first subscribe
// detail whose matchers match its own selector, in the subscriptions API.
func TestDraft08Payloads(t *testing.T) {
	th := newDraft08HubWith(t, func(c *hub.Config) { c.Subscriptions = true }, func(c *server.Config) { c.Subscriptions = true })
	tok := accessToken(t, th.URL,
		grant([]string{"subscribe"}, map[string]any{"n": 1}, exact("https://example.com/a")),
		grant([]string{"subscribe"}, map[string]any{"n": 2}, exact("*")),
	)
	th.subscribe(t, "topic=https://example.com/a&topic=https://example.com/b", bearer(tok))
	var doc struct {
		Subscriptions []struct {
			Topic   string          `json:"topic"`
			Payload json.RawMessage `json:"payload"`
		} `json:"subscriptions"`
	}
	waitFor(t, "two subscriptions", func() bool {
		req, _ := http.NewRequest(http.MethodGet, th.URL+"/subscriptions", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		r, err := th.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		doc.Subscriptions = nil
		_ = json.NewDecoder(r.Body).Decode(&doc)
		return len(doc.Subscriptions) == 2
	})
	got := map[string]string{}
	for _, s := range doc.Subscriptions {
		got[s.Topic] = string(s.Payload)
	}
	if got["https://example.com/a"] != `{"n":1}` || got["https://example.com/b"] != `{"n":2}` {
		t.Fatalf("payloads %v", got)
	}
}

// TestDraft08SubscriptionsAPI: the subscriptions API answers draft-08 requests with RFC 6750
// challenges: 401 without a token (match= marks the request), 403 insufficient_scope for a
// token granting no subscribe on the path, 200 for one granting it.
func TestDraft08SubscriptionsAPI(t *testing.T) {
	th := newDraft08HubWith(t, func(c *hub.Config) { c.Subscriptions = true }, func(c *server.Config) { c.Subscriptions = true; c.Anonymous = true })
	meta := metadataURL(th.URL)
	get := func(query string, h http.Header) (int, http.Header, string) {
		return th.get(t, hub.SubscriptionsPath+query, h)
	}
	code, h, body := get("?match=x", nil)
	if code != 401 || body != "the subscriptions API needs a JWT\n" || h.Get("WWW-Authenticate") != `Bearer resource_metadata="`+meta+`"` {
		t.Errorf("no token: %d %q %q", code, body, h.Get("WWW-Authenticate"))
	}
	code, h, body = get("", nil)
	if code != 401 || h.Get("WWW-Authenticate") != "" {
		t.Errorf("0.x, no token: %d %q %q", code, body, h.Get("WWW-Authenticate"))
	}
	narrow := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("https://example.com/a")))
	code, h, body = get("", bearer(narrow))
	if code != 403 || body != "token grants no subscribe on /.well-known/mercure/subscriptions\n" ||
		h.Get("WWW-Authenticate") != `Bearer error="insufficient_scope", resource_metadata="`+meta+`"` {
		t.Errorf("narrow token: %d %q %q", code, body, h.Get("WWW-Authenticate"))
	}
	wide := accessToken(t, th.URL, grant([]string{"subscribe"}, nil, exact("*")))
	if code, _, body = get("", bearer(wide)); code != 200 {
		t.Errorf("token granting *: %d %q", code, body)
	}
}
