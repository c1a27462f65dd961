package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

// JWK builders. extra members (alg, use, ...) are merged in.

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey, extra map[string]any) map[string]any {
	return jwkWith(map[string]any{
		"kty": "RSA", "kid": kid,
		"n": b64u(pub.N.Bytes()), "e": b64u(big.NewInt(int64(pub.E)).Bytes()),
	}, extra)
}

func ecJWK(t *testing.T, kid string, pub *ecdsa.PublicKey, extra map[string]any) map[string]any {
	t.Helper()
	point, err := pub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	size := (len(point) - 1) / 2
	return jwkWith(map[string]any{
		"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": b64u(point[1 : 1+size]), "y": b64u(point[1+size:]),
	}, extra)
}

func edJWK(kid string, pub ed25519.PublicKey, extra map[string]any) map[string]any {
	return jwkWith(map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(pub)}, extra)
}

func jwkWith(m, extra map[string]any) map[string]any {
	for k, v := range extra {
		m[k] = v
	}
	if m["kid"] == "" {
		delete(m, "kid")
	}
	return m
}

// jwksServer serves a JWK Set that tests can change, on loopback.
type jwksServer struct {
	srv    *httptest.Server
	hits   atomic.Int32
	mu     sync.Mutex
	body   string
	status int
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.setKeys(t, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *jwksServer) url() string { return s.srv.URL + "/.well-known/jwks.json" }

func (s *jwksServer) setKeys(t *testing.T, keys ...map[string]any) {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	s.setBody(http.StatusOK, mustJSON(t, map[string]any{"keys": keys}))
}

func (s *jwksServer) setBody(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// fakeClock drives the unknown-kid rate limit.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func testTiming(clock *fakeClock) jwksTiming {
	return jwksTiming{refreshEvery: time.Hour, minGap: 10 * time.Second, fetchTimeout: 5 * time.Second, now: clock.Now}
}

func newJWKSVerifier(t *testing.T, cfg Config, timing jwksTiming) *Verifier {
	t.Helper()
	v, err := newVerifier(context.Background(), cfg, timing)
	if err != nil {
		t.Fatalf("newVerifier: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func TestJWKSEveryKeyType(t *testing.T) {
	rsaKey := testRSAKey()
	ec256, ec384, ec521 := newECKey(t, elliptic.P256()), newECKey(t, elliptic.P384()), newECKey(t, elliptic.P521())
	ed := newEdKey(t)
	tests := []struct {
		alg    string
		method jwt.SigningMethod
		key    any
		jwk    map[string]any
	}{
		{"RS256", jwt.SigningMethodRS256, rsaKey, rsaJWK("r", &rsaKey.PublicKey, map[string]any{"alg": "RS256", "use": "sig"})},
		{"RS512", jwt.SigningMethodRS512, rsaKey, rsaJWK("r", &rsaKey.PublicKey, nil)},
		{"PS256", jwt.SigningMethodPS256, rsaKey, rsaJWK("r", &rsaKey.PublicKey, map[string]any{"alg": "PS256"})},
		{"ES256", jwt.SigningMethodES256, ec256, ecJWK(t, "e", &ec256.PublicKey, map[string]any{"alg": "ES256"})},
		{"ES384", jwt.SigningMethodES384, ec384, ecJWK(t, "e", &ec384.PublicKey, nil)},
		{"ES512", jwt.SigningMethodES512, ec521, ecJWK(t, "e", &ec521.PublicKey, nil)},
		{"EdDSA", jwt.SigningMethodEdDSA, ed, edJWK("o", ed.Public().(ed25519.PublicKey), map[string]any{"alg": "EdDSA"})},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			srv := newJWKSServer(t, tc.jwk)
			v := newTestVerifier(t, Config{Alg: tc.alg, JWKSURL: srv.url(), HTTPClient: srv.srv.Client()})
			kid := tc.jwk["kid"].(string)
			claims := jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"x"}}}
			got, err := v.Verify(sign(t, tc.method, tc.key, claims, kid))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.HasSubscribe {
				t.Errorf("claims = %+v", got)
			}
			// Without kid, the single key is used.
			if _, err := v.Verify(sign(t, tc.method, tc.key, claims, "")); err != nil {
				t.Errorf("Verify(no kid): %v", err)
			}
		})
	}
}

