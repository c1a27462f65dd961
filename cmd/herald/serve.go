package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/memtrim"
	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/bolt"
	"github.com/heraldhub/herald/transport/memory"
	"github.com/heraldhub/herald/transport/nats"
	"github.com/heraldhub/herald/transport/redis"
	"github.com/heraldhub/herald/ui"
)

// defaultGracePeriod is grace_period's default: how long a stop waits for publishes in flight
// and streams to end before it cuts them.
const defaultGracePeriod = 10 * time.Second

// shutdownMargin is how long past the grace period a stop waits for what it cut to finish
// (connections closed, the dispatch loop, the store) before the process exits regardless.
const shutdownMargin = time.Second

// serve implements `herald serve`.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	started := time.Now()
	// From the start: a stop that arrives while the hub starts must end it cleanly, not kill
	// it halfway through opening its store.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := config.Load(args, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	for _, n := range cfg.Notes {
		log.Warn(n)
	}
	if cfg.Dev {
		applyDev(&cfg, log)
	}
	fileLimit := raiseFileLimit(log)
	maxConns, reserve, note := connectionLimits(fileLimit, cfg.MaxConnections)
	if note != "" {
		log.Warn(note)
	}
	if maxConns > 0 {
		log.Info("connection limits", "max_connections", maxConns, "reserve", reserve, "open_file_limit", fileLimit)
	}

	// Keys and listeners first: a start that fails on them must leave nothing behind, such as
	// a new, empty store file.
	var pub, sub *auth.Verifier
	if cfg.PublisherKey != "" || cfg.PublisherJWKS != "" {
		pub, err = auth.NewVerifier(ctx, auth.Config{Key: cfg.PublisherKey, Alg: cfg.PublisherAlg, JWKSURL: cfg.PublisherJWKS, Logger: log, Name: "publisher"})
		if err != nil {
			return fmt.Errorf("publisher key: %w", err)
		}
		defer pub.Close()
	}
	subKey, subAlg, subJWKS := cfg.SubscriberKey, cfg.SubscriberAlg, cfg.SubscriberJWKS
	if subKey == "" && subJWKS == "" {
		// As the reference hub's default configuration: one key for both when only one is set.
		subKey, subAlg, subJWKS = cfg.PublisherKey, cfg.PublisherAlg, cfg.PublisherJWKS
	}
	switch {
	case pub != nil && subKey == cfg.PublisherKey && subAlg == cfg.PublisherAlg && subJWKS == cfg.PublisherJWKS:
		sub = pub // one key: one verifier, and its warnings once
	case subKey != "" || subJWKS != "":
		sub, err = auth.NewVerifier(ctx, auth.Config{Key: subKey, Alg: subAlg, JWKSURL: subJWKS, Logger: log, Name: "subscriber"})
		if err != nil {
			return fmt.Errorf("subscriber key: %w", err)
		}
		defer sub.Close()
	}
	issuers, closeIssuers, err := buildIssuers(ctx, cfg, pub, sub, log)
	if err != nil {
		return err
	}
	defer closeIssuers()
	resource := cfg.ResourceIdentifier
	if resource == "" {
		resource = "derived from each request"
	}
	log.Info("draft-08 access tokens", "issuers", issuers.IDs(), "resource_identifier", resource)
	if cfg.ResourceIdentifier == "" && len(cfg.Issuers) > 0 && !cfg.Dev {
		// With trusted issuers of its own, this hub is likely one of several sharing them: a
		// client naming another hub's host in Host could replay that hub's tokens here.
		log.Warn("resource_identifier is not set: the audience draft-08 tokens must carry is derived from each request's Host; set it to this hub's public URL")
	}
	https, err := planHTTPS(cfg, getenv, log)
	if err != nil {
		return err
	}
	defer https.close()
	tlsCfg := https.tls
	opsLn, err := listenOps(cfg.MetricsAddr, config.DefaultMetricsAddr, log)
	if err != nil {
		return err
	}
	if opsLn != nil {
		defer opsLn.Close()
	}
	rawLn, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer rawLn.Close()

	tr, shared, err := openTransport(cfg.TransportURL, cfg.SyncInterval, log)
	if err != nil {
		return err
	}
	var stopBy time.Time // set by a shutdown: the process exits by then
	defer func() {
		closed := make(chan error, 1)
		go func() { closed <- tr.Close() }()
		if stopBy.IsZero() {
			stopBy = time.Now().Add(defaultGracePeriod)
		}
		select {
		case err := <-closed:
			if err != nil {
				log.Error("closing the transport failed", "err", err)
			}
		case <-time.After(max(time.Until(stopBy), 100*time.Millisecond)):
			log.Warn("grace period over: the transport did not close; exiting without it (what was acknowledged is stored)")
		}
	}()

	m := metrics.New()
	eventsRate := float64(cfg.SubscriptionEventsRate)
	if eventsRate == 0 {
		eventsRate = -1 // no limit
	}
	matcher, err := topic.NewMatcherAt(cfg.TopicSelectorCache, matchBase(cfg))
	if err != nil {
		return fmt.Errorf("hub_url: %w", err)
	}
	h, err := hub.New(hub.Config{
		Metrics:       m,
		Transport:     tr,
		Matcher:       matcher,
		QueueSize:     cfg.QueueSize,
		Subscriptions: cfg.Subscriptions,
		Cluster:       shared,

		SubscriptionEventsRate:  eventsRate,
		SubscriptionEventsBurst: cfg.SubscriptionEventsBurst,
		NodeHeartbeat:           cfg.NodeHeartbeat,
		NodeAddr:                nodeAddr(rawLn.Addr()),
		Logger:                  log,
	})
	if err != nil {
		return err
	}
	var uiHandler http.Handler
	if cfg.UI || cfg.Demo {
		mintAccess, issuer := devAccessTokenMinter(cfg)
		uiHandler = ui.Handler(ui.Config{Demo: cfg.Demo, MintToken: devTokenMinter(cfg), MintAccessToken: mintAccess, Issuer: issuer})
	}
	stats := server.NewStatsSource(server.StatsConfig{Version: readVersion().Version, Transport: transportScheme(cfg.TransportURL),
		Started: started, Hub: h, Store: storeStats(cfg.TransportURL)}, m)
	srv, err := server.New(server.Config{
		UI:                   uiHandler,
		Stats:                stats,
		Hub:                  h,
		Publisher:            pub,
		Subscriber:           sub,
		Issuers:              issuers,
		ResourceIdentifier:   cfg.ResourceIdentifier,
		Anonymous:            cfg.Anonymous,
		CookieName:           cfg.CookieName,
		PublishOrigins:       cfg.PublishOrigins,
		CORSOrigins:          cfg.CORSOrigins,
		Heartbeat:            cfg.Heartbeat,
		WriteTimeout:         cfg.WriteTimeout,
		DispatchTimeout:      cfg.DispatchTimeout,
		MaxBodyBytes:         cfg.MaxBodyBytes,
		ReadTimeout:          cfg.ReadTimeout,
		MaxInflightBodyBytes: cfg.MaxInflightBodyBytes,
		MaxTopics:            cfg.MaxTopics,
		MaxSelectors:         cfg.MaxSelectors,
		Subscriptions:        cfg.Subscriptions,
		// Half the reserve for publishes and the subscriptions API on the hub's listener; the
		// rest stays for the operations endpoint, the store and cluster connections.
		MaxConnections:      maxConns,
		ConnectionReserve:   reserve / 2,
		MaxConnectionsPerIP: cfg.MaxConnectionsPerIP,
		Metrics:             m,
		Logger:              log,
	})
	if err != nil {
		return err
	}
	m.BodyBytes(func() float64 { return float64(srv.InflightBodyBytes()) })
	m.Gauges(
		func() float64 { return float64(h.Subscribers()) },
		h.SelectorKinds,
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			lag, _ := h.Lag(ctx)
			return float64(lag)
		},
	)
	m.OpenConnections(func() float64 { return float64(srv.OpenConnections()) })
	var draining atomic.Bool
	var opsSrv *http.Server
	if opsLn != nil {
		opsSrv = &http.Server{
			Handler:           server.OpsHandler(server.OpsConfig{Metrics: m, Ready: https.ready(h.Ready), Draining: &draining, Pprof: cfg.Pprof, Stats: stats}),
			ReadHeaderTimeout: 10 * time.Second,
		}
		// Probes and a scraper need a few connections; an eighth of the reserve is plenty.
		go func() { _ = opsSrv.Serve(server.OpsListener(opsLn, max(reserve/8, 8), log, m)) }()
		defer opsSrv.Close()
		log.Info("operations endpoints", "url", "http://"+displayAddr(opsLn.Addr()), "paths", "/metrics /healthz /readyz /stats")
	}

	ln := srv.Listener(rawLn, tlsCfg != nil)
	// No ReadTimeout here: it would stay on the connection for the whole request and end every
	// subscription older than it. The handler bounds bodies per request instead (read_timeout).
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		TLSConfig:         srv.TLSConfig(tlsCfg),
	}
	if tlsCfg != nil {
		srv.EnableHTTP2(httpSrv)
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(runCtx) }()
	trimDone := make(chan struct{})
	go func() { defer close(trimDone); memtrim.Run(runCtx, h.Subscribers, log, memtrim.Options{}) }()
	defer func() { stopRun(); <-trimDone }()
	serveDone := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			serveDone <- httpSrv.ServeTLS(ln, "", "")
		} else {
			serveDone <- httpSrv.Serve(ln)
		}
	}()
	if err := https.start(ctx, log); err != nil {
		return err
	}
	hubURL := https.hubURL(cfg, ln.Addr(), server.Path)
	log.Info("herald started", "url", hubURL, "transport", redactURL(cfg.TransportURL), "anonymous", cfg.Anonymous)
	if cfg.Dev {
		printDevHelp(stdout, cfg, hubURL)
	}

	select {
	case err := <-serveDone:
		stopRun()
		<-hubDone
		return fmt.Errorf("serving: %w", err)
	case err := <-hubDone:
		_ = httpSrv.Close()
		return fmt.Errorf("dispatching: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	grace := gracePeriod(cfg.GracePeriod)
	log.Info("shutting down: no new connections; finishing publishes and ending streams", "grace_period", grace)
	deadline := time.Now().Add(grace)
	stopBy = deadline.Add(shutdownMargin)
	shutCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	httpDone := make(chan error, 1)
	go func() { httpDone <- httpSrv.Shutdown(shutCtx) }()
	streamsDone := make(chan struct{})
	go func() {
		defer close(streamsDone)
		// The streams get what is queued for them, then end. Nothing new is dispatched to
		// them, so the dispatch loop stops first, whatever backlog it has: a busy loop must
		// not hold the hub up (the backlog stays in the log for reconnecting clients).
		stopRun()
		h.Shutdown()
		srv.Close(time.Until(deadline)) // hangs up the streams still open at the deadline
	}()
	if err := <-httpDone; err != nil { // Shutdown returns by the deadline
		log.Warn("grace period over: closing the connections still open", "connections", srv.OpenConnections(), "err", err)
		_ = httpSrv.Close()
	}
	if !waitUntil(streamsDone, stopBy) {
		log.Warn("grace period over: streams still open are abandoned", "connections", srv.OpenConnections())
	}
	if !waitUntil(hubDone, stopBy) {
		log.Warn("grace period over: the dispatch loop did not stop; exiting without it")
	}
	log.Info("herald stopped")
	return nil
}

// gracePeriod maps the grace_period setting to a duration: zero takes the default, negative
// (an explicit 0) is no grace at all.
func gracePeriod(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return defaultGracePeriod
	case d < 0:
		return 0
	}
	return d
}

