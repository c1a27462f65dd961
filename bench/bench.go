// Package bench is a load generator for any Mercure-protocol hub: Herald, the reference hub,
// or the floor hub of bench/floorhub. It mints its own JWTs from an HMAC key (or uses the
// tokens given), so the same run measures any hub, and it checks correctness as it goes.
//
// Scenarios, each a function returning a result that tells whether the checks passed:
//
//   - Fanout: S subscribers over T topics (subscriber i listens to topic i mod T), U updates
//     from P publishers, optionally paced; delivered events/s and publish→receive latency
//     from a send timestamp carried in each update's data. Every subscriber must get every
//     update of its topic exactly once and, per publisher, in publication order.
//   - Idle: N subscriber connections opened and held: connections/s, and the resident memory
//     of a given hub process per connection (and after closing them).
//   - Catchup: M updates published, then one subscriber reads them all from history with
//     Last-Event-ID (or "earliest"): updates/s, none missing.
//   - Publish: C concurrent publishers, U updates: publishes/s and latency.
//   - Flood: clients holding many distinct URI templates beside ordinary subscribers of exact
//     topics, whose latency is measured with exact publishes only, then with updates of many
//     topics as well; every delivery is checked, the templates' included.
//   - Soak: for a duration, churning subscribers (exact, template and "*" selectors, with and
//     without private rights) reconnecting with Last-Event-ID, paced publishes and bursts of
//     connections; every delivery is checked, and the hub's memory, goroutines, open files
//     and store size are sampled and fail the run when they keep growing after a warm-up.
//
// Fanout, Idle and Flood can spread their subscribers over several worker processes (Options.Procs)
// when one process's open-file limit is too small; each worker re-executes the binary
// (`herald bench worker`) and reports its share as JSON, merged exactly by the parent.
//
// Command is the CLI (`herald bench`). Runs are bounded in time (Options.Timeout) and only
// target loopback hubs unless Options.AllowRemote is set.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/client"
)

// DefaultHub is the hub URL used when none is given.
const DefaultHub = "http://localhost:3000/.well-known/mercure"

// Defaults of Options' zero values.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultReconnectDelay = 100 * time.Millisecond
	DefaultConcurrency    = 128
	DefaultGrace          = 5 * time.Second
)

// Options are the settings every scenario shares.
type Options struct {
	// Hub is the hub's URL (its /.well-known/mercure endpoint). Default DefaultHub.
	Hub string
	// SubscribeHubs, when set, spreads the subscribers over these hub URLs (subscriber i on
	// SubscribeHubs[i mod n]) while publishers use Hub: nodes of one cluster.
	SubscribeHubs []string
	// Key is the HMAC key the bench signs its publisher JWT with, and its subscriber JWT
	// unless SubscriberKey is set. Alg is the HMAC algorithm, default HS256.
	Key, SubscriberKey, Alg string
	// Token and SubscriberToken are ready-made JWTs, used instead of minting: the publisher's
	// must allow publishing to any topic under the bench's prefix, the subscriber's (default:
	// Token) subscribing to them. A hub that allows anonymous subscribers needs none.
	Token, SubscriberToken string
	// Dialect is the protocol the subscribers and minted tokens speak: Dialect0x (the
	// default: topic= and mercure-claim JWTs) or Dialect08 (match= for exact topics, and
	// draft-08 access tokens issued by Issuer for the hub's resource identifier). Selectors
	// with a URI template keep topic= in either.
	Dialect string
	// Issuer is the iss of minted draft-08 access tokens; default DefaultIssuer.
	Issuer string
	// AllowRemote lets the bench target a host that is not loopback.
	AllowRemote bool
	// Insecure skips TLS certificate verification (a loopback hub with a self-signed one).
	Insecure bool
	// HTTP2 makes subscribers speak HTTP/2 (an https hub): Streams subscribers (default 1)
	// share each connection, as EventSources of one browser tab or page do. Publishers keep
	// HTTP/1.1.
	HTTP2   bool
	Streams int
	// Resume lets subscribers' TLS connections resume sessions from tickets the hub gave
	// earlier ones (one client session cache per process), as a returning browser does;
	// otherwise every connection makes a full handshake.
	Resume bool
	// Timeout bounds the whole run: past it, the run stops and reports what it saw.
	// Default DefaultTimeout.
	Timeout time.Duration
	// ReconnectDelay is the subscribers' reconnection delay (the hub's retry field replaces
	// it). Default DefaultReconnectDelay.
	ReconnectDelay time.Duration
	// Procs spreads subscribers (Fanout, Idle, Flood) over that many worker processes; 0 or 1
	// keeps them in this process.
	Procs int
	// WorkerCommand returns the command that starts one worker process, which must run
	// RunWorker on its standard input and output. Default: this executable with the
	// arguments "bench worker".
	WorkerCommand func() *exec.Cmd
	// Progress, when set, receives a progress line several times a second: a terminal.
	Progress io.Writer
	// Stderr receives the workers' standard error. Default os.Stderr.
	Stderr io.Writer
	// Prefix is the start of the topics the run uses; default a fresh
	// "https://bench.herald.invalid/RANDOM/", so that runs do not see each other's history.
	Prefix string
}