func TestJWKSRefreshOnUnknownKID(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	srv := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey, nil))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	v := newJWKSVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client()}, testTiming(clock))
	tok1 := sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "k1")
	tok2 := sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "k2")

	wantHits := func(n int32) {
		t.Helper()
		if got := srv.hits.Load(); got != n {
			t.Fatalf("JWKS fetched %d times, want %d", got, n)
		}
	}
	wantHits(1) // at start-up

	if _, err := v.Verify(tok1); err != nil {
		t.Fatalf("Verify(k1): %v", err)
	}
	wantHits(1) // known kid: no fetch

	// The issuer rotates in k2. Right after start-up the refresh is
	// rate-limited, so k2 is still unknown.
	srv.setKeys(t, rsaJWK("k1", &k1.PublicKey, nil), rsaJWK("k2", &k2.PublicKey, nil))
	_, err := v.Verify(tok2)
	wantInvalid(t, err, "unknown key id")
	wantHits(1)

	clock.Advance(11 * time.Second)
	if _, err := v.Verify(tok2); err != nil {
		t.Fatalf("Verify(k2) after the gap: %v", err)
	}
	wantHits(2)

	// A flood of unknown kids costs at most one fetch per gap.
	for i := range 20 {
		_, err := v.Verify(sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "nope"+string(rune('a'+i))))
		wantInvalid(t, err, "unknown key id")
	}
	wantHits(2)
	clock.Advance(11 * time.Second)
	_, err = v.Verify(sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "nope"))
	wantInvalid(t, err, "unknown key id")
	wantHits(3)

	// A refresh replaces the set: a key the issuer removed stops working.
	srv.setKeys(t, rsaJWK("k2", &k2.PublicKey, nil))
	clock.Advance(11 * time.Second)
	_, _ = v.Verify(sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "k3"))
	wantHits(4)
	_, err = v.Verify(tok1)
	wantInvalid(t, err, "unknown key id")
	if _, err := v.Verify(tok2); err != nil {
		t.Errorf("Verify(k2): %v", err)
	}
}

func TestJWKSFailedRefreshKeepsKeys(t *testing.T) {
	k1 := testRSAKey()
	srv := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey, nil))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	logger, logs := bufferLogger()
	v := newJWKSVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client(), Logger: logger}, testTiming(clock))
	tok1 := sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "k1")

	for i, bad := range []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, "oops"},
		{http.StatusOK, "<html>not json</html>"},
		{http.StatusOK, `{"keys":[]}`},
		{http.StatusOK, `{"keys":[{"kty":"RSA","kid":"k9","n":"AQAB","e":"AQAB"}]}`},
		{http.StatusOK, `{"nokeys":true}`},
	} {
		srv.setBody(bad.status, bad.body)
		clock.Advance(11 * time.Second)
		_, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "unknown"))
		wantInvalid(t, err, "unknown key id")
		if got := srv.hits.Load(); got != int32(i+2) {
			t.Fatalf("case %d: JWKS fetched %d times, want %d", i, got, i+2)
		}
		if _, err := v.Verify(tok1); err != nil {
			t.Fatalf("case %d: the old key was dropped after a failed refresh: %v", i, err)
		}
	}
	if !strings.Contains(logs.String(), "JWKS refresh failed") {
		t.Errorf("failed refresh not logged: %q", logs.String())
	}
}

func TestJWKSScheduledRefresh(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	srv := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey, nil))
	timing := defaultJWKSTiming()
	timing.refreshEvery = 5 * time.Millisecond
	v := newJWKSVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url()}, timing) // default client
	srv.setKeys(t, rsaJWK("k1", &k1.PublicKey, nil), rsaJWK("k2", &k2.PublicKey, nil))

	// The scheduled refresh brings k2 in; the unknown-kid path is
	// rate-limited (10 s after start-up) so only the schedule can do it.
	deadline := time.Now().Add(10 * time.Second)
	for srv.hits.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled refresh: %d fetches", srv.hits.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "k2")); err != nil {
		t.Fatalf("Verify(k2): %v", err)
	}

	v.Close()
	// A fetch cancelled by Close may still reach the server a moment later; after that,
	// nothing more may come.
	time.Sleep(20 * time.Millisecond)
	after := srv.hits.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.hits.Load(); got != after {
		t.Errorf("JWKS fetched %d more times after Close", got-after)
	}
	// Keys known before Close still verify.
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "k1")); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
}