// waitUntil waits for ch to deliver or close until deadline, and reports whether it did.
func waitUntil[T any](ch <-chan T, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// connectionLimits derives max_connections and the connection reserve from the process's
// open-file limit. The reserve is 5 % of the limit, at least 64 and at most 1024 descriptors,
// for publishes and the subscriptions API past max_connections, the operations endpoint, the
// store and cluster connections. max_connections defaults to the limit less the reserve, and
// an explicit value above that is lowered to it (note says so): past the open-file limit the
// hub could answer nobody. A limit that cannot be read, or that is unlimited, leaves an
// unset max_connections uncapped.
func connectionLimits(fileLimit uint64, requested int) (maxConns, reserve int, note string) {
	if fileLimit == 0 || fileLimit > 1<<30 {
		return requested, server.DefaultConnectionReserve * 2, ""
	}
	limit := int(fileLimit)
	reserve = min(max(limit/20, 64), 1024)
	def := max(limit-reserve, 1)
	if requested > def {
		return def, reserve, fmt.Sprintf("max_connections %d is more than the open-file limit of %d allows: using %d", requested, limit, def)
	}
	if requested == 0 {
		return def, reserve, ""
	}
	return requested, reserve, ""
}

// openTransport opens the update log named by rawURL: its scheme picks the implementation.
// syncInterval is the sync_interval directive (config.Validate allows it with bolt only).
// shared reports a log that other nodes may read too (a cluster transport).
func openTransport(rawURL string, syncInterval time.Duration, log *slog.Logger) (tr transport.Transport, shared bool, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, false, fmt.Errorf("transport_url %q: %w", rawURL, err)
	}
	openers := map[string]func(*url.URL) (transport.Transport, error){
		"local":  openMemory,
		"memory": openMemory,
		"bolt": func(u *url.URL) (transport.Transport, error) {
			path, opts, err := bolt.ParseURL(u)
			if err != nil {
				return nil, err
			}
			if syncInterval != 0 {
				if opts.SyncInterval != 0 {
					return nil, errors.New("sync_interval is given both as a directive and in the URL: give it once")
				}
				opts.SyncInterval = syncInterval
			}
			opts.Logger = log
			return bolt.Open(path, opts)
		},
		"redis": func(u *url.URL) (transport.Transport, error) {
			opts, err := redis.ParseURL(u)
			if err != nil {
				return nil, err
			}
			opts.Logger = log
			return redis.Open(context.Background(), opts)
		},
		"rediss": func(u *url.URL) (transport.Transport, error) {
			opts, err := redis.ParseURL(u)
			if err != nil {
				return nil, err
			}
			opts.Logger = log
			return redis.Open(context.Background(), opts)
		},
		"nats": func(u *url.URL) (transport.Transport, error) {
			opts, err := nats.ParseURL(u)
			if err != nil {
				return nil, err
			}
			opts.Logger = log
			return nats.Open(context.Background(), opts)
		},
	}
	open, ok := openers[u.Scheme]
	if !ok {
		return nil, false, fmt.Errorf("transport_url %q: unknown scheme %q (want bolt, local, memory, redis or nats)", redactURL(rawURL), u.Scheme)
	}
	tr, err = open(u)
	if err != nil {
		return nil, false, fmt.Errorf("transport_url %q: %w", redactURL(rawURL), err)
	}
	shared = u.Scheme != "local" && u.Scheme != "memory" && u.Scheme != "bolt"
	return tr, shared, nil
}

