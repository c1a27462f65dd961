// Package config turns flags, environment variables and an optional configuration file into
// one Config. The reference Mercure hub's environment works unchanged: SERVER_NAME, the
// MERCURE_*_JWT_* variables and MERCURE_EXTRA_DIRECTIVES, whose directives are the same lines a
// configuration file holds.
//
// Precedence, lowest first: defaults, the configuration file, the environment, flags.
// Every error is reported at once, and a directive Herald does not support is an error that
// names it, never silently ignored.
package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of `herald serve`. Durations of zero take the hub's defaults and
// negative durations turn the feature off, as "0" does in a directive.
type Config struct {
	Addr    string // listen address, e.g. ":3000"
	TLSCert string // certificate file; with TLSKey, serve HTTPS (and HTTP/2)
	TLSKey  string

	// HTTPS as the reference hub's Caddy serves it (see docs/https.md). ServerNames are the
	// host names of SERVER_NAME that get certificates: from ACME, or from Herald's local CA for
	// localhost, *.localhost, IP addresses and with LocalCerts. Empty serves plain HTTP.
	ServerNames []string
	Email       string // ACME account e-mail address
	ACMECA      string // ACME directory URL; "" = Let's Encrypt
	ACMECARoot  string // PEM file of a root to trust for the ACME server's own TLS
	LocalCerts  bool   // every certificate from the local CA
	// AutoHTTPS is "" (on), "off" (no certificates are obtained and no redirect is served)
	// or "disable_redirects" (certificates without the HTTP listener that redirects).
	AutoHTTPS string
	HTTPPort  int    // the redirect and HTTP-01 listener's port; 0 = 80
	HTTPSPort int    // the HTTPS port of host names without one; 0 = 443
	DataDir   string // certificates, keys and the ACME account; "" = $XDG_DATA_HOME/herald

	PublisherKey  string
	PublisherAlg  string
	PublisherJWKS string

	SubscriberKey  string
	SubscriberAlg  string
	SubscriberJWKS string

	// Issuers are the trusted issuers of draft-08 access tokens, each with its keys; a role
	// without a key of its own takes the top-level key of that role (PublisherKey...).
	Issuers []IssuerConfig
	// ResourceIdentifier is the hub's OAuth 2.0 resource identifier, the aud draft-08 tokens
	// must carry; "" derives it from each request's scheme and Host.
	ResourceIdentifier string

	Anonymous     bool
	Subscriptions bool
	// SubscriptionEventsRate bounds the subscription events new subscriptions write, per
	// second (0 = no limit), with bursts of SubscriptionEventsBurst.
	SubscriptionEventsRate  int
	SubscriptionEventsBurst int
	UI                      bool // serve the debugging web UI at /.well-known/mercure/ui/
	Demo                    bool // also serve the demo page; implies UI
	CORSOrigins             []string
	PublishOrigins          []string
	CookieName              string
	// HubURL is the hub's public URL, which draft-08 URL patterns and relative topics are
	// resolved against and whose path is the reserved namespace; "" derives it from the first
	// host name of ServerNames, else a placeholder host (see cmd/herald).
	HubURL string

	Heartbeat       time.Duration
	WriteTimeout    time.Duration
	DispatchTimeout time.Duration
	// ReadTimeout is how long a publish has, from its start, to send its whole body.
	ReadTimeout time.Duration

	TransportURL string
	// SyncInterval, with the bolt transport, acknowledges a publish once it is written to the
	// write-ahead log and syncs the log at most this long after: a power loss may then lose
	// the publishes of the last interval. Zero (unset) and -1 (an explicit 0) sync before
	// acknowledging; transport_url's sync_interval sets it too.
	SyncInterval time.Duration
	// NodeHeartbeat is how often a node of a cluster says it is alive; a node silent for three
	// heartbeats is taken for dead and its subscriptions expire. Zero takes the default (5s).
	NodeHeartbeat time.Duration

	MaxBodyBytes int64
	// MaxInflightBodyBytes bounds the bytes of publish bodies being read at once.
	MaxInflightBodyBytes int64
	MaxTopics            int
	MaxSelectors         int
	// MaxConnections caps the hub listener's connections that may carry a subscription; zero
	// takes the default, derived from the process's open-file limit (see cmd/herald).
	MaxConnections int
	// MaxConnectionsPerIP caps the subscriptions and publishes in progress from one remote
	// address; zero is no cap.
	MaxConnectionsPerIP int
	// GracePeriod bounds a shutdown: zero takes the default (10s), negative stops at once.
	GracePeriod        time.Duration
	QueueSize          int
	TopicSelectorCache int

	MetricsAddr string // address of /metrics, /healthz and /readyz; "off" disables; "" = DefaultMetricsAddr if free
	Pprof       bool   // serve /debug/pprof/ on MetricsAddr

	LogLevel  string // debug, info, warn, error
	LogFormat string // text or json

	Dev bool

	// Notes are remarks for the start-up log, such as directives accepted for compatibility
	// that have no effect in Herald.
	Notes []string
}

