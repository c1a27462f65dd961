package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxJWKSSize bounds a JWKS document; real ones are a few KiB.
const maxJWKSSize = 1 << 20

// jwksTiming holds the JWKS cache's clocks and periods. Tests shorten them.
type jwksTiming struct {
	refreshEvery time.Duration    // scheduled refresh period
	minGap       time.Duration    // least time between two fetches caused by unknown kids
	fetchTimeout time.Duration    // bound on one background or on-demand fetch
	now          func() time.Time // clock for the rate limit
}

func defaultJWKSTiming() jwksTiming {
	return jwksTiming{
		refreshEvery: time.Hour,
		minGap:       10 * time.Second,
		fetchTimeout: 30 * time.Second,
		now:          time.Now,
	}
}

// keySet is one parsed JWKS: the keys usable for the configured alg.
type keySet struct {
	byKID map[string]any // keys that have a kid
	count int            // usable keys, with or without kid
	only  any            // the key when count == 1, for tokens without kid
}

// jwksCache holds the current key set and, for http(s) URLs, refreshes it.
type jwksCache struct {
	url    *url.URL
	alg    string
	info   algInfo
	client *http.Client
	logger *slog.Logger
	timing jwksTiming
	remote bool // http(s): refreshable; file: read once

	mu  sync.RWMutex
	set keySet
	// gen counts key set replacements, so that tokens verified with an older set are checked
	// again (see verifiedCache).
	gen atomic.Uint64

	refreshMu   sync.Mutex // one fetch at a time; guards lastAttempt
	lastAttempt time.Time

	ctx       context.Context // lives until close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

func newJWKSCache(ctx context.Context, rawURL, alg string, info algInfo, client *http.Client, logger *slog.Logger, timing jwksTiming) (*jwksCache, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("invalid JWKS URL: %w", err)
	}
	c := &jwksCache{url: u, alg: alg, info: info, logger: logger, timing: timing}

	switch u.Scheme {
	case "file":
		if u.Opaque != "" || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("invalid JWKS URL %q: a file URL must look like file:///absolute/path", u.Redacted())
		}
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("invalid JWKS URL %q: no host", u.Redacted())
		}
		c.remote = true
		if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			logger.Warn("auth: JWKS is fetched over plain HTTP; anyone on the path can substitute keys", "url", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("invalid JWKS URL %q: scheme must be https, http or file", u.Redacted())
	}

	if c.remote {
		c.client = client
		if c.client == nil {
			// A client of our own: no keep-alive (one fetch an hour gains
			// nothing from it), so no idle connection outlives Close.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			c.client = &http.Client{Transport: tr, Timeout: timing.fetchTimeout}
		}
	}

	set, err := c.load(ctx)
	if err != nil {
		return nil, err
	}
	c.set = set
	c.gen.Add(1)
	if !c.remote {
		return c, nil
	}

	c.lastAttempt = timing.now()
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loop refreshes the set on schedule until close.
func (c *jwksCache) loop() {
	defer c.wg.Done()
	t := time.NewTicker(c.timing.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.refreshMu.Lock()
			c.lastAttempt = c.timing.now()
			c.refreshLocked("scheduled")
			c.refreshMu.Unlock()
		}
	}
}

// refreshLocked fetches the set and installs it; on failure the old keys
// stay. The caller holds refreshMu.
func (c *jwksCache) refreshLocked(reason string) {
	ctx, cancel := context.WithTimeout(c.ctx, c.timing.fetchTimeout)
	defer cancel()
	set, err := c.load(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.logger.Warn("auth: JWKS refresh failed; keeping the previous keys", "reason", reason, "url", c.url.Redacted(), "err", err)
		}
		return
	}
	c.mu.Lock()
	c.set = set
	c.gen.Add(1)
	c.mu.Unlock()
	c.logger.Debug("auth: JWKS refreshed", "reason", reason, "url", c.url.Redacted(), "keys", set.count)
}

func (c *jwksCache) current() keySet {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.set
}

// key returns the verification key for a token's kid. A token without kid is
// accepted only when the set holds a single usable key. An unknown kid
// triggers a rate-limited refresh of a remote set.
func (c *jwksCache) key(kid string, hasKID bool) (any, error) {
	if !hasKID || kid == "" {
		if k := c.current().only; k != nil {
			return k, nil
		}
		return nil, invalidf("token has no kid and the key set holds several keys")
	}
	if k, ok := c.current().byKID[kid]; ok {
		return k, nil
	}
	if c.remote {
		c.refreshForKID(kid)
		if k, ok := c.current().byKID[kid]; ok {
			return k, nil
		}
	}
	// The kid is not echoed: it is attacker-chosen text.
	return nil, invalidf("unknown key id")
}

// refreshForKID refreshes the set because a token named an unknown kid,
// unless another caller just did or the last attempt is too recent.
func (c *jwksCache) refreshForKID(kid string) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if _, ok := c.current().byKID[kid]; ok {
		return // a concurrent refresh brought it in
	}
	if c.ctx.Err() != nil {
		return // closed
	}
	now := c.timing.now()
	if now.Sub(c.lastAttempt) < c.timing.minGap {
		return
	}
	c.lastAttempt = now
	c.refreshLocked("unknown kid")
}

func (c *jwksCache) close() {
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		c.wg.Wait()
	})
}

// load reads and parses the set from its URL.
func (c *jwksCache) load(ctx context.Context) (keySet, error) {
	var body []byte
	var err error
	if c.remote {
		body, err = c.fetchHTTP(ctx)
	} else {
		body, err = c.readFile()
	}
	if err != nil {
		return keySet{}, err
	}
	set, err := parseJWKS(body, c.alg, c.info, c.logger)
	if err != nil {
		return keySet{}, fmt.Errorf("JWKS %s: %w", c.url.Redacted(), err)
	}
	return set, nil
}