// openMemory opens the in-memory log; ?size=N and ?max_bytes=N bound its history,
// ?system_size=N its system updates.
func openMemory(u *url.URL) (transport.Transport, error) {
	var opts memory.Options
	for k, vs := range u.Query() {
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s=%q is not a non-negative number", k, vs[0])
		}
		switch k {
		case "size":
			opts.Size = int(n)
		case "max_bytes":
			opts.MaxBytes = n
		case "system_size":
			opts.SystemSize = int(n)
		default:
			return nil, fmt.Errorf("unknown option %q (want size, max_bytes or system_size)", k)
		}
	}
	return memory.New(opts), nil
}

// redactURL hides a password in a transport URL for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, has := u.User.Password(); !has {
		return raw // as given: Redacted would turn local:// into local:
	}
	return u.Redacted()
}

// transportScheme names the transport by its URL's scheme, which never holds credentials.
func transportScheme(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "unknown"
	}
	return u.Scheme
}

// listenOps opens the operations endpoint's listener, or returns nil when metrics_addr is off.
// When metrics_addr was not set and its default address is taken (say by a second hub on the
// machine), the hub starts without the endpoint and says so; an address that was set must
// work.
func listenOps(addr, defaultAddr string, log *slog.Logger) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	explicit := addr != ""
	if !explicit {
		addr = defaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case explicit:
		return nil, fmt.Errorf("metrics_addr %s: %w (choose a free address, or off to run without /metrics, /healthz and /readyz)", addr, err)
	}
	log.Warn("the operations endpoint's default address is taken: starting without /metrics, /healthz and /readyz (set metrics_addr to choose another address, or off)", "addr", addr, "err", err)
	return nil, nil
}

