// Package ui serves Herald's web UI: a debugging page for the hub (subscribe, publish, watch
// active subscriptions), the operator's dashboard (live figures of the hub) and an optional
// live demo. The pages are plain HTML, CSS and JavaScript modules embedded in the binary;
// they need no build step and load nothing from the network but the hub itself.
//
// The UI is a debugging tool. It holds no secret of its own: every request it makes to the
// hub carries the JWT the person using it entered (or minted, in dev mode).
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Prefix is the path under which Handler serves the UI. The hub mounts the handler there.
const Prefix = "/.well-known/mercure/ui/"

// Config says which parts of the UI are on.
type Config struct {
	// Demo serves the demo page at /.well-known/mercure/ui/demo/.
	Demo bool
	// MintToken, when set (dev mode only), lets the page ask the hub for a token:
	// GET /.well-known/mercure/ui/token?publish=SEL&subscribe=SEL → text/plain JWT. Both
	// parameters are repeatable; an absent one is passed as nil. Nil → 404 there.
	MintToken func(publish, subscribe []string) (string, error)
	// MintAccessToken, when set (dev mode only), lets the page ask the hub for a draft-08
	// access token (typ at+jwt) as well: GET /.well-known/mercure/ui/token?kind=access with
	// audience=AUD (the hub's resource identifier, read by the page from the protected resource
	// metadata) and the repeatable grants publish=M, subscribe=M (exact matchers, * for all),
	// publish_urlpattern=P, subscribe_urlpattern=P. Nil → 404 there.
	MintAccessToken func(AccessTokenRequest) (string, error)
	// Issuer is the iss of the access tokens MintAccessToken signs, told to the page so that it
	// can say which issuer the hub must trust.
	Issuer string
}

// Grant is one matcher of a draft-08 authorization detail: Match is the value, MatchType
// "exact" or "urlpattern".
type Grant struct {
	Match, MatchType string
}

// AccessTokenRequest is what the page asks a draft-08 access token for.
type AccessTokenRequest struct {
	Audience           string
	Publish, Subscribe []Grant
}

//go:embed static
var static embed.FS

// Content-Security-Policy of the pages. Scripts and styles come from the UI's own files only
// (no inline code, no eval), DOM sinks require Trusted Types (the code builds the DOM with
// textContent and createElement, never innerHTML), and nothing may frame the pages.
//
// The debugging page may be pointed at another hub than the one serving it, so it may connect
// anywhere (connect-src *); the demo and the dashboard talk to their own hub only.
const (
	cspBase = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; " +
		"require-trusted-types-for 'script'; trusted-types 'none'; "
	cspIndex = cspBase + "connect-src 'self' *"
	cspDemo  = cspBase + "connect-src 'self'"
)

// contentTypes maps the extensions of the embedded files to their media types. A file with
// another extension makes Handler panic, so that a new asset cannot go out sniffed.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
	csp   string // pages only
}

type handler struct {
	cfg    Config
	assets map[string]*asset // by path below Prefix: "", "demo/", "app.css", ...
	config []byte            // config.json
}

// Handler serves the UI below Prefix (it expects the full request path, as the hub's mux
// passes it):
//
//	/.well-known/mercure/ui/             the debugging page
//	/.well-known/mercure/ui/demo/        the demo page (Config.Demo)
//	/.well-known/mercure/ui/dashboard/   the operator's dashboard (it reads the hub's live stats)
//	/.well-known/mercure/ui/token        a dev token (Config.MintToken)
//	/.well-known/mercure/ui/config.json  which of the above are on, for the pages' scripts
//	/.well-known/mercure/ui/*.js, *.css  the pages' files
//
// Files are revalidated on every load (Cache-Control: no-cache with a content-hash ETag), so
// a new binary's UI shows at once. Every answer has X-Content-Type-Options: nosniff, and the
// CORS headers a CORS-enabled hub adds are removed: the UI is for its own origin only.
func Handler(cfg Config) http.Handler {
	h := &handler{cfg: cfg, assets: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("ui: no content type for " + p)
		}
		sum := sha256.Sum256(body)
		a := &asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		name := strings.TrimPrefix(p, "static/")
		switch name {
		case "index.html":
			name, a.csp = "", cspIndex
		case "demo.html":
			name, a.csp = "demo/", cspDemo
		case "dashboard.html":
			name, a.csp = "dashboard/", cspDemo
		}
		if !cfg.Demo && (name == "demo/" || name == "demo.js") {
			return nil
		}
		h.assets[name] = a
		return nil
	})
	if err != nil {
		panic("ui: reading the embedded files: " + err.Error())
	}
	h.config, _ = json.Marshal(map[string]any{
		"demo": cfg.Demo, "mintToken": cfg.MintToken != nil,
		"mintAccessToken": cfg.MintAccessToken != nil, "issuer": cfg.Issuer,
	})
	return h
}