func (c *jwksCache) fetchHTTP(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching JWKS %s: unexpected status %s", c.url.Redacted(), resp.Status)
	}
	return readBounded(resp.Body, "JWKS "+c.url.Redacted())
}

func (c *jwksCache) readFile() ([]byte, error) {
	f, err := os.Open(c.url.Path)
	if err != nil {
		return nil, fmt.Errorf("reading JWKS: %w", err)
	}
	defer f.Close()
	return readBounded(f, "JWKS file "+c.url.Path)
}

func readBounded(r io.Reader, what string) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", what, maxJWKSSize)
	}
	return body, nil
}

// parseJWKS keeps the keys of a JWK Set that can verify alg. Keys that
// cannot (another type or alg, "use" other than "sig", malformed, private)
// are skipped with a log line; a set left with no usable key is an error.
func parseJWKS(body []byte, alg string, info algInfo, logger *slog.Logger) (keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return keySet{}, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return keySet{}, errors.New(`not a JSON Web Key Set: no "keys" array`)
	}
	set := keySet{byKID: make(map[string]any)}
	for i, raw := range doc.Keys {
		kid, key, err := parseJWK(raw, alg, info)
		if err != nil {
			logger.Debug("auth: skipping JWK", "index", i, "kid", kid, "err", err)
			continue
		}
		if kid != "" {
			if _, dup := set.byKID[kid]; dup {
				logger.Warn("auth: JWKS has several keys with the same kid; keeping the first", "kid", kid)
				continue
			}
			set.byKID[kid] = key
		}
		set.count++
		set.only = key
	}
	if set.count == 0 {
		return keySet{}, fmt.Errorf("no key usable for %s", alg)
	}
	if set.count > 1 {
		set.only = nil
	}
	return set, nil
}

// jwk holds the JWK members we read (RFC 7517, 7518, 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"` // private part: its presence disqualifies the key
}

// parseJWK returns the key's kid and public key if it can verify alg.
func parseJWK(raw []byte, alg string, info algInfo) (string, any, error) {
	var j jwk
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", nil, fmt.Errorf("not a JWK object: %w", err)
	}
	if j.Use != "" && j.Use != "sig" {
		return j.Kid, nil, fmt.Errorf("use is %q, not sig", j.Use)
	}
	if j.Alg != "" && j.Alg != alg {
		return j.Kid, nil, fmt.Errorf("key is for %s, not %s", j.Alg, alg)
	}
	if j.D != "" {
		return j.Kid, nil, errors.New("key has private material; only public keys belong in a JWKS")
	}

	var key any
	var err error
	switch j.Kty {
	case "RSA":
		if info.family != familyRSA {
			return j.Kid, nil, fmt.Errorf("kty RSA cannot verify %s", alg)
		}
		key, err = rsaFromJWK(j)
	case "EC":
		if info.family != familyEC {
			return j.Kid, nil, fmt.Errorf("kty EC cannot verify %s", alg)
		}
		key, err = ecFromJWK(j, info)
	case "OKP":
		if info.family != familyEd25519 {
			return j.Kid, nil, fmt.Errorf("kty OKP cannot verify %s", alg)
		}
		key, err = ed25519FromJWK(j)
	default:
		return j.Kid, nil, fmt.Errorf("unsupported kty %q", j.Kty)
	}
	if err != nil {
		return j.Kid, nil, err
	}
	if err := checkKeyFits(alg, info, key); err != nil {
		return j.Kid, nil, err
	}
	return j.Kid, key, nil
}

func rsaFromJWK(j jwk) (*rsa.PublicKey, error) {
	n, err := b64(j.N, "n")
	if err != nil {
		return nil, err
	}
	e, err := b64(j.E, "e")
	if err != nil {
		return nil, err
	}
	e = bytes.TrimLeft(e, "\x00")
	if len(n) == 0 || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("RSA JWK has an empty modulus or an unusable exponent")
	}
	exp := 0
	for _, b := range e {
		exp = exp<<8 | int(b)
	}
	if exp < 3 || exp%2 == 0 || exp > 1<<31-1 {
		return nil, fmt.Errorf("RSA JWK exponent %d is not usable", exp)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}

func ecFromJWK(j jwk, info algInfo) (*ecdsa.PublicKey, error) {
	want := info.curve.Params().Name // "P-256", "P-384", "P-521": the JWK crv names
	if j.Crv != want {
		return nil, fmt.Errorf("EC JWK curve is %q, want %q", j.Crv, want)
	}
	x, err := b64(j.X, "x")
	if err != nil {
		return nil, err
	}
	y, err := b64(j.Y, "y")
	if err != nil {
		return nil, err
	}
	size := (info.curve.Params().BitSize + 7) / 8
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("EC JWK coordinates must be %d bytes each", size)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4) // uncompressed
	point = append(point, x...)
	point = append(point, y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(info.curve, point)
	if err != nil {
		return nil, fmt.Errorf("EC JWK: %w", err)
	}
	return pub, nil
}

func ed25519FromJWK(j jwk) (ed25519.PublicKey, error) {
	if j.Crv != "Ed25519" {
		return nil, fmt.Errorf("OKP JWK curve is %q, want \"Ed25519\"", j.Crv)
	}
	x, err := b64(j.X, "x")
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("Ed25519 JWK x must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// b64 decodes a base64url JWK member, tolerating padding.
func b64(s, member string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("JWK member %q is missing", member)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("JWK member %q is not base64url: %w", member, err)
	}
	return b, nil
}