func TestJWKSCloseStopsGoroutines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	k1 := testRSAKey()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(mustJSON(t, map[string]any{"keys": []any{rsaJWK("k1", &k1.PublicKey, nil)}})))
	}))
	timing := defaultJWKSTiming()
	timing.refreshEvery = time.Millisecond
	v, err := newVerifier(context.Background(), Config{Alg: "RS256", JWKSURL: srv.URL}, timing)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let a few refreshes run
	if err := v.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	srv.Close()
	goleak.VerifyNone(t, ignore)
}

func TestJWKSStartupContextDoesNotStopRefresh(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	srv := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey, nil))
	timing := defaultJWKSTiming()
	timing.refreshEvery = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	v, err := newVerifier(ctx, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client()}, timing)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	srv.setKeys(t, rsaJWK("k2", &k2.PublicKey, nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "k2")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("refresh stopped when the start-up context was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWKSCancelledStartup(t *testing.T) {
	srv := newJWKSServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewVerifier(ctx, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client()})
	wantErrContains(t, err, "context canceled")
}

func TestJWKSConcurrentUnknownKID(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	srv := newJWKSServer(t, rsaJWK("k1", &k1.PublicKey, nil))
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	v := newJWKSVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client()}, testTiming(clock))
	srv.setKeys(t, rsaJWK("k1", &k1.PublicKey, nil), rsaJWK("k2", &k2.PublicKey, nil))
	clock.Advance(time.Minute)

	tok1 := sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "k1")
	tok2 := sign(t, jwt.SigningMethodRS256, k2, jwt.MapClaims{}, "k2")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			tok := tok2
			if i%2 == 0 {
				tok = tok1
			}
			if _, err := v.Verify(tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (start-up and one refresh)", got)
	}
}

