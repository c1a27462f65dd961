package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport/memory"
	"github.com/heraldhub/herald/ui"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testKey signs every JWT of these tests (HS256).
const testKey = "herald-ui-test-key-of-at-least-32-bytes"

// signToken signs a JWT with the given mercure.publish and mercure.subscribe claims (nil
// leaves a claim out), expiring after ttl (negative: already expired).
func signToken(publish, subscribe []string, ttl time.Duration) (string, error) {
	m := map[string]any{}
	if publish != nil {
		m["publish"] = publish
	}
	if subscribe != nil {
		m["subscribe"] = subscribe
	}
	claims := jwt.MapClaims{"mercure": m, "exp": time.Now().Add(ttl).Unix()}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testKey))
}

// mint is the MintToken of the test hubs, as dev mode's: tokens valid for an hour.
func mint(publish, subscribe []string) (string, error) {
	return signToken(publish, subscribe, time.Hour)
}

// testIssuer is the trusted issuer of the test hubs' draft-08 access tokens, the default one
// of herald serve.
const testIssuer = "https://localhost"

// signAccessToken signs a draft-08 access token (typ at+jwt) of testIssuer for the audience,
// with one authorization detail per action that has grants, expiring after ttl.
func signAccessToken(audience string, publish, subscribe []ui.Grant, ttl time.Duration) (string, error) {
	var details []map[string]any
	for _, a := range []struct {
		action string
		grants []ui.Grant
	}{{"publish", publish}, {"subscribe", subscribe}} {
		if len(a.grants) == 0 {
			continue
		}
		var topics []map[string]string
		for _, g := range a.grants {
			topics = append(topics, map[string]string{"match": g.Match, "match_type": g.MatchType})
		}
		details = append(details, map[string]any{"type": "https://mercure.rocks/authorization-detail", "actions": []string{a.action}, "topics": topics})
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": testIssuer, "aud": audience, "exp": time.Now().Add(ttl).Unix(), "authorization_details": details,
	})
	tok.Header["typ"] = "at+jwt"
	return tok.SignedString([]byte(testKey))
}

// mintAccess is the MintAccessToken of the test hubs, as dev mode's: tokens valid for an hour.
func mintAccess(r ui.AccessTokenRequest) (string, error) {
	return signAccessToken(r.Audience, r.Publish, r.Subscribe, time.Hour)
}