// IssuerConfig is a trusted issuer of draft-08 access tokens: the exact iss of its tokens,
// whether the protected resource metadata advertises it as an authorization server, and the
// keys its publisher and subscriber tokens are checked with.
type IssuerConfig struct {
	ID                  string
	AuthorizationServer bool
	Publisher           KeyConfig
	Subscriber          KeyConfig
}

// KeyConfig is one role's key: an HMAC secret or PEM public key with its algorithm, or a JWK
// Set URL (with an asymmetric algorithm). The zero value means the top-level key of the role.
type KeyConfig struct {
	Key, Alg, JWKS string
}

// IsSet reports whether the key is configured.
func (k KeyConfig) IsSet() bool { return k.Key != "" || k.JWKS != "" }

// issuer returns the issuer id, added at the end when new.
func (c *Config) issuer(id string) *IssuerConfig {
	for i := range c.Issuers {
		if c.Issuers[i].ID == id {
			return &c.Issuers[i]
		}
	}
	c.Issuers = append(c.Issuers, IssuerConfig{ID: id})
	return &c.Issuers[len(c.Issuers)-1]
}

// applyIssuer applies an issuer directive: "ID", "ID authorization_server", or
// "ID publisher|subscriber jwt KEY [ALG]" or "ID publisher|subscriber jwks_uri URL [ALG]": the
// lines of the reference hub's issuer block, each prefixed with the issuer.
func applyIssuer(c *Config, a []string) error {
	if len(a) == 0 {
		return errors.New("takes an issuer identifier, then authorization_server, or publisher|subscriber jwt KEY [ALG], or publisher|subscriber jwks_uri URL [ALG]")
	}
	iss := c.issuer(a[0])
	if len(a) == 1 {
		return nil
	}
	if a[1] == "authorization_server" {
		if len(a) != 2 {
			return errors.New("authorization_server takes no value")
		}
		iss.AuthorizationServer = true
		return nil
	}
	var k *KeyConfig
	switch a[1] {
	case "publisher":
		k = &iss.Publisher
	case "subscriber":
		k = &iss.Subscriber
	default:
		return fmt.Errorf("unknown issuer setting %q (want authorization_server, publisher or subscriber)", a[1])
	}
	if len(a) < 4 {
		return fmt.Errorf("%s takes jwt KEY [ALG] or jwks_uri URL [ALG]", a[1])
	}
	if len(a) > 5 {
		return fmt.Errorf("%s %s takes one algorithm at most: Herald pins one algorithm per key", a[1], a[2])
	}
	alg := ""
	if len(a) == 5 {
		alg = a[4]
	}
	if strings.HasPrefix(a[3], "{") {
		return fmt.Errorf("%s %s %s: Caddy placeholders are not expanded; give the value itself, or leave the role out to use the top-level key (MERCURE_%s_JWT_KEY)", a[1], a[2], a[3], strings.ToUpper(a[1]))
	}
	switch a[2] {
	case "jwt":
		if k.JWKS != "" {
			return fmt.Errorf("%s: jwt and jwks_uri are mutually exclusive", a[1])
		}
		*k = KeyConfig{Key: a[3], Alg: alg}
	case "jwks_uri":
		if k.Key != "" {
			return fmt.Errorf("%s: jwt and jwks_uri are mutually exclusive", a[1])
		}
		*k = KeyConfig{JWKS: a[3], Alg: alg}
	default:
		return fmt.Errorf("unknown %s setting %q (want jwt or jwks_uri)", a[1], a[2])
	}
	return nil
}

// DefaultMetricsAddr is where the operations endpoint listens when metrics_addr is not set, as
// the reference hub's admin endpoint does.
const DefaultMetricsAddr = "localhost:2019"