// Dialects of Options.Dialect.
const (
	Dialect0x = "0.x"
	Dialect08 = "draft-08"
)

// DefaultIssuer is the issuer a hub trusts, with its own keys, when none is configured.
const DefaultIssuer = "https://localhost"

// setup checks o, fills its defaults and returns the publisher and subscriber tokens.
func (o *Options) setup() (pubTok, subTok string, err error) {
	if o.Hub == "" {
		o.Hub = DefaultHub
	}
	switch o.Dialect {
	case "":
		o.Dialect = Dialect0x
	case Dialect0x, Dialect08:
	default:
		return "", "", fmt.Errorf("dialect %q: give %s or %s", o.Dialect, Dialect0x, Dialect08)
	}
	if o.Issuer == "" {
		o.Issuer = DefaultIssuer
	}
	if err := CheckHub(o.Hub, o.AllowRemote); err != nil {
		return "", "", err
	}
	for _, h := range o.SubscribeHubs {
		if err := CheckHub(h, o.AllowRemote); err != nil {
			return "", "", err
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ReconnectDelay <= 0 {
		o.ReconnectDelay = DefaultReconnectDelay
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Prefix == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		o.Prefix = "https://bench.herald.invalid/" + hex.EncodeToString(b) + "/"
	}
	ttl := o.Timeout + time.Hour
	mint := func(key string, publish, subscribe []string) (string, error) {
		if o.Dialect == Dialect08 {
			return MintAccessToken(key, o.Alg, o.Issuer, ResourceOf(o.Hub), publish, subscribe, ttl)
		}
		return Mint(key, o.Alg, publish, subscribe, ttl)
	}
	pubTok, subTok = o.Token, o.SubscriberToken
	if pubTok == "" && o.Key != "" {
		if pubTok, err = mint(o.Key, []string{"*"}, nil); err != nil {
			return "", "", err
		}
	}
	if subTok == "" {
		switch {
		case o.SubscriberKey != "":
			subTok, err = mint(o.SubscriberKey, nil, []string{"*"})
		case o.Key != "":
			subTok, err = mint(o.Key, nil, []string{"*"})
		default:
			subTok = o.Token
		}
		if err != nil {
			return "", "", err
		}
	}
	return pubTok, subTok, nil
}

// Mint signs a JWT with an HMAC key (alg HS256, HS384 or HS512; empty means HS256) carrying
// the mercure.publish and mercure.subscribe claims (nil leaves one out), valid for ttl.
func Mint(key, alg string, publish, subscribe []string, ttl time.Duration) (string, error) {
	if alg == "" {
		alg = "HS256"
	}
	method, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
	if !ok {
		return "", fmt.Errorf("the bench mints HMAC tokens only (HS256, HS384, HS512), not %q: give --token", alg)
	}
	m := map[string]any{}
	if publish != nil {
		m["publish"] = publish
	}
	if subscribe != nil {
		m["subscribe"] = subscribe
	}
	claims := jwt.MapClaims{"mercure": m}
	if ttl > 0 {
		claims["exp"] = time.Now().Add(ttl).Unix()
	}
	return jwt.NewWithClaims(method, claims).SignedString([]byte(key))
}

// MintAccessToken signs a draft-08 access token (RFC 9068, typ at+jwt) with an HMAC key, for
// the hub whose resource identifier is aud, issued by iss, valid for ttl: its
// authorization_details grant publish and subscribe on the exact topics given ("*" for all).
func MintAccessToken(key, alg, iss, aud string, publish, subscribe []string, ttl time.Duration) (string, error) {
	if alg == "" {
		alg = "HS256"
	}
	method, ok := jwt.GetSigningMethod(alg).(*jwt.SigningMethodHMAC)
	if !ok {
		return "", fmt.Errorf("the bench mints HMAC tokens only (HS256, HS384, HS512), not %q: give --token", alg)
	}
	var details []map[string]any
	for _, g := range []struct {
		action string
		topics []string
	}{{"publish", publish}, {"subscribe", subscribe}} {
		if g.topics == nil {
			continue
		}
		matchers := make([]map[string]string, len(g.topics))
		for i, t := range g.topics {
			matchers[i] = map[string]string{"match": t}
		}
		details = append(details, map[string]any{"type": "https://mercure.rocks/authorization-detail", "actions": []string{g.action}, "topics": matchers})
	}
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": "herald-bench", "exp": time.Now().Add(ttl).Unix(), "authorization_details": details,
	})
	tok.Header["typ"] = "at+jwt"
	return tok.SignedString([]byte(key))
}

