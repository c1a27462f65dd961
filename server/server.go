package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/loglimit"
	"github.com/heraldhub/herald/metrics"
)

// Path is the Mercure hub's well-known path.
const Path = "/.well-known/mercure"

// Defaults for Config's zero values, as the reference hub.
const (
	DefaultHeartbeat       = 40 * time.Second
	DefaultWriteTimeout    = 600 * time.Second
	DefaultDispatchTimeout = 5 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	DefaultReadTimeout     = 10 * time.Second
	// DefaultMaxInflightBodyBytes bounds the publish bodies being read at once: 64 MiB, the
	// room for 64 bodies of the default max_body_bytes.
	DefaultMaxInflightBodyBytes = 64 << 20
	DefaultMaxTopics            = 1000
	DefaultMaxSelectors         = 100
	DefaultCookieName           = "mercureAuthorization"
)

// Config is the HTTP layer's configuration. Durations follow the reference hub: a negative
// value turns the feature off, zero takes the default.
type Config struct {
	Hub *hub.Hub
	// Publisher verifies publishers' JWTs. Nil refuses every publish with 401.
	Publisher *auth.Verifier
	// Subscriber verifies subscribers' JWTs. Nil accepts only anonymous subscribers.
	Subscriber *auth.Verifier
	// Issuers are the trusted issuers of draft-08 access tokens (typ at+jwt), each with its own
	// keys. Nil refuses every draft-08 token with 401 invalid_token.
	Issuers *auth.Issuers
	// ResourceIdentifier is the hub's OAuth 2.0 resource identifier, the aud draft-08 tokens
	// must carry, e.g. https://hub.example.com/.well-known/mercure. Empty derives it from each
	// request: the scheme (https over TLS) and Host the client used, followed by Path.
	ResourceIdentifier string
	// Anonymous lets requests without a token subscribe to public updates.
	Anonymous bool
	// CookieName is the cookie that may carry the JWT. Default DefaultCookieName.
	CookieName string
	// PublishOrigins lists the origins allowed to publish with a cookie-borne JWT (CSRF
	// protection). Empty refuses cookie-authorised publishes.
	PublishOrigins []string
	// CORSOrigins lists the origins allowed by CORS, or "*". Empty turns CORS off.
	CORSOrigins []string
	// Heartbeat is how long a stream may stay silent before a comment is sent.
	Heartbeat time.Duration
	// WriteTimeout is a stream's maximum lifetime; each stream gets a random 80–100 % of it so
	// that reconnects spread out.
	WriteTimeout time.Duration
	// DispatchTimeout bounds how long a subscriber's connection may refuse data (one write and
	// flush that cannot complete, or a socket that stays full) before the stream ends as slow.
	DispatchTimeout time.Duration
	// MaxBodyBytes bounds a publish request's body. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadTimeout is how long, from its start, a publish (or any request but a subscribe) has
	// to send its whole body; a late publish gets 408 and its connection is closed. Default
	// DefaultReadTimeout. Subscriptions are not affected.
	ReadTimeout time.Duration
	// MaxInflightBodyBytes bounds the bytes held by publish bodies being read and parsed,
	// summed over all requests; a publish that does not fit gets 503 with Retry-After before
	// its body is read. It must be at least MaxBodyBytes. Default DefaultMaxInflightBodyBytes.
	MaxInflightBodyBytes int64
	// MaxTopics bounds topics per publish. Default DefaultMaxTopics.
	MaxTopics int
	// MaxSelectors bounds topic selectors per subscription: each costs the hub memory and
	// matching time for as long as the stream lasts, and anyone may subscribe. Default
	// DefaultMaxSelectors, the limit of the Mercure draft.
	MaxSelectors int
	// Subscriptions serves the active subscriptions API (the hub must publish subscription
	// events: hub.Config.Subscriptions).
	Subscriptions bool
	// MaxConnections caps the connections open on the listener made by Server.Listener that
	// may carry a subscription: a subscription that arrives while more are open, its own
	// counted, gets 503 with Retry-After at once. Zero is no cap. See conns.go.
	MaxConnections int
	// ConnectionReserve is how many connections beyond MaxConnections the listener still
	// accepts, for publishes and the subscriptions API; past MaxConnections+ConnectionReserve a
	// new connection gets a canned 503 and is closed. Zero takes DefaultConnectionReserve.
	ConnectionReserve int
	// MaxConnectionsPerIP caps the subscriptions and publishes in progress from one remote
	// address (the peer's, not X-Forwarded-For): past it, 429 with Retry-After. Zero is no cap.
	MaxConnectionsPerIP int
	// Metrics records requests and deliveries; nil records nothing.
	Metrics *metrics.Metrics
	// DisableHijack keeps HTTP/1.1 streams on net/http's goroutine per connection instead
	// of the shared writer pool. For debugging and comparison.
	DisableHijack bool
	Logger        *slog.Logger
	// Stats, when set, serves the live stats at StatsTopic to tokens allowed to subscribe to
	// it (dashboard.go): the operator's dashboard and herald top read them.
	Stats *StatsSource
	// UI, when set, serves the web UI under Path+"/ui/" (see package ui); Path+"/ui"
	// redirects there. Nil serves no UI.
	UI http.Handler
}