func TestJWKSKeySelection(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	ed := newEdKey(t)
	edPub := ed.Public().(ed25519.PublicKey)
	tests := []struct {
		name   string
		keys   []map[string]any
		token  string
		reason string // "" means valid
	}{
		{
			name:  "kid picks the key",
			keys:  []map[string]any{rsaJWK("a", &k2.PublicKey, nil), rsaJWK("b", &k1.PublicKey, nil)},
			token: sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "b"),
		},
		{
			name:   "kid names the wrong key",
			keys:   []map[string]any{rsaJWK("a", &k2.PublicKey, nil), rsaJWK("b", &k1.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
			reason: "token signature is invalid",
		},
		{
			name:   "no kid with several keys",
			keys:   []map[string]any{rsaJWK("a", &k2.PublicKey, nil), rsaJWK("b", &k1.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, ""),
			reason: "token has no kid and the key set holds several keys",
		},
		{
			name:  "single key without kid",
			keys:  []map[string]any{rsaJWK("", &k1.PublicKey, nil)},
			token: sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, ""),
		},
		{
			name:   "kid of a wrong type",
			keys:   []map[string]any{rsaJWK("a", &k1.PublicKey, nil)},
			token:  signRaw(t, jwt.SigningMethodRS256, k1, `{"alg":"RS256","kid":7}`, `{}`),
			reason: "kid header must be a string",
		},
		{
			name:   "key for another alg is skipped",
			keys:   []map[string]any{rsaJWK("a", &k1.PublicKey, map[string]any{"alg": "RS384"}), rsaJWK("b", &k2.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
			reason: "unknown key id",
		},
		{
			name:   "encryption key is skipped",
			keys:   []map[string]any{rsaJWK("a", &k1.PublicKey, map[string]any{"use": "enc"}), rsaJWK("b", &k2.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
			reason: "unknown key id",
		},
		{
			name:   "private key is skipped",
			keys:   []map[string]any{rsaJWK("a", &k1.PublicKey, map[string]any{"d": b64u(k1.D.Bytes())}), rsaJWK("b", &k2.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
			reason: "unknown key id",
		},
		{
			name:   "key of another type is skipped",
			keys:   []map[string]any{edJWK("a", edPub, nil), rsaJWK("b", &k2.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
			reason: "unknown key id",
		},
		{
			name:  "duplicate kid keeps the first",
			keys:  []map[string]any{rsaJWK("a", &k1.PublicKey, nil), rsaJWK("a", &k2.PublicKey, nil)},
			token: sign(t, jwt.SigningMethodRS256, k1, jwt.MapClaims{}, "a"),
		},
		{
			name:   "HS256 token keyed with the JWK is refused",
			keys:   []map[string]any{rsaJWK("a", &k1.PublicKey, nil)},
			token:  sign(t, jwt.SigningMethodHS256, []byte(mustJSON(t, rsaJWK("a", &k1.PublicKey, nil))), jwt.MapClaims{}, "a"),
			reason: "unexpected signing algorithm HS256 (want RS256)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t, tc.keys...)
			v := newTestVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client()})
			_, err := v.Verify(tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantInvalid(t, err, tc.reason)
		})
	}
}

func TestJWKSFile(t *testing.T) {
	k1, k2 := testRSAKey(), otherRSAKey()
	path := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...map[string]any) {
		t.Helper()
		if err := os.WriteFile(path, []byte(mustJSON(t, map[string]any{"keys": keys})), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(rsaJWK("k1", &k1.PublicKey, nil))

	for _, u := range []string{"file://" + path, "file://localhost" + path} {
		v := newTestVerifier(t, Config{Alg: "PS256", JWKSURL: u})
		if _, err := v.Verify(sign(t, jwt.SigningMethodPS256, k1, jwt.MapClaims{}, "k1")); err != nil {
			t.Fatalf("Verify via %s: %v", u, err)
		}
	}

	// The file is read once: a key added later is not seen.
	v := newTestVerifier(t, Config{Alg: "PS256", JWKSURL: "file://" + path})
	write(rsaJWK("k1", &k1.PublicKey, nil), rsaJWK("k2", &k2.PublicKey, nil))
	_, err := v.Verify(sign(t, jwt.SigningMethodPS256, k2, jwt.MapClaims{}, "k2"))
	wantInvalid(t, err, "unknown key id")
	if err := v.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestNewVerifierJWKSErrors(t *testing.T) {
	k1 := testRSAKey()
	small := mustRSA(1024)
	ec := newECKey(t, elliptic.P256())
	tests := []struct {
		name   string
		status int
		body   string
		alg    string
		want   string
	}{
		{"not found", http.StatusNotFound, "", "RS256", "unexpected status 404 Not Found"},
		{"not JSON", http.StatusOK, "hello", "RS256", "not a JSON Web Key Set"},
		{"no keys member", http.StatusOK, `{"kty":"RSA"}`, "RS256", `no "keys" array`},
		{"empty set", http.StatusOK, `{"keys":[]}`, "RS256", "no key usable for RS256"},
		{"only keys for another alg", http.StatusOK, mustJSON(t, map[string]any{"keys": []any{rsaJWK("a", &k1.PublicKey, map[string]any{"alg": "PS256"})}}), "RS256", "no key usable for RS256"},
		{"only an EC key for RS256", http.StatusOK, mustJSON(t, map[string]any{"keys": []any{ecJWK(t, "a", &ec.PublicKey, nil)}}), "RS256", "no key usable for RS256"},
		{"only a P-256 key for ES384", http.StatusOK, mustJSON(t, map[string]any{"keys": []any{ecJWK(t, "a", &ec.PublicKey, nil)}}), "ES384", "no key usable for ES384"},
		{"only a weak RSA key", http.StatusOK, mustJSON(t, map[string]any{"keys": []any{rsaJWK("a", &small.PublicKey, nil)}}), "RS256", "no key usable for RS256"},
		{"too large", http.StatusOK, `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}`, "RS256", "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJWKSServer(t)
			srv.setBody(tc.status, tc.body)
			v, err := NewVerifier(context.Background(), Config{Alg: tc.alg, JWKSURL: srv.url(), HTTPClient: srv.srv.Client()})
			if err == nil {
				v.Close()
			}
			wantErrContains(t, err, tc.want)
		})
	}
}

func TestJWKSPlainHTTPWarning(t *testing.T) {
	srv := newJWKSServer(t, rsaJWK("k1", &testRSAKey().PublicKey, nil))
	logger, logs := bufferLogger()
	newTestVerifier(t, Config{Alg: "RS256", JWKSURL: srv.url(), HTTPClient: srv.srv.Client(), Logger: logger})
	if strings.Contains(logs.String(), "plain HTTP") {
		t.Errorf("warned about plain HTTP on loopback: %q", logs.String())
	}
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "example.com": false, "10.0.0.1": false} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseJWK(t *testing.T) {
	rsaKey := testRSAKey()
	ec := newECKey(t, elliptic.P256())
	ed := newEdKey(t).Public().(ed25519.PublicKey)
	good := map[string]map[string]any{
		"RS256": rsaJWK("k", &rsaKey.PublicKey, nil),
		"ES256": ecJWK(t, "k", &ec.PublicKey, nil),
		"EdDSA": edJWK("k", ed, nil),
	}
	edit := func(alg string, changes map[string]any) string {
		m := map[string]any{}
		for k, v := range good[alg] {
			m[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return mustJSON(t, m)
	}
	x := good["ES256"]["x"].(string)
	tests := []struct {
		name string
		alg  string
		jwk  string
		want string // "" means usable
	}{
		{"RSA", "RS256", edit("RS256", nil), ""},
		{"RSA padded base64", "RS256", edit("RS256", map[string]any{"n": base64.URLEncoding.EncodeToString(rsaKey.N.Bytes())}), ""},
		{"EC", "ES256", edit("ES256", nil), ""},
		{"OKP", "EdDSA", edit("EdDSA", nil), ""},
		{"use sig", "EdDSA", edit("EdDSA", map[string]any{"use": "sig"}), ""},
		{"not an object", "RS256", `[1]`, "not a JWK object"},
		{"unknown kty", "RS256", edit("RS256", map[string]any{"kty": "oct"}), `unsupported kty "oct"`},
		{"missing n", "RS256", edit("RS256", map[string]any{"n": nil}), `JWK member "n" is missing`},
		{"bad base64", "RS256", edit("RS256", map[string]any{"n": "***"}), `JWK member "n" is not base64url`},
		{"exponent 1", "RS256", edit("RS256", map[string]any{"e": "AQ"}), "exponent 1 is not usable"},
		{"even exponent", "RS256", edit("RS256", map[string]any{"e": "AAI"}), "exponent 2 is not usable"},
		{"huge exponent", "RS256", edit("RS256", map[string]any{"e": "AQAAAAAB"}), "unusable exponent"},
		{"EC wrong crv", "ES256", edit("ES256", map[string]any{"crv": "P-384"}), `curve is "P-384", want "P-256"`},
		{"EC short x", "ES256", edit("ES256", map[string]any{"x": x[:10]}), "must be 32 bytes"},
		{"EC off the curve", "ES256", edit("ES256", map[string]any{"y": x}), "EC JWK"},
		{"OKP wrong crv", "EdDSA", edit("EdDSA", map[string]any{"crv": "X25519"}), `curve is "X25519"`},
		{"OKP short x", "EdDSA", edit("EdDSA", map[string]any{"x": "AAAA"}), "must be 32 bytes"},
		{"private EC", "ES256", edit("ES256", map[string]any{"d": "AAAA"}), "private material"},
		{"use enc", "ES256", edit("ES256", map[string]any{"use": "enc"}), `use is "enc"`},
		{"alg mismatch", "ES256", edit("ES256", map[string]any{"alg": "ES384"}), "key is for ES384, not ES256"},
		{"RSA for EdDSA", "EdDSA", edit("RS256", nil), "kty RSA cannot verify EdDSA"},
		{"EC for RS256", "RS256", edit("ES256", nil), "kty EC cannot verify RS256"},
		{"OKP for ES256", "ES256", edit("EdDSA", nil), "kty OKP cannot verify ES256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			alg, info, err := lookupAlg(tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			_, key, err := parseJWK([]byte(tc.jwk), alg, info)
			if tc.want == "" {
				if err != nil || key == nil {
					t.Fatalf("parseJWK: %v", err)
				}
				return
			}
			wantErrContains(t, err, tc.want)
		})
	}
}
