package ui_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhub/herald/ui"
)

// serve sends one request to h and returns the recorded answer.
func serve(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	for k, vs := range header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestFiles checks every file of the UI: status, exact content type, caching and security
// headers, and the pages' Content-Security-Policy.
func TestFiles(t *testing.T) {
	h := ui.Handler(ui.Config{Demo: true})
	const (
		html = "text/html; charset=utf-8"
		js   = "text/javascript; charset=utf-8"
	)
	files := []struct {
		path, ctype, connectSrc string // connectSrc: the pages' CSP connect-src
	}{
		{"", html, "connect-src 'self' *"},
		{"demo/", html, "connect-src 'self'"},
		{"dashboard/", html, "connect-src 'self'"},
		{"app.css", "text/css; charset=utf-8", ""},
		{"dashboard.css", "text/css; charset=utf-8", ""},
		{"dashboard.js", js, ""},
		{"chart.js", js, ""},
		{"lib.js", js, ""},
		{"sse.js", js, ""},
		{"index.js", js, ""},
		{"demo.js", js, ""},
		{"favicon.svg", "image/svg+xml", ""},
		{"config.json", "application/json", ""},
	}
	for _, f := range files {
		path := ui.Prefix + f.path
		w := serve(h, http.MethodGet, path, nil)
		hd := w.Header()
		if w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Body)
			continue
		}
		if got := hd.Get("Content-Type"); got != f.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, f.ctype)
		}
		if got := hd.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", path, got)
		}
		if got := hd.Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("GET %s: Referrer-Policy %q", path, got)
		}
		csp := hd.Get("Content-Security-Policy")
		if f.path == "config.json" {
			if got := hd.Get("Cache-Control"); got != "no-store" {
				t.Errorf("GET %s: Cache-Control %q, want no-store", path, got)
			}
			continue
		}
		if got := hd.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache (revalidate with the ETag)", path, got)
		}
		etag := hd.Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
			t.Errorf("GET %s: ETag %q", path, etag)
		}
		if w := serve(h, http.MethodGet, path, http.Header{"If-None-Match": {etag}}); w.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", path, w.Code)
		}
		if w := serve(h, http.MethodHead, path, nil); w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d with %d bytes", path, w.Code, w.Body.Len())
		}
		if f.connectSrc == "" {
			if csp != "" {
				t.Errorf("GET %s: a CSP on a file that is not a page: %q", path, csp)
			}
			continue
		}
		directives := strings.Split(csp, "; ")
		for _, want := range []string{
			"default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
			"base-uri 'none'", "frame-ancestors 'none'", "require-trusted-types-for 'script'", f.connectSrc,
		} {
			if !slices.Contains(directives, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows something unsafe", path, csp)
		}
		if got := hd.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q", path, got)
		}
	}
}

// TestOffline checks that the pages load nothing from another site and that every file they
// refer to (scripts, styles, icons, imported modules) is served.
func TestOffline(t *testing.T) {
	h := ui.Handler(ui.Config{Demo: true})
	ref := regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	imp := regexp.MustCompile(`(?m)^import .* from '([^']+)';$`)
	check := func(from, ref string) {
		u, err := url.Parse(ref)
		if err != nil || u.Scheme != "" || u.Host != "" {
			t.Errorf("%s refers to %q: the UI must work offline, with its own files only", from, ref)
			return
		}
		base, _ := url.Parse(from)
		target := base.ResolveReference(u).Path
		if w := serve(h, http.MethodGet, target, nil); w.Code != http.StatusOK {
			t.Errorf("%s refers to %q (%s): %d", from, ref, target, w.Code)
		}
	}
	for _, page := range []string{ui.Prefix, ui.Prefix + "demo/", ui.Prefix + "dashboard/"} {
		body := serve(h, http.MethodGet, page, nil).Body.String()
		refs := ref.FindAllStringSubmatch(body, -1)
		if len(refs) < 3 {
			t.Errorf("%s: found only %d references", page, len(refs))
		}
		for _, m := range refs {
			check(page, m[1])
		}
	}
	for _, js := range []string{"index.js", "demo.js", "lib.js", "sse.js", "dashboard.js", "chart.js"} {
		body := serve(h, http.MethodGet, ui.Prefix+js, nil).Body.String()
		for _, m := range imp.FindAllStringSubmatch(body, -1) {
			check(ui.Prefix+js, m[1])
		}
		if strings.Contains(body, "innerHTML") || strings.Contains(body, "eval(") {
			t.Errorf("%s uses innerHTML or eval, which the pages' CSP forbids", js)
		}
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := ui.Handler(ui.Config{})
	for _, path := range []string{
		ui.Prefix + "index.html", ui.Prefix + "static/app.css", ui.Prefix + "../ui.go", ui.Prefix + "nope.js",
		ui.Prefix + "demo/", ui.Prefix + "demo", ui.Prefix + "demo.js", ui.Prefix + "demo.html", "/elsewhere/app.css",
	} {
		w := serve(h, http.MethodGet, path, nil)
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s without Demo: %d, want 404", path, w.Code)
		}
		if got := w.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", path, got)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w := serve(h, m, ui.Prefix+"app.css", nil)
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s app.css: %d Allow %q, want 405 with Allow: GET, HEAD", m, w.Code, w.Header().Get("Allow"))
		}
	}
	var cfg struct{ Demo, MintToken bool }
	if err := jsonBody(serve(h, http.MethodGet, ui.Prefix+"config.json", nil).Body, &cfg); err != nil || cfg.Demo || cfg.MintToken {
		t.Errorf("config.json without Demo or MintToken: %+v, %v", cfg, err)
	}
	// With Demo, /demo redirects to /demo/.
	w := serve(ui.Handler(ui.Config{Demo: true}), http.MethodGet, ui.Prefix+"demo", nil)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != ui.Prefix+"demo/" {
		t.Errorf("GET demo: %d Location %q", w.Code, w.Header().Get("Location"))
	}
	// The dashboard is part of the UI: /dashboard redirects to /dashboard/.
	w = serve(h, http.MethodGet, ui.Prefix+"dashboard", nil)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != ui.Prefix+"dashboard/" {
		t.Errorf("GET dashboard: %d Location %q", w.Code, w.Header().Get("Location"))
	}
}