// Server serves the Mercure endpoints. Create it with New.
type Server struct {
	cfg Config
	log *slog.Logger
	hub *hub.Hub

	bodies   bodyBudget        // bytes of publish bodies being read
	refusals *loglimit.Limiter // logs refused requests, once a second per reason category

	poolOnce sync.Once
	streams  *pool // writer pool of hijacked HTTP/1.1 streams; nil until the first one

	open    atomic.Int64      // connections open on Listener's listener, hijacked streams included
	ips     perIP             // requests in progress by remote address
	accepts *loglimit.Limiter // logs failed accepts and connections refused at accept, once a second per kind
}

// New checks cfg, applies defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil {
		return nil, errors.New("server: Config.Hub is required")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	cfg.Heartbeat = orDefault(cfg.Heartbeat, DefaultHeartbeat)
	cfg.WriteTimeout = orDefault(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.DispatchTimeout = orDefault(cfg.DispatchTimeout, DefaultDispatchTimeout)
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg.ReadTimeout = orDefault(cfg.ReadTimeout, DefaultReadTimeout)
	if cfg.MaxInflightBodyBytes <= 0 {
		cfg.MaxInflightBodyBytes = DefaultMaxInflightBodyBytes
	}
	if cfg.MaxInflightBodyBytes < cfg.MaxBodyBytes {
		return nil, fmt.Errorf("server: max_inflight_body_bytes (%d) is smaller than max_body_bytes (%d): no large publish could ever be read", cfg.MaxInflightBodyBytes, cfg.MaxBodyBytes)
	}
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	if cfg.MaxSelectors <= 0 {
		cfg.MaxSelectors = DefaultMaxSelectors
	}
	if cfg.ConnectionReserve <= 0 {
		cfg.ConnectionReserve = DefaultConnectionReserve
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, o := range cfg.CORSOrigins {
		if o != "*" && strings.Count(o, "*") > 0 {
			return nil, errors.New("server: cors_origins entries are exact origins or a lone *")
		}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hub: cfg.Hub, ips: perIP{max: cfg.MaxConnectionsPerIP}}
	s.bodies.limit = cfg.MaxInflightBodyBytes
	s.refusals = loglimit.New(loglimit.Config{Logger: cfg.Logger, Every: time.Second})
	s.accepts = loglimit.New(loglimit.Config{Logger: cfg.Logger, Every: time.Second})
	return s, nil
}

// orDefault maps zero to def and negative to 0 (off).
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// Handler returns the routes: the hub endpoint (GET/HEAD/QUERY subscribe, POST publish, OPTIONS
// preflight), the subscriptions API and the web UI when configured, wrapped in CORS handling
// and in the body's read deadline.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, s.subscribe) // GET patterns also match HEAD
	mux.HandleFunc(MethodQuery+" "+Path, s.subscribe)
	mux.HandleFunc("POST "+Path, s.publish)
	mux.HandleFunc(Path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "GET, HEAD, POST, QUERY")
		s.refuse(w, r, &requestError{code: http.StatusMethodNotAllowed, category: reasonMethod, reason: "method not allowed"})
	})
	mux.HandleFunc("GET "+MetadataPath, s.metadata)
	if s.cfg.Subscriptions {
		sp := hub.SubscriptionsPath
		mux.HandleFunc("GET "+sp, s.subscriptions)
		mux.HandleFunc("GET "+sp+"/{a}", s.subscriptions)
		mux.HandleFunc("GET "+sp+"/{a}/{b}", s.subscriptions)
		mux.HandleFunc("GET "+sp+"/{a}/{b}/{subscriber}", s.subscriptions)
	}
	if s.cfg.Stats != nil {
		mux.HandleFunc("GET "+StatsTopic, s.stats)
	}
	if s.cfg.UI != nil {
		mux.Handle("GET "+Path+"/ui/", s.cfg.UI)
		mux.Handle("GET "+Path+"/ui", http.RedirectHandler(Path+"/ui/", http.StatusMovedPermanently))
	}
	return s.bodyDeadline(s.cors(mux))
}

// httpError answers with a short plain-text reason, as the reference hub does.
func httpError(w http.ResponseWriter, code int, reason string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(reason + "\n"))
}

// discovery adds the Link header that advertises the hub, as the draft's examples do.
func discovery(w http.ResponseWriter) {
	w.Header().Add("Link", "<"+Path+`>; rel="mercure"`)
}