// ResourceOf returns the resource identifier a hub at hubURL derives from requests to it when
// none is configured: the scheme and host of hubURL, and the hub's path, /.well-known/mercure
// (what the hub sees, whatever path a proxy in front of it serves).
func ResourceOf(hubURL string) string {
	u, err := url.Parse(hubURL)
	if err != nil {
		return hubURL
	}
	return u.Scheme + "://" + u.Host + "/.well-known/mercure"
}

// subscribeTo splits a subscriber's selectors into the parameters of the dialect: in
// Dialect08 exact topics become match= matchers, and selectors with a URI template (which
// draft-08 has no matcher for) or "*" stay topic= ones.
func subscribeTo(dialect string, selectors []string) ([]string, []client.Matcher) {
	if dialect != Dialect08 {
		return selectors, nil
	}
	var topics []string
	var matchers []client.Matcher
	for _, s := range selectors {
		if strings.Contains(s, "{") {
			topics = append(topics, s)
			continue
		}
		matchers = append(matchers, client.Matcher{Type: "exact", Value: s})
	}
	return topics, matchers
}

// CheckHub refuses a hub URL that is not http(s), or whose host is not loopback unless
// allowRemote: load tests must not hit other machines by accident.
func CheckHub(rawURL string, allowRemote bool) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("hub URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("hub URL %q: the scheme must be http or https", rawURL)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("hub URL %q has no host", rawURL)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("hub %s is not a loopback address: pass --allow-remote to load a remote hub", host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("hub host %s: %w", host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("hub %s resolves to %s, not loopback: pass --allow-remote to load a remote hub", host, a.IP)
		}
	}
	return nil
}

// NewTransport returns an http.Transport tuned for load: no limit of connections per host,
// idle connections kept for reuse, no compression, HTTP/1.1 only (every subscriber holds its
// own connection, as browsers' EventSources do over HTTP/1.1).
func NewTransport(maxIdlePerHost int, insecure bool) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:       0,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   max(maxIdlePerHost, 2),
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: insecure}, //nolint:gosec // opt-in, for loopback hubs
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
}

// ReadRSS returns the resident set size of process pid in KiB, from /proc/PID/status.
func ReadRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("reading the memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS line for process %d", pid)
}

// errTimeout is the problem recorded when Options.Timeout cut a run.
var errTimeout = errors.New("the run reached its timeout")