func TestToken(t *testing.T) {
	// Without MintToken there is no token endpoint.
	if w := serve(ui.Handler(ui.Config{}), http.MethodGet, ui.Prefix+"token?publish=*", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET token without MintToken: %d, want 404", w.Code)
	}

	var mu sync.Mutex
	var calls [][2][]string
	h := ui.Handler(ui.Config{MintToken: func(publish, subscribe []string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, [2][]string{publish, subscribe})
		if slices.Contains(publish, "fail") {
			return "", errors.New("no key")
		}
		return "a.b.c", nil
	}})
	var cfg struct{ Demo, MintToken bool }
	if err := jsonBody(serve(h, http.MethodGet, ui.Prefix+"config.json", nil).Body, &cfg); err != nil || !cfg.MintToken || cfg.Demo {
		t.Errorf("config.json with MintToken: %+v, %v", cfg, err)
	}

	w := serve(h, http.MethodGet, ui.Prefix+"token?publish=*&subscribe=https://a/{x}&subscribe=b", http.Header{"Sec-Fetch-Site": {"same-origin"}})
	if w.Code != http.StatusOK || w.Body.String() != "a.b.c" {
		t.Fatalf("GET token: %d %q", w.Code, w.Body)
	}
	hd := w.Header()
	if hd.Get("Content-Type") != "text/plain; charset=utf-8" || hd.Get("Cache-Control") != "no-store" || hd.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET token headers: %v", hd)
	}
	if want := [2][]string{{"*"}, {"https://a/{x}", "b"}}; len(calls) != 1 || !slices.Equal(calls[0][0], want[0]) || !slices.Equal(calls[0][1], want[1]) {
		t.Errorf("MintToken got %q, want %q", calls, want)
	}
	if w := serve(h, http.MethodGet, ui.Prefix+"token?subscribe=x", nil); w.Code != http.StatusOK {
		t.Errorf("GET token (no browser headers, as curl): %d", w.Code)
	} else if calls[1][0] != nil {
		t.Errorf("MintToken got publish %q for no publish parameter, want nil", calls[1][0])
	}

	// GET only: a HEAD or a POST must not mint a token.
	for _, m := range []string{http.MethodHead, http.MethodPost} {
		if w := serve(h, m, ui.Prefix+"token?publish=*", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET" {
			t.Errorf("%s token: %d Allow %q, want 405 with Allow: GET", m, w.Code, w.Header().Get("Allow"))
		}
	}
	// Another site's page must not get a token.
	for _, hdr := range []http.Header{
		{"Sec-Fetch-Site": {"cross-site"}},
		{"Sec-Fetch-Site": {"same-site"}},
		{"Origin": {"https://evil.example"}},
	} {
		if w := serve(h, http.MethodGet, ui.Prefix+"token?publish=*", hdr); w.Code != http.StatusForbidden {
			t.Errorf("GET token with %v: %d, want 403", hdr, w.Code)
		}
	}
	if w := serve(h, http.MethodGet, ui.Prefix+"token?publish=*", http.Header{"Origin": {"http://example.com"}}); w.Code != http.StatusOK {
		t.Errorf("GET token with the page's own Origin: %d %s", w.Code, w.Body)
	}
	if n := len(calls); n != 3 {
		t.Errorf("MintToken called %d times, want 3", n)
	}
	w = serve(h, http.MethodGet, ui.Prefix+"token?publish=fail", nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "no key") {
		t.Errorf("GET token when MintToken fails: %d %q", w.Code, w.Body)
	}
}