// newLogger builds the process logger from the log_level and log_format settings.
func newLogger(cfg config.Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// applyDev turns on development conveniences: a random key when none is set, anonymous
// subscribers, CORS and cookie publishes from any origin.
func applyDev(cfg *config.Config, log *slog.Logger) {
	if cfg.PublisherKey == "" && cfg.PublisherJWKS == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.PublisherKey = hex.EncodeToString(b)
		cfg.PublisherAlg = "HS256"
		log.Info("dev mode: generated a random JWT key for this run")
	}
	cfg.Anonymous = true
	cfg.Subscriptions = true
	cfg.UI = true
	cfg.Demo = true
	if len(cfg.CORSOrigins) == 0 {
		cfg.CORSOrigins = []string{"*"}
	}
	if len(cfg.PublishOrigins) == 0 {
		cfg.PublishOrigins = []string{"*"}
	}
	log.Warn("dev mode: anonymous subscribers, CORS from any origin, and a web UI that hands out tokens; do not use in production")
}

// devTokenMinter lets the web UI mint tokens in dev mode, when the publisher key is an HMAC
// secret; otherwise it returns nil and the UI asks for a token.
func devTokenMinter(cfg config.Config) func(publish, subscribe []string) (string, error) {
	alg := cfg.PublisherAlg
	if alg == "" {
		alg = "HS256"
	}
	if !cfg.Dev || cfg.PublisherKey == "" || !strings.HasPrefix(alg, "HS") {
		return nil
	}
	return func(publish, subscribe []string) (string, error) {
		return mintToken(mintOptions{alg: alg, key: cfg.PublisherKey, publish: publish, subscribe: subscribe, ttl: time.Hour})
	}
}