func mustToken(t testing.TB, publish, subscribe []string, ttl time.Duration) string {
	t.Helper()
	tok, err := signToken(publish, subscribe, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// hubOptions configure a test hub.
type hubOptions struct {
	subscriptions  bool          // subscription events and the subscriptions API
	writeTimeout   time.Duration // streams' lifetime (0: the default)
	ui             ui.Config
	noUI           bool // serve no UI (server.Config.UI nil)
	cors           []string
	publishOrigins []string // origins allowed to publish with a cookie
	stats          bool     // serve the live stats (the dashboard's stream), with metrics
}

// testHub is a real hub with the UI, served over HTTP on loopback.
type testHub struct {
	Origin string // http://127.0.0.1:port
	URL    string // the hub endpoint, Origin + /.well-known/mercure
	UI     string // the debugging page
	Client *http.Client
}

// startHub starts a hub with an in-memory log, anonymous subscribers and the UI. Everything
// is shut down at cleanup: the hub's subscribers, the server's writer pool, the HTTP server,
// the dispatch loop.
func startHub(t testing.TB, o hubOptions) *testHub {
	t.Helper()
	tr := memory.New(memory.Options{Size: 10_000})
	var m *metrics.Metrics
	if o.stats {
		m = metrics.New()
	}
	h, err := hub.New(hub.Config{Transport: tr, Matcher: topic.NewMatcher(1000), Subscriptions: o.subscriptions, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	v, err := auth.NewVerifier(ctx, auth.Config{Key: testKey, Alg: "HS256"})
	if err != nil {
		t.Fatal(err)
	}
	issuers, err := auth.NewIssuers([]auth.Issuer{{ID: testIssuer, Publisher: v, Subscriber: v}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Hub:            h,
		Publisher:      v,
		Subscriber:     v,
		Issuers:        issuers,
		Anonymous:      true,
		Subscriptions:  o.subscriptions,
		WriteTimeout:   o.writeTimeout,
		CORSOrigins:    o.cors,
		PublishOrigins: o.publishOrigins,
	}
	if !o.noUI {
		cfg.UI = ui.Handler(o.ui)
	}
	if o.stats {
		cfg.Metrics = m
		cfg.Stats = server.NewStatsSource(server.StatsConfig{Version: "v1.2.3", Transport: "memory", Started: time.Now(), Hub: h}, m)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		h.Shutdown()
		srv.Close(5 * time.Second)
		ts.Close()
		client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub.Run: %v", err)
		}
		_ = v.Close()
		_ = tr.Close()
	})
	return &testHub{Origin: ts.URL, URL: ts.URL + server.Path, UI: ts.URL + ui.Prefix, Client: client}
}

// publish posts an update with a token allowed to publish anywhere and returns its id.
func (th *testHub) publish(t testing.TB, form url.Values) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, th.URL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+mustToken(t, []string{"*"}, nil, time.Hour))
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatalf("publishing %v: %v", form, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publishing %v: %s: %s", form, resp.Status, body)
	}
	return strings.TrimSpace(string(body))
}

// get sends a GET with the given headers and returns the response with its body read.
func (th *testHub) get(t testing.TB, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, th.Origin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	// Do not follow redirects: the tests check them.
	c := &http.Client{Transport: th.Client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// tab is one browser tab on a test page, with what it logged that looks wrong.
type tab struct {
	ctx context.Context
	t   *testing.T

	mu       sync.Mutex
	problems []string // uncaught exceptions, console errors other than failed requests
}

// openTab opens url in a new tab of the shared browser; the tab closes at cleanup, before the
// hubs the test started stop (cleanups run last in, first out).
func openTab(t *testing.T, browser context.Context, url string) *tab {
	t.Helper()
	tb := &tab{t: t}
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithListener(tb.listen))
	t.Cleanup(cancel)
	tctx, cancelTimeout := context.WithTimeout(ctx, 25*time.Second)
	t.Cleanup(cancelTimeout)
	tb.ctx = tctx
	if err := chromedp.Do(tb.ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	return tb
}

// listen records page errors: an exception, a CSP or Trusted Types violation, a console error.
// Failed requests (the tests make some on purpose) are the network's, not the page's.
func (tb *tab) listen(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		p = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			p += " " + ev.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError && ev.Entry.Source != log.EntrySourceNetwork {
			p = "log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			p = "console.error"
			for _, a := range ev.Args {
				p += " " + string(a.Value) + a.Description
			}
		}
	}
	if p != "" {
		tb.mu.Lock()
		tb.problems = append(tb.problems, p)
		tb.mu.Unlock()
	}
}

// checkClean fails the test if the page logged errors.
func (tb *tab) checkClean() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, p := range tb.problems {
		tb.t.Errorf("the page logged: %s", p)
	}
}

// do runs actions, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.fail("evaluating %s: %v", expr, err)
	}
	return v
}

// evalAsync evaluates a JavaScript expression that gives a promise, and returns its value.
func evalAsync[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor polls the page until the JavaScript condition holds, for up to 10 s.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(25*time.Millisecond),
		chromedp.WithPollingTimeout(10*time.Second)))
	if err != nil {
		tb.fail("waiting for %s (%s): %v", what, cond, err)
	}
}

// fail saves a screenshot and what the page shows, then fails the test.
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	text, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string]("document.body.innerText"))
	tb.screenshot("failure-" + strings.ReplaceAll(tb.t.Name(), "/", "-"))
	tb.mu.Lock()
	problems := tb.problems
	tb.mu.Unlock()
	tb.t.Fatalf(format+"\npage text:\n%s\npage errors: %q", append(args, text, problems)...)
}

// screenshot saves a full-page PNG to $HERALD_ARTIFACTS, or to a temporary directory, and
// logs its path.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("HERALD_ARTIFACTS")
	if dir == "" {
		dir = tb.t.TempDir()
	}
	tb.saveScreenshot(filepath.Join(dir, name+".png"))
}

// docsScreenshot regenerates docs/images/NAME.png when HERALD_UPDATE_SCREENSHOTS=1, in a
// 1280 px wide window at least height tall (the page's full height when it is taller).
func (tb *tab) docsScreenshot(name string, height int64) {
	tb.t.Helper()
	if os.Getenv("HERALD_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	tb.do("resizing the window", chromedp.EmulateViewport(1280, height))
	tb.saveScreenshot(filepath.Join("..", "docs", "images", name+".png"))
	tb.do("resizing the window", chromedp.EmulateViewport(1280, 900))
}

func (tb *tab) saveScreenshot(path string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		tb.t.Logf("screenshot %s not saved: %v", path, err)
		return
	}
	tb.t.Logf("screenshot: %s", path)
}