// Defaults returns the configuration `herald serve` starts from.
func Defaults() Config {
	return Config{
		Addr:               ":3000",
		TransportURL:       "bolt://herald.db",
		TopicSelectorCache: 100_000,

		SubscriptionEventsRate:  1000,
		SubscriptionEventsBurst: 10_000,
		LogLevel:                "info",
		LogFormat:               "text",
	}
}

// directive is one configuration directive: its name, its arguments' shape for help, and how it
// applies to a Config.
type directive struct {
	name  string
	args  string
	usage string
	apply func(c *Config, args []string) error
}

// directives lists every directive Herald understands, in help order.
func directives() []directive {
	str := func(dst func(*Config) *string) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) != 1 {
				return errors.New("takes one value")
			}
			*dst(c) = a[0]
			return nil
		}
	}
	list := func(dst func(*Config) *[]string) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) == 0 {
				return errors.New("takes at least one value")
			}
			*dst(c) = append([]string(nil), a...)
			return nil
		}
	}
	dur := func(dst func(*Config) *time.Duration) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) != 1 {
				return errors.New("takes one duration")
			}
			d, err := parseDuration(a[0])
			if err != nil {
				return err
			}
			*dst(c) = d
			return nil
		}
	}
	num := func(dst func(*Config) *int) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) != 1 {
				return errors.New("takes one number")
			}
			n, err := strconv.Atoi(a[0])
			if err != nil || n < 0 {
				return fmt.Errorf("%q is not a non-negative whole number", a[0])
			}
			*dst(c) = n
			return nil
		}
	}
	size := func(dst func(*Config) *int64) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			var n int
			if err := num(func(*Config) *int { return &n })(c, a); err != nil {
				return err
			}
			*dst(c) = int64(n)
			return nil
		}
	}
	flag := func(dst func(*Config) *bool) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) > 1 {
				return errors.New("takes no value, or true/false")
			}
			v := true
			if len(a) == 1 {
				b, err := strconv.ParseBool(a[0])
				if err != nil {
					return fmt.Errorf("%q is not true or false", a[0])
				}
				v = b
			}
			*dst(c) = v
			return nil
		}
	}
	port := func(dst func(*Config) *int) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) != 1 {
				return errors.New("takes a port")
			}
			n, err := strconv.Atoi(a[0])
			if err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q is not a port (1-65535)", a[0])
			}
			*dst(c) = n
			return nil
		}
	}
	jwt := func(key, alg func(*Config) *string) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			if len(a) < 1 || len(a) > 2 {
				return errors.New("takes a key and an optional algorithm")
			}
			*key(c) = a[0]
			if len(a) == 2 {
				*alg(c) = a[1]
			}
			return nil
		}
	}
	noEffect := func(why string) func(*Config, []string) error {
		return func(c *Config, a []string) error {
			c.Notes = append(c.Notes, why)
			return nil
		}
	}
	return []directive{
		{"listen", "ADDR", "listen address (SERVER_NAME sets it too)", str(func(c *Config) *string { return &c.Addr })},
		{"tls", "CERT KEY", "serve HTTPS and HTTP/2 with this certificate and key file", func(c *Config, a []string) error {
			if len(a) != 2 {
				return errors.New("takes a certificate file and a key file")
			}
			c.TLSCert, c.TLSKey = a[0], a[1]
			return nil
		}},
		{"data_dir", "DIR", "where certificates, their keys and the ACME account are kept, with 0700/0600 permissions (default $XDG_DATA_HOME/herald, else ~/.local/share/herald)", str(func(c *Config) *string { return &c.DataDir })},
		{"email", "ADDRESS", "e-mail address of the ACME account (GLOBAL_OPTIONS' email)", str(func(c *Config) *string { return &c.Email })},
		{"acme_ca", "URL", "ACME directory of the CA that issues certificates (default Let's Encrypt)", str(func(c *Config) *string { return &c.ACMECA })},
		{"acme_ca_root", "FILE", "PEM root certificate to trust for the ACME CA's own HTTPS (a test CA such as Pebble)", str(func(c *Config) *string { return &c.ACMECARoot })},
		{"local_certs", "", "issue every certificate from Herald's local CA instead of ACME", flag(func(c *Config) *bool { return &c.LocalCerts })},
		{"auto_https", "off|disable_redirects", "off: obtain no certificates and serve no redirect; disable_redirects: no HTTP listener redirecting to HTTPS", func(c *Config, a []string) error {
			if len(a) != 1 || a[0] != "off" && a[0] != "disable_redirects" {
				return errors.New("takes off or disable_redirects")
			}
			c.AutoHTTPS = a[0]
			return nil
		}},
		{"http_port", "PORT", "port of the HTTP listener that redirects to HTTPS and answers HTTP-01 challenges (default 80)", port(func(c *Config) *int { return &c.HTTPPort })},
		{"https_port", "PORT", "HTTPS port of host names given without one (default 443)", port(func(c *Config) *int { return &c.HTTPSPort })},
		{"debug", "", "log at debug level (as log_level debug)", func(c *Config, a []string) error {
			if len(a) > 1 || len(a) == 1 && a[0] != "true" && a[0] != "false" {
				return errors.New("takes no argument")
			}
			if len(a) == 0 || a[0] == "true" {
				c.LogLevel = "debug"
			}
			return nil
		}},
		{"publisher_jwt", "KEY [ALG]", "key (HMAC secret or PEM public key) and algorithm (default HS256) of publishers' JWTs", jwt(func(c *Config) *string { return &c.PublisherKey }, func(c *Config) *string { return &c.PublisherAlg })},
		{"subscriber_jwt", "KEY [ALG]", "key and algorithm of subscribers' JWTs", jwt(func(c *Config) *string { return &c.SubscriberKey }, func(c *Config) *string { return &c.SubscriberAlg })},
		{"publisher_jwks_url", "URL", "JWKS (http(s):// or file://) for publishers' JWTs; overrides the key", str(func(c *Config) *string { return &c.PublisherJWKS })},
		{"subscriber_jwks_url", "URL", "JWKS for subscribers' JWTs; overrides the key", str(func(c *Config) *string { return &c.SubscriberJWKS })},
		{"issuer", "ID [authorization_server | publisher|subscriber jwt KEY [ALG] | publisher|subscriber jwks_uri URL [ALG]]", "trust draft-08 access tokens whose iss is ID, checked with this issuer's own keys (a role without one takes the top-level key); authorization_server lists it in the protected resource metadata. Repeatable; the reference's issuer { … } block is read as these lines", applyIssuer},
		{"resource_identifier", "URL", "the hub's OAuth 2.0 resource identifier: the aud draft-08 access tokens must carry (default: derived from each request, scheme://host/.well-known/mercure)", str(func(c *Config) *string { return &c.ResourceIdentifier })},
		{"anonymous", "", "let clients without a JWT subscribe to public updates", flag(func(c *Config) *bool { return &c.Anonymous })},
		{"ui", "", "serve the debugging web UI at /.well-known/mercure/ui/", flag(func(c *Config) *bool { return &c.UI })},
		{"demo", "", "serve the web UI and its demo page at /.well-known/mercure/ui/demo/", flag(func(c *Config) *bool { return &c.Demo })},
		{"subscriptions", "", "publish subscription events and serve the active subscriptions API", flag(func(c *Config) *bool { return &c.Subscriptions })},
		{"subscription_events_rate", "N [BURST]", "with subscriptions: subscription events per second that new subscriptions may write, in bursts of BURST (default 1000 10000, 0 = no limit); a subscription that would wait over 5s is refused with 503", func(c *Config, a []string) error {
			if len(a) < 1 || len(a) > 2 {
				return errors.New("takes a rate and an optional burst")
			}
			for i, v := range a {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || i == 1 && n == 0 {
					return fmt.Errorf("%q is not a %s whole number", v, []string{"non-negative", "positive"}[i])
				}
				if i == 0 {
					c.SubscriptionEventsRate = n
				} else {
					c.SubscriptionEventsBurst = n
				}
			}
			return nil
		}},
		{"cors_origins", "ORIGIN...", "origins allowed by CORS (credentials only for explicit origins), or *", list(func(c *Config) *[]string { return &c.CORSOrigins })},
		{"publish_origins", "ORIGIN...", "origins allowed to publish with a cookie-borne JWT (* or one * wildcard per entry)", list(func(c *Config) *[]string { return &c.PublishOrigins })},
		{"hub_url", "URL", "the hub's public URL, ending in /.well-known/mercure: draft-08 URL patterns and relative topics are resolved against it (default https:// and the first host name of SERVER_NAME, else https://herald.invalid/.well-known/mercure)", str(func(c *Config) *string { return &c.HubURL })},
		{"cookie_name", "NAME", "cookie that may carry the JWT (default mercureAuthorization)", str(func(c *Config) *string { return &c.CookieName })},
		{"heartbeat", "DURATION", "comment sent on idle streams (default 40s, 0 = off)", dur(func(c *Config) *time.Duration { return &c.Heartbeat })},
		{"write_timeout", "DURATION", "stream lifetime, jittered to 80-100% (default 600s, 0 = unbounded)", dur(func(c *Config) *time.Duration { return &c.WriteTimeout })},
		{"dispatch_timeout", "DURATION", "how long a subscriber's socket may refuse data before it is dropped as slow (default 5s, 0 = no limit)", dur(func(c *Config) *time.Duration { return &c.DispatchTimeout })},
		{"read_timeout", "DURATION", "how long a publish has, from its start, to send its whole body before it gets 408; subscriptions are not affected (default 10s, 0 = no limit)", dur(func(c *Config) *time.Duration { return &c.ReadTimeout })},
		{"transport_url", "URL", "the update log: bolt://PATH (default bolt://herald.db), local:// or memory:// (?size=N), or a cluster transport: redis://HOST:PORT/DB?stream=NAME, nats://HOST:PORT?stream=NAME", str(func(c *Config) *string { return &c.TransportURL })},
		{"transport", "local|bolt", "the update log by name (local = in memory); transport_url gives options", func(c *Config, a []string) error {
			if len(a) > 1 && a[1] == "{" {
				return errors.New("the block form is not supported: give the options in transport_url, e.g. bolt://herald.db?size=100000")
			}
			if len(a) != 1 {
				return errors.New("takes local or bolt")
			}
			switch a[0] {
			case "local":
				c.TransportURL = "local://local"
			case "bolt":
				c.TransportURL = "bolt://herald.db"
			default:
				return fmt.Errorf("unknown transport %q (want local or bolt)", a[0])
			}
			return nil
		}},
		{"sync_interval", "DURATION", "bolt transport: acknowledge a publish once it is written to the write-ahead log and sync the log every DURATION, so that a power loss may lose the last DURATION of publishes (default 0 = sync before acknowledging)", dur(func(c *Config) *time.Duration { return &c.SyncInterval })},
		{"node_heartbeat", "DURATION", "with a shared transport (redis, nats): how often a node says it is alive; a node silent for 3 heartbeats has its subscriptions expire (default 5s)", dur(func(c *Config) *time.Duration { return &c.NodeHeartbeat })},
		{"max_body_bytes", "N", "largest publish body in bytes (default 1048576)", size(func(c *Config) *int64 { return &c.MaxBodyBytes })},
		{"max_inflight_body_bytes", "N", "bytes of publish bodies being read at once, over all requests; a publish past it gets 503 with Retry-After (default 67108864, at least max_body_bytes)", size(func(c *Config) *int64 { return &c.MaxInflightBodyBytes })},
		{"max_topics", "N", "most topics per publish (default 1000)", num(func(c *Config) *int { return &c.MaxTopics })},
		{"max_selectors", "N", "most topic selectors per subscription (default 100)", num(func(c *Config) *int { return &c.MaxSelectors })},
		{"max_connections", "N", "most connections that may carry subscriptions; past it a new subscription gets 503 (default 0 = the open-file limit less a reserve)", num(func(c *Config) *int { return &c.MaxConnections })},
		{"max_connections_per_ip", "N", "most subscriptions and publishes in progress from one remote address; past it 429 (default 0 = no cap)", num(func(c *Config) *int { return &c.MaxConnectionsPerIP })},
		{"grace_period", "DURATION", "how long a shutdown waits for publishes and streams to end before cutting them (default 10s, 0 = cut at once)", dur(func(c *Config) *time.Duration { return &c.GracePeriod })},
		{"queue_size", "N", "events queued per subscriber before it is dropped as too slow (default 1000)", num(func(c *Config) *int { return &c.QueueSize })},
		{"topic_selector_cache", "N", "entries in the selector match cache (default 100000, 0 = off)", num(func(c *Config) *int { return &c.TopicSelectorCache })},
		{"metrics_addr", "ADDR", "address of /metrics, /healthz and /readyz (default localhost:2019, as the reference hub's admin endpoint; off to disable)", str(func(c *Config) *string { return &c.MetricsAddr })},
		{"pprof", "", "serve Go's profiler at /debug/pprof/ on metrics_addr", flag(func(c *Config) *bool { return &c.Pprof })},
		{"log_level", "LEVEL", "debug, info, warn or error (default info)", str(func(c *Config) *string { return &c.LogLevel })},
		{"log_format", "FORMAT", "text or json (default text)", str(func(c *Config) *string { return &c.LogFormat })},
		{"subscriber_list_cache_size", "N", "accepted for compatibility; Herald has no subscriber list cache", noEffect("subscriber_list_cache_size has no effect: Herald indexes subscribers by topic instead")},
		{"protocol_version_compatibility", "7|8", "accepted for compatibility; Herald always speaks Mercure 0.x (old Last-Event-ID query parameter included) and draft-08 side by side, each request and token saying which", func(c *Config, a []string) error {
			if len(a) != 1 || a[0] != "7" && a[0] != "8" {
				return errors.New("only 7 and 8 are supported")
			}
			return nil
		}},
		{"name", "NAME", "accepted for compatibility (the reference hub's instance name)", noEffect("name has no effect: one Herald process serves one hub")},
	}
}