// devAccessTokenMinter lets the web UI mint draft-08 access tokens in dev mode, signed as
// devTokenMinter's with the publisher key, for the trusted issuer that key verifies: the
// default issuer when none is configured, else the first issuer configured without keys of
// its own. It returns nil when there is none, or when devTokenMinter would.
func devAccessTokenMinter(cfg config.Config) (func(ui.AccessTokenRequest) (string, error), string) {
	if devTokenMinter(cfg) == nil {
		return nil, ""
	}
	issuer := ""
	if len(cfg.Issuers) == 0 {
		issuer = config.DefaultTrustedIssuer
	}
	for _, ic := range cfg.Issuers {
		if !ic.Publisher.IsSet() && !ic.Subscriber.IsSet() {
			issuer = ic.ID
			break
		}
	}
	if issuer == "" {
		return nil, ""
	}
	alg := cmp.Or(cfg.PublisherAlg, "HS256")
	return func(r ui.AccessTokenRequest) (string, error) {
		o := mintOptions{alg: alg, key: cfg.PublisherKey, issuer: issuer, audience: []string{r.Audience}, ttl: time.Hour}
		o.publish, o.publishPatterns = splitGrants(r.Publish)
		o.subscribe, o.subscribePatterns = splitGrants(r.Subscribe)
		return mintToken(o)
	}, issuer
}

// splitGrants sorts the UI's grants into exact matchers and URL patterns, as mintOptions holds them.
func splitGrants(grants []ui.Grant) (exact, patterns []string) {
	for _, g := range grants {
		if g.MatchType == "urlpattern" {
			patterns = append(patterns, g.Match)
		} else {
			exact = append(exact, g.Match)
		}
	}
	return exact, patterns
}

// printDevHelp prints a ready token and commands to try the hub.
func printDevHelp(w io.Writer, cfg config.Config, hubURL string) {
	if cfg.PublisherKey == "" || (cfg.PublisherAlg != "" && !strings.HasPrefix(cfg.PublisherAlg, "HS")) {
		return
	}
	alg := cfg.PublisherAlg
	if alg == "" {
		alg = "HS256"
	}
	tok, err := mintToken(mintOptions{alg: alg, key: cfg.PublisherKey, publish: []string{"*"}, subscribe: []string{"*"}, ttl: 24 * time.Hour})
	if err != nil {
		return
	}
	issuer, audience := config.DefaultTrustedIssuer, cfg.ResourceIdentifier
	if len(cfg.Issuers) > 0 {
		issuer = cfg.Issuers[0].ID
	}
	if audience == "" {
		audience = hubURL
	}
	at, err := mintToken(mintOptions{alg: alg, key: cfg.PublisherKey, publish: []string{"*"}, subscribe: []string{"*"}, ttl: 24 * time.Hour,
		issuer: issuer, audience: []string{audience}})
	if err != nil {
		return
	}
	fmt.Fprintf(w, `
Herald is running in dev mode at %[1]s

Publisher and subscriber JWT (Mercure 0.x, valid 24h):
  %[2]s
Draft-08 access token (typ at+jwt, valid 24h), accepted by the same hub:
  %[3]s

Web UI:
  %[1]s/ui/   (demo: %[1]s/ui/demo/, dashboard: %[1]s/ui/dashboard/)

Subscribe (keep this running), 0.x or draft-08:
  curl -N '%[1]s?topic=https://example.com/books/1'
  curl -N '%[1]s?match=https://example.com/books/1'

Publish, with either token:
  curl -d 'topic=https://example.com/books/1' -d 'data={"title":"Hello"}' -H 'Authorization: Bearer %[2]s' %[1]s

`, hubURL, tok, at)
}