// corsHeaders are the headers the hub's CORS layer may have set before calling the UI.
var corsHeaders = []string{
	"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	for _, k := range corsHeaders {
		hd.Del(k)
	}
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")

	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		textError(w, http.StatusNotFound, "not found")
		return
	}
	if name == "token" {
		h.token(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		textError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if name == "config.json" {
		hd.Set("Content-Type", "application/json")
		hd.Set("Cache-Control", "no-store")
		_, _ = w.Write(h.config)
		return
	}
	if (name == "demo" && h.cfg.Demo) || name == "dashboard" {
		http.Redirect(w, r, Prefix+name+"/", http.StatusMovedPermanently)
		return
	}
	a := h.assets[name]
	if a == nil {
		textError(w, http.StatusNotFound, "not found")
		return
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	if a.csp != "" {
		hd.Set("Content-Security-Policy", a.csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// token mints a dev token for the page, a Mercure 0.x one or, with kind=access, a draft-08
// access token. It answers GET only, and only to the UI's own origin
// (or to a client that is not a browser page, such as curl): a dev hub allows CORS from any
// origin, and another site's script must not obtain a publisher token from it.
func (h *handler) token(w http.ResponseWriter, r *http.Request) {
	const notHere = "not found: the hub mints tokens in dev mode only"
	if h.cfg.MintToken == nil && h.cfg.MintAccessToken == nil {
		textError(w, http.StatusNotFound, notHere)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		textError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if !sameOrigin(r) {
		textError(w, http.StatusForbidden, "the token endpoint answers the hub's own pages only")
		return
	}
	q := r.URL.Query()
	var tok string
	var err error
	switch q.Get("kind") {
	case "":
		if h.cfg.MintToken == nil {
			textError(w, http.StatusNotFound, notHere)
			return
		}
		tok, err = h.cfg.MintToken(q["publish"], q["subscribe"])
	case "access":
		if h.cfg.MintAccessToken == nil {
			textError(w, http.StatusNotFound, notHere)
			return
		}
		req := AccessTokenRequest{
			Audience:  q.Get("audience"),
			Publish:   grants(q["publish"], q["publish_urlpattern"]),
			Subscribe: grants(q["subscribe"], q["subscribe_urlpattern"]),
		}
		if req.Audience == "" {
			textError(w, http.StatusBadRequest, `missing "audience" parameter: the hub's resource identifier`)
			return
		}
		tok, err = h.cfg.MintAccessToken(req)
	default:
		textError(w, http.StatusBadRequest, `invalid "kind" parameter: access, or none for a Mercure 0.x token`)
		return
	}
	if err != nil {
		textError(w, http.StatusInternalServerError, "cannot mint a token: "+err.Error())
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(tok))
}

// grants lists exact matchers, then URL patterns.
func grants(exact, patterns []string) []Grant {
	var out []Grant
	for _, m := range exact {
		out = append(out, Grant{Match: m, MatchType: "exact"})
	}
	for _, m := range patterns {
		out = append(out, Grant{Match: m, MatchType: "urlpattern"})
	}
	return out
}

// sameOrigin reports whether r does not come from another site's page: browsers send
// Sec-Fetch-Site (and Origin on cross-origin requests); clients that send neither are not
// pages and pass.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// textError answers with a short plain-text reason, as the hub does.
func textError(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(reason + "\n"))
}