// applyFlag applies the directive name, given as the flag --flag with value.
func applyFlag(c *Config, flag, name, value string) error {
	for _, d := range directives() {
		if d.name == name {
			if err := d.apply(c, strings.Fields(value)); err != nil {
				return fmt.Errorf("--%s: %w", flag, err)
			}
			return nil
		}
	}
	return fmt.Errorf("--%s: no such option", flag)
}

// parseDuration reads Go durations ("40s", "1m30s") and, like Caddy, bare numbers as seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%q is negative", s)
		}
		return secondsOrOff(time.Duration(n) * time.Second), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like 40s or 10m", s)
	}
	return secondsOrOff(d), nil
}

// secondsOrOff maps an explicit zero to -1, the Config's "off".
func secondsOrOff(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// unsupported names directives of the reference hub that Herald does not implement (yet), with
// what to do instead.
var unsupported = map[string]string{
	"ui":   "the web UI is not available in this version of Herald",
	"demo": "the demo pages are not available in this version of Herald",
}

// ApplyDirectives applies configuration text: one directive a line, arguments separated by
// spaces, "#" starting a comment. src names the text in errors. It returns every error found.
func ApplyDirectives(c *Config, src, text string) error {
	byName := make(map[string]directive)
	for _, d := range directives() {
		byName[d.name] = d
	}
	var errs []error
	// An issuer block, as the reference hub writes it, reads as the lines inside it prefixed
	// with the words that opened each enclosing block: prefix holds them, opened where each
	// block's own words start.
	var prefix []string
	var opened []int
	for i, line := range strings.Split(text, "\n") {
		if j := strings.Index(line, "#"); j >= 0 && (j == 0 || line[j-1] == ' ' || line[j-1] == '\t') {
			line = line[:j]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(opened) > 0 {
			if len(fields) == 1 && fields[0] == "}" {
				prefix, opened = prefix[:opened[len(opened)-1]], opened[:len(opened)-1]
				continue
			}
			fields = append(slices.Clone(prefix), fields...)
		}
		if fields[0] == "issuer" && len(fields) > 1 && fields[len(fields)-1] == "{" {
			opened = append(opened, len(prefix))
			prefix = fields[:len(fields)-1]
			if len(prefix) != 2 {
				continue
			}
			fields = prefix // "issuer ID {" trusts ID, even with an empty block
		}
		name, args := fields[0], fields[1:]
		d, ok := byName[name]
		if !ok {
			err := fmt.Errorf("%s line %d: unknown directive %q", src, i+1, name)
			if strings.Contains(line, `\n`) {
				err = fmt.Errorf("%w: the value holds a backslash and an n where a line break belongs; "+
					`directives need real line breaks: in a shell $'anonymous\ncors_origins *', in a compose file a "|" block, or a file given with --config`, err)
			}
			errs = append(errs, err)
			continue
		}
		if err := d.apply(c, args); err != nil {
			errs = append(errs, fmt.Errorf("%s line %d: %s: %w", src, i+1, name, err))
		}
	}
	if len(opened) > 0 {
		errs = append(errs, fmt.Errorf("%s: the block %q is not closed with }", src, strings.Join(prefix, " ")+" {"))
	}
	return errors.Join(errs...)
}
