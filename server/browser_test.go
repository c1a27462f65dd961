package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport/memory"
)

// browserKey signs both the subscriber and the publisher JWTs of the browser test.
const browserKey = "herald-browser-test-key-of-at-least-32-bytes"

// browserPage is served by the page server, on another origin than the hubs. It opens three
// EventSources, described by the query string:
//   - authorised: to the hub that requires a JWT, withCredentials, so the browser sends the
//     cookie the page server set; its query (topic= or a draft-08 matcher) is the page's sub
//     parameter; it must get the private update;
//   - anonymous: to the front-end that accepts anonymous subscribers, without credentials, so
//     the cookie stays home; it must get the public update and not the private one; it also
//     subscribes to a sentinel topic, published last, that proves the private update has
//     been dispatched (and withheld) by the time the sentinel arrives;
//   - refused: to the hub that requires a JWT, without credentials: refused with 401.
//
// Everything received goes to window.streams (for the test) and to the DOM (for the
// screenshot).
const browserPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Herald EventSource test</title>
<style>
body { font: 14px sans-serif; margin: 16px; }
section { border: 1px solid #999; margin: 8px 0; padding: 4px 12px; }
h2 { font-size: 16px; } li { font-family: monospace; }
</style></head>
<body>
<h1>Herald: EventSource with an authorization cookie</h1>
<div id="streams"></div>
<script>
const q = new URLSearchParams(location.search);
const topic = q.get('topic');
window.streams = {};
function open(name, url, withCredentials) {
  const s = {opened: false, errors: 0, readyState: 0, events: []};
  window.streams[name] = s;
  const section = document.createElement('section');
  section.innerHTML = '<h2></h2><p></p><ol></ol>';
  section.querySelector('h2').textContent = name + ' (withCredentials: ' + withCredentials + ')';
  document.getElementById('streams').append(section);
  const state = section.querySelector('p'), list = section.querySelector('ol');
  const es = new EventSource(url, {withCredentials: withCredentials});
  const show = () => {
    s.readyState = es.readyState;
    state.textContent = 'readyState ' + ['CONNECTING', 'OPEN', 'CLOSED'][es.readyState] + ', errors ' + s.errors;
  };
  const record = (e) => {
    s.events.push({type: e.type, data: e.data, id: e.lastEventId});
    const li = document.createElement('li');
    li.textContent = e.type + ' id=' + e.lastEventId + ' data=' + e.data;
    list.append(li);
  };
  es.onopen = () => { s.opened = true; show(); };
  es.onerror = () => { s.errors++; show(); };
  es.onmessage = record;
  es.addEventListener('secret', record);
  show();
}
open('authorised', q.get('hub') + '?' + q.get('sub'), true);
open('anonymous', q.get('anon') + '?topic=' + encodeURIComponent(topic) + '&topic=' + encodeURIComponent(q.get('sentinel')), false);
open('refused', q.get('hub') + '?topic=' + encodeURIComponent(topic), false);
</script>
</body></html>
`

type pageEvent struct {
	Type string `json:"type"`
	Data string `json:"data"`
	ID   string `json:"id"`
}

type pageStream struct {
	Opened     bool        `json:"opened"`
	Errors     int         `json:"errors"`
	ReadyState int         `json:"readyState"`
	Events     []pageEvent `json:"events"`
}

// TestBrowserEventSourceWithCookie is issue #3: a headless Chromium page opens an EventSource
// with withCredentials and a mercureAuthorization cookie, cross-origin, and receives a private
// update; CORS with credentials, the cookie source and private delivery are exercised as a
// real browser does them.
func TestBrowserEventSourceWithCookie(t *testing.T) {
	browserCookieTest(t, "topic="+url.QueryEscape(browserBookTopic), func(string) *http.Cookie {
		return &http.Cookie{
			Name:     server.DefaultCookieName,
			Value:    signBrowserJWT(t, map[string]any{"subscribe": []string{browserBookTopic}}),
			Path:     "/",
			HttpOnly: true,
			SameSite: http.SameSiteStrictMode,
		}
	})
}

// TestBrowserEventSourceWithAccessTokenCookie is the same with draft-08's cookie: a
// __Secure-mercure_access_token cookie (Secure, HttpOnly, SameSite=Strict, as the draft's
// "Cookie" section asks; Chromium takes loopback http origins as secure) holding an access
// token that grants subscribe on the book; the EventSource subscribes with a draft-08 URL
// pattern, match_urlpattern.
func TestBrowserEventSourceWithAccessTokenCookie(t *testing.T) {
	browserCookieTest(t, "match_urlpattern="+url.QueryEscape("https://example.com/books/:id"), func(hubURL string) *http.Cookie {
		return &http.Cookie{
			Name:     auth.AccessTokenCookie,
			Value:    signBrowserAccessToken(t, hubURL, browserBookTopic),
			Path:     "/",
			Secure:   true,
			HttpOnly: true,
			SameSite: http.SameSiteStrictMode,
		}
	})
}

// The topics of the browser tests.
const (
	browserBookTopic     = "https://example.com/books/1"
	browserSentinelTopic = "https://example.com/sentinel"
)

// browserCookieTest runs the browser scenario of browserPage with the subscriber's cookie
// that cookie returns for the hub at hubURL (the one requiring a JWT), the authorised stream
// subscribing with the query sub.
func browserCookieTest(t *testing.T, sub string, cookie func(hubURL string) *http.Cookie) {
	const (
		bookTopic     = browserBookTopic
		sentinelTopic = browserSentinelTopic
	)
	testkit.Chromium(t) // skip (or fail on CI) before starting anything
	pubToken := signBrowserJWT(t, map[string]any{"publish": []string{bookTopic, sentinelTopic}})

	// The page's origin: the same host as the hubs (so the host-only cookie it sets is sent
	// to them) on another port, hence another origin, and a same-site one.
	var authHub string // set once the hubs are up, before the page is opened
	pageMux := http.NewServeMux()
	pageMux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, cookie(authHub))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, browserPage)
	})
	pageSrv := httptest.NewServer(pageMux)
	t.Cleanup(pageSrv.Close)

	// One hub, two HTTP front-ends: authSrv requires a JWT, anonSrv also accepts anonymous
	// subscribers. Both allow the page's origin explicitly, so credentials are allowed.
	tr := memory.New(memory.Options{})
	h, err := hub.New(hub.Config{Transport: tr, Matcher: topic.NewMatcher(1000)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(runCtx) }()
	t.Cleanup(func() {
		stopRun()
		if err := <-ran; err != nil {
			t.Errorf("hub.Run: %v", err)
		}
		_ = tr.Close()
	})
	verifier, err := auth.NewVerifier(context.Background(), auth.Config{Key: browserKey, Alg: "HS256"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = verifier.Close() })
	issuers, err := auth.NewIssuers([]auth.Issuer{{ID: browserIssuer, Subscriber: verifier}})
	if err != nil {
		t.Fatal(err)
	}
	newFrontEnd := func(anonymous bool) *httptest.Server {
		srv, err := server.New(server.Config{
			Hub:         h,
			Publisher:   verifier,
			Subscriber:  verifier,
			Issuers:     issuers,
			Anonymous:   anonymous,
			CORSOrigins: []string{pageSrv.URL},
		})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(func() {
			h.Shutdown() // ends the streams a still-running browser may hold
			srv.Close(5 * time.Second)
			ts.Close()
		})
		return ts
	}
	authSrv, anonSrv := newFrontEnd(false), newFrontEnd(true)
	authHub = authSrv.URL + server.Path

	ctx := testkit.Browser(t) // closed first at cleanup
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()

	page := pageSrv.URL + "/?" + url.Values{
		"hub":      {authSrv.URL + server.Path},
		"anon":     {anonSrv.URL + server.Path},
		"topic":    {bookTopic},
		"sub":      {sub},
		"sentinel": {sentinelTopic},
	}.Encode()
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("opening the page: %v", err)
	}
	// The hub registers a subscriber before it answers, so once onopen fired, publishing is
	// safe. The refused stream must have failed for good (readyState CLOSED, no reconnect).
	waitPage(ctx, t, "the streams to open",
		`streams.authorised.opened && streams.anonymous.opened && streams.refused.readyState === 2`)
	t.Logf("streams open after %v", time.Since(start).Round(time.Millisecond))

	client := authSrv.Client()
	publicID := publishBrowser(ctx, t, client, authSrv.URL, pubToken, url.Values{
		"topic": {bookTopic}, "data": {"public: the book is out"},
	})
	privateID := publishBrowser(ctx, t, client, authSrv.URL, pubToken, url.Values{
		"topic": {bookTopic}, "data": {"private: 3 copies left for you"}, "private": {"on"}, "type": {"secret"},
	})
	sentinelID := publishBrowser(ctx, t, client, authSrv.URL, pubToken, url.Values{
		"topic": {sentinelTopic}, "data": {"sentinel"},
	})
	waitPage(ctx, t, "the updates to arrive",
		`streams.authorised.events.length >= 2 && streams.anonymous.events.some(e => e.data === 'sentinel')`)
	t.Logf("updates received after %v", time.Since(start).Round(time.Millisecond))

	streams, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]pageStream]("window.streams"))
	if err != nil {
		t.Fatalf("reading the page's streams: %v", err)
	}
	t.Logf("page streams: %+v", streams)
	saveScreenshot(ctx, t)

	checkEvents(t, "authorised (cookie, withCredentials)", streams["authorised"].Events, []pageEvent{
		{Type: "message", Data: "public: the book is out", ID: publicID},
		{Type: "secret", Data: "private: 3 copies left for you", ID: privateID},
	})
	checkEvents(t, "anonymous (no credentials)", streams["anonymous"].Events, []pageEvent{
		{Type: "message", Data: "public: the book is out", ID: publicID},
		{Type: "message", Data: "sentinel", ID: sentinelID},
	})
	if r := streams["refused"]; r.Opened || len(r.Events) != 0 || r.ReadyState != 2 {
		t.Errorf("refused (no credentials to a hub without anonymous access): got %+v, want a stream that never opened and stays CLOSED", r)
	}
	for _, name := range []string{"authorised", "anonymous"} {
		if s := streams[name]; s.Errors != 0 || s.ReadyState != 1 {
			t.Errorf("%s stream: %d errors, readyState %d; want 0 errors, OPEN (1)", name, s.Errors, s.ReadyState)
		}
	}
}

// signBrowserJWT signs an HS256 token with the given mercure claim, valid for an hour.
func signBrowserJWT(t *testing.T, mercure map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": mercure,
		"exp":     time.Now().Add(time.Hour).Unix(),
	})
	s, err := tok.SignedString([]byte(browserKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// browserIssuer is the issuer of the browser tests' draft-08 access tokens.
const browserIssuer = "https://app.example"

// signBrowserAccessToken signs a draft-08 access token for the hub at aud that grants
// subscribe on topic, valid for an hour.
func signBrowserAccessToken(t *testing.T, aud, topic string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": browserIssuer, "aud": aud, "sub": "reader", "exp": time.Now().Add(time.Hour).Unix(),
		"authorization_details": []map[string]any{{
			"type": auth.AuthorizationDetailType, "actions": []string{"subscribe"},
			"topics": []map[string]string{{"match": topic}},
		}},
	})
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString([]byte(browserKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publishBrowser posts an update to the hub with a bearer token and returns its ID.
func publishBrowser(ctx context.Context, t *testing.T, c *http.Client, hubURL, token string, form url.Values) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hubURL+server.Path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("publishing %v: %v", form, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("publishing %v: reading the answer: %v", form, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publishing %v: %s: %s", form, resp.Status, body)
	}
	id := strings.TrimSpace(string(body))
	if id == "" {
		t.Fatalf("publishing %v: the hub answered no update ID", form)
	}
	return id
}

// waitPage polls the page until the JavaScript condition holds; on timeout it fails the test
// with what the page has received so far.
func waitPage(ctx context.Context, t *testing.T, what, cond string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify(window.streams)"))
		saveScreenshot(ctx, t)
		t.Fatalf("waiting for %s: %v\npage state: %s", what, err, state)
	}
}

// checkEvents compares what one EventSource received with what it should have, in order.
func checkEvents(t *testing.T, stream string, got, want []pageEvent) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s stream received\n  %+v\nwant\n  %+v", stream, got, want)
	}
}

// saveScreenshot writes a PNG of the page to $HERALD_ARTIFACTS, or to a temporary directory.
func saveScreenshot(ctx context.Context, t *testing.T) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot failed: %v", err)
		return
	}
	dir := os.Getenv("HERALD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot not saved: %v", err)
		return
	}
	name := "browser-eventsource.png"
	if strings.Contains(t.Name(), "AccessToken") {
		name = "browser-eventsource-access-token.png"
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot not saved: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}