// displayAddr makes a listener address clickable: an unspecified host becomes localhost.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// buildIssuers makes the trusted issuers of draft-08 access tokens: each role's own key, or
// the top-level verifier of that role (pub, sub) when it has none. With no issuer configured,
// config.DefaultTrustedIssuer is trusted with the top-level keys, as on the reference image.
// The returned func closes the verifiers made here.
func buildIssuers(ctx context.Context, cfg config.Config, pub, sub *auth.Verifier, log *slog.Logger) (*auth.Issuers, func(), error) {
	list := cfg.Issuers
	if len(list) == 0 {
		list = []config.IssuerConfig{{ID: config.DefaultTrustedIssuer}}
	}
	var made []*auth.Verifier
	closeAll := func() {
		for _, v := range made {
			v.Close()
		}
	}
	verifier := func(iss string, k config.KeyConfig, fallback *auth.Verifier, role string) (*auth.Verifier, error) {
		if !k.IsSet() {
			return fallback, nil
		}
		v, err := auth.NewVerifier(ctx, auth.Config{Key: k.Key, Alg: k.Alg, JWKSURL: k.JWKS, Logger: log, Name: role + " of issuer " + iss})
		if err != nil {
			return nil, fmt.Errorf("issuer %q: %s key: %w", iss, role, err)
		}
		made = append(made, v)
		return v, nil
	}
	out := make([]auth.Issuer, 0, len(list))
	for _, ic := range list {
		p, err := verifier(ic.ID, ic.Publisher, pub, "publisher")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		s, err := verifier(ic.ID, ic.Subscriber, sub, "subscriber")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		out = append(out, auth.Issuer{ID: ic.ID, AuthorizationServer: ic.AuthorizationServer, Publisher: p, Subscriber: s})
	}
	issuers, err := auth.NewIssuers(out)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return issuers, closeAll, nil
}

// isHubURL reports whether raw can be the hub's public URL: absolute, with a host, its path
// Path, no query or fragment (what hub_url must be). Only then may a resource identifier stand
// for it: the Matcher's base path is the reserved namespace publishers may not write to, so a
// resource identifier such as https://api.example.com/ or https://api.example.com/hub would
// reserve every topic, or none of the hub's subscription events.
func isHubURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Path != server.Path || u.RawQuery != "" || u.Fragment != "" {
		return false
	}
	_, err = topic.NewMatcherAt(0, raw)
	return err == nil
}

// matchBase returns the hub's public URL, which draft-08 URL patterns and relative topics are
// resolved against: hub_url, else resource_identifier when it is a hub URL (isHubURL), else https:// and the first host name of SERVER_NAME (with
// https_port when it is not 443) when that makes a URL, else topic.DefaultHubURL, whose host can
// name no real one.
func matchBase(cfg config.Config) string {
	if cfg.HubURL != "" {
		return cfg.HubURL
	}
	if ri := cfg.ResourceIdentifier; isHubURL(ri) {
		return ri
	}
	if len(cfg.ServerNames) == 0 {
		return topic.DefaultHubURL
	}
	host := cfg.ServerNames[0]
	if cfg.HTTPSPort != 0 && cfg.HTTPSPort != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(cfg.HTTPSPort))
	}
	u := "https://" + host + server.Path
	if _, err := topic.NewMatcherAt(0, u); err != nil {
		return topic.DefaultHubURL // a name no URL can hold, such as a wildcard
	}
	return u
}