// TestAccessToken checks the endpoint's draft-08 form: the grants by matcher type, the
// audience required, the issuer told to the page.
func TestAccessToken(t *testing.T) {
	if w := serve(ui.Handler(ui.Config{MintToken: mint}), http.MethodGet, ui.Prefix+"token?kind=access&audience=a&publish=*", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET token?kind=access without MintAccessToken: %d, want 404", w.Code)
	}
	var got []ui.AccessTokenRequest
	h := ui.Handler(ui.Config{Issuer: "https://localhost", MintAccessToken: func(r ui.AccessTokenRequest) (string, error) {
		got = append(got, r)
		return "x.y.z", nil
	}})
	var cfg struct {
		MintToken, MintAccessToken bool
		Issuer                     string
	}
	if err := jsonBody(serve(h, http.MethodGet, ui.Prefix+"config.json", nil).Body, &cfg); err != nil || cfg.MintToken || !cfg.MintAccessToken || cfg.Issuer != "https://localhost" {
		t.Errorf("config.json with MintAccessToken: %+v, %v", cfg, err)
	}
	if w := serve(h, http.MethodGet, ui.Prefix+"token?publish=*", nil); w.Code != http.StatusNotFound {
		t.Errorf("GET token (0.x) with MintAccessToken only: %d, want 404", w.Code)
	}
	w := serve(h, http.MethodGet, ui.Prefix+"token?kind=access&audience=https://h/.well-known/mercure&publish=*&subscribe_urlpattern=/b/:id&subscribe=urn:x", nil)
	want := ui.AccessTokenRequest{Audience: "https://h/.well-known/mercure",
		Publish:   []ui.Grant{{Match: "*", MatchType: "exact"}},
		Subscribe: []ui.Grant{{Match: "urn:x", MatchType: "exact"}, {Match: "/b/:id", MatchType: "urlpattern"}}}
	if w.Code != http.StatusOK || w.Body.String() != "x.y.z" || len(got) != 1 || got[0].Audience != want.Audience ||
		!slices.Equal(got[0].Publish, want.Publish) || !slices.Equal(got[0].Subscribe, want.Subscribe) {
		t.Errorf("GET token?kind=access: %d %q, minted %+v, want %+v", w.Code, w.Body, got, want)
	}
	for q, body := range map[string]string{
		"kind=access&publish=*": "missing \"audience\" parameter: the hub's resource identifier\n",
		"kind=other&publish=*":  "invalid \"kind\" parameter: access, or none for a Mercure 0.x token\n",
	} {
		if w := serve(h, http.MethodGet, ui.Prefix+"token?"+q, nil); w.Code != http.StatusBadRequest || w.Body.String() != body {
			t.Errorf("GET token?%s: %d %q, want 400 %q", q, w.Code, w.Body, body)
		}
	}
	if len(got) != 1 {
		t.Errorf("MintAccessToken called %d times, want 1", len(got))
	}
}

// TestMounted checks the UI as the hub serves it: the redirect, the method rule of the hub's
// mux, the CORS headers of a CORS-enabled hub removed, and no UI without Config.UI.
func TestMounted(t *testing.T) {
	th := startHub(t, hubOptions{cors: []string{"*"}, ui: ui.Config{MintToken: mint}})
	resp, _ := th.get(t, "/.well-known/mercure/ui", nil)
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != ui.Prefix {
		t.Errorf("GET /.well-known/mercure/ui: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := th.get(t, ui.Prefix, http.Header{"Origin": {"https://elsewhere.example"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<title>Herald") {
		t.Errorf("GET %s: %d", ui.Prefix, resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("the UI page allows CORS: %q", got)
	}
	resp, body = th.get(t, ui.Prefix+"token?publish=*", http.Header{"Origin": {"https://elsewhere.example"}})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("cross-origin GET token on a CORS * hub: %d %q, ACAO %q; want 403 without CORS headers", resp.StatusCode, body, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, body = th.get(t, ui.Prefix+"token?publish=*&subscribe=*", nil)
	if resp.StatusCode != http.StatusOK || strings.Count(body, ".") != 2 {
		t.Errorf("GET token: %d %q", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, th.UI+"token", nil)
	if resp, err := th.Client.Do(req); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST token: %d, want 405", resp.StatusCode)
		}
	}
	if resp, _ := th.get(t, ui.Prefix+"demo/", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET demo/ without Demo: %d, want 404", resp.StatusCode)
	}

	bare := startHub(t, hubOptions{noUI: true})
	for _, path := range []string{"/.well-known/mercure/ui", ui.Prefix, ui.Prefix + "app.css"} {
		if resp, _ := bare.get(t, path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s on a hub without UI: %d, want 404", path, resp.StatusCode)
		}
	}
}

func jsonBody(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
