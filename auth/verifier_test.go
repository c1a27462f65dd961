package auth

import (
	"context"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// algCase is one algorithm with a matching signing key, a second unrelated
// signing key, and the configured verification key.
type algCase struct {
	alg      string
	method   jwt.SigningMethod
	signKey  any
	otherKey any
	cfgKey   string
}

func algCases(t *testing.T) []algCase {
	t.Helper()
	rsaKey, rsaOther := testRSAKey(), otherRSAKey()
	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	cases := []algCase{
		{"HS256", jwt.SigningMethodHS256, testHMACSecret, otherHMACSecret, string(testHMACSecret)},
		{"HS384", jwt.SigningMethodHS384, testHMACSecret, otherHMACSecret, string(testHMACSecret)},
		{"HS512", jwt.SigningMethodHS512, testHMACSecret, otherHMACSecret, string(testHMACSecret)},
		{"RS256", jwt.SigningMethodRS256, rsaKey, rsaOther, rsaPEM},
		{"RS384", jwt.SigningMethodRS384, rsaKey, rsaOther, rsaPEM},
		{"RS512", jwt.SigningMethodRS512, rsaKey, rsaOther, rsaPEM},
		{"PS256", jwt.SigningMethodPS256, rsaKey, rsaOther, rsaPEM},
		{"PS384", jwt.SigningMethodPS384, rsaKey, rsaOther, rsaPEM},
		{"PS512", jwt.SigningMethodPS512, rsaKey, rsaOther, rsaPEM},
	}
	for _, ec := range []struct {
		alg    string
		method jwt.SigningMethod
		curve  elliptic.Curve
	}{
		{"ES256", jwt.SigningMethodES256, elliptic.P256()},
		{"ES384", jwt.SigningMethodES384, elliptic.P384()},
		{"ES512", jwt.SigningMethodES512, elliptic.P521()},
	} {
		k := newECKey(t, ec.curve)
		cases = append(cases, algCase{ec.alg, ec.method, k, newECKey(t, ec.curve), pemPublic(t, &k.PublicKey)})
	}
	ed := newEdKey(t)
	cases = append(cases, algCase{"EdDSA", jwt.SigningMethodEdDSA, ed, newEdKey(t), pemPublic(t, ed.Public())})
	return cases
}

func TestVerifyEveryAlgorithm(t *testing.T) {
	for _, tc := range algCases(t) {
		t.Run(tc.alg, func(t *testing.T) {
			v := newTestVerifier(t, Config{Alg: tc.alg, Key: tc.cfgKey})
			if v.Alg() != tc.alg {
				t.Errorf("Alg() = %q, want %q", v.Alg(), tc.alg)
			}
			claims := jwt.MapClaims{
				"sub":     "alice",
				"exp":     future(),
				"mercure": map[string]any{"publish": []string{"https://example.com/books/1"}},
			}

			got, err := v.Verify(sign(t, tc.method, tc.signKey, claims, ""))
			if err != nil {
				t.Fatalf("Verify(valid token): %v", err)
			}
			if got.Subject != "alice" || !got.HasPublish || len(got.Publish) != 1 || got.Publish[0].Value != "https://example.com/books/1" {
				t.Errorf("claims = %+v", got)
			}

			_, err = v.Verify(sign(t, tc.method, tc.otherKey, claims, ""))
			wantInvalid(t, err, "token signature is invalid")

			// Same signature, different payload.
			good := sign(t, tc.method, tc.signKey, claims, "")
			parts := strings.Split(good, ".")
			forged := sign(t, tc.method, tc.otherKey, jwt.MapClaims{"sub": "mallory"}, "")
			tampered := parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2]
			_, err = v.Verify(tampered)
			wantInvalid(t, err, "token signature is invalid")
		})
	}
}

func TestVerifyRejectsNone(t *testing.T) {
	v := hs256Verifier(t)
	unsigned := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "x"}, "")
	tests := []struct {
		name, token, reason string
	}{
		{"none from jwt", unsigned, "unexpected signing algorithm none (want HS256)"},
		{"None", signRaw(t, nil, nil, `{"alg":"None","typ":"JWT"}`, `{}`), "unexpected signing algorithm None (want HS256)"},
		{"NONE with an HMAC signature", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"NONE"}`, `{}`), "unexpected signing algorithm NONE (want HS256)"},
		{"none with an HMAC signature", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"none"}`, `{}`), "unexpected signing algorithm none (want HS256)"},
		{"no alg", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"typ":"JWT"}`, `{}`), "token has no signing algorithm (want HS256)"},
		{"alg not a string", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":256}`, `{}`), "token has no signing algorithm (want HS256)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.token)
			wantInvalid(t, err, tc.reason)
		})
	}
}

func TestVerifyRejectsAlgMismatch(t *testing.T) {
	rsaKey := testRSAKey()
	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	ec256 := newECKey(t, elliptic.P256())
	ec384 := newECKey(t, elliptic.P384())
	tests := []struct {
		name   string
		cfg    Config
		token  string
		reason string
	}{
		{"RS256 token, HS256 verifier", Config{Key: string(testHMACSecret)},
			sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{}, ""), "unexpected signing algorithm RS256 (want HS256)"},
		{"HS512 token, HS256 verifier", Config{Alg: "HS256", Key: string(testHMACSecret)},
			sign(t, jwt.SigningMethodHS512, testHMACSecret, jwt.MapClaims{}, ""), "unexpected signing algorithm HS512 (want HS256)"},
		{"PS256 token, RS256 verifier", Config{Alg: "RS256", Key: rsaPEM},
			sign(t, jwt.SigningMethodPS256, rsaKey, jwt.MapClaims{}, ""), "unexpected signing algorithm PS256 (want RS256)"},
		{"RS256 token, PS256 verifier", Config{Alg: "PS256", Key: rsaPEM},
			sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{}, ""), "unexpected signing algorithm RS256 (want PS256)"},
		{"ES384 token, ES256 verifier", Config{Alg: "ES256", Key: pemPublic(t, &ec256.PublicKey)},
			sign(t, jwt.SigningMethodES384, ec384, jwt.MapClaims{}, ""), "unexpected signing algorithm ES384 (want ES256)"},
		{"unknown alg", Config{Key: string(testHMACSecret)},
			signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS257"}`, `{}`), "unexpected signing algorithm HS257 (want HS256)"},
		{"long alg is not echoed", Config{Key: string(testHMACSecret)},
			signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"`+strings.Repeat("A", 40)+`"}`, `{}`), "unexpected signing algorithm (want HS256)"},
		{"odd alg is not echoed", Config{Key: string(testHMACSecret)},
			signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"<b>x</b>"}`, `{}`), "unexpected signing algorithm (want HS256)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, tc.cfg)
			_, err := v.Verify(tc.token)
			wantInvalid(t, err, tc.reason)
			if err.Error() != tc.reason {
				t.Errorf("reason = %q, want exactly %q", err, tc.reason)
			}
		})
	}
}

// An attacker who knows a public key signs an HS* token using the PEM text
// as the HMAC secret, hoping the verifier feeds the same text to HMAC.
func TestVerifyRejectsAlgorithmConfusion(t *testing.T) {
	rsaKey := testRSAKey()
	ec := newECKey(t, elliptic.P256())
	ed := newEdKey(t)
	tests := []struct {
		alg string
		pem string
	}{
		{"RS256", pemPublic(t, &rsaKey.PublicKey)},
		{"PS256", pemPublic(t, &rsaKey.PublicKey)},
		{"ES256", pemPublic(t, &ec.PublicKey)},
		{"EdDSA", pemPublic(t, ed.Public())},
	}
	for _, tc := range tests {
		t.Run(tc.alg, func(t *testing.T) {
			v := newTestVerifier(t, Config{Alg: tc.alg, Key: tc.pem})
			for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
				forged := sign(t, m, []byte(tc.pem), jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}, "")
				_, err := v.Verify(forged)
				wantInvalid(t, err, "unexpected signing algorithm "+m.Alg())
			}
		})
	}

	// The other way round: the public key configured as an HMAC secret
	// (alg forgotten) is refused at start-up.
	_, err := NewVerifier(context.Background(), Config{Key: tests[0].pem})
	wantErrContains(t, err, "looks like a PEM key but alg is HS256")
}

func TestVerifyTimeClaims(t *testing.T) {
	v := hs256Verifier(t)
	now := time.Now()
	tests := []struct {
		name    string
		claims  jwt.MapClaims
		reason  string // "" means valid
		expired bool
	}{
		{"no exp", jwt.MapClaims{}, "", false},
		{"exp in the future", jwt.MapClaims{"exp": future()}, "", false},
		{"exp an hour ago", jwt.MapClaims{"exp": past()}, "token expired", true},
		{"exp two seconds ago", jwt.MapClaims{"exp": now.Add(-2 * time.Second).Unix()}, "token expired", true},
		{"exp fractional past", jwt.MapClaims{"exp": float64(now.Add(-2*time.Second).UnixMilli()) / 1000}, "token expired", true},
		{"exp 0", jwt.MapClaims{"exp": 0}, "token expired", true},
		{"exp null", jwt.MapClaims{"exp": nil}, "", false},
		{"exp as string", jwt.MapClaims{"exp": "9999999999"}, "exp claim must be a number", false},
		{"exp huge", jwt.MapClaims{"exp": 1e300}, "exp claim is out of range", false},
		{"nbf in the future", jwt.MapClaims{"nbf": future()}, "token is not valid yet", false},
		{"nbf in the past", jwt.MapClaims{"nbf": past()}, "", false},
		{"nbf huge", jwt.MapClaims{"nbf": 1e300}, "nbf claim is out of range", false},
		{"nbf as object", jwt.MapClaims{"nbf": map[string]any{}}, "nbf claim must be a number", false},
		{"iat in the future is ignored", jwt.MapClaims{"iat": future()}, "", false},
		{"iat of a wrong type is ignored", jwt.MapClaims{"iat": "yesterday"}, "", false},
		{"aud and iss are ignored", jwt.MapClaims{"aud": 42, "iss": []int{1}}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(sign(t, jwt.SigningMethodHS256, testHMACSecret, tc.claims, ""))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if exp, ok := tc.claims["exp"].(int64); ok && !got.ExpiresAt.Equal(time.Unix(exp, 0)) {
					t.Errorf("ExpiresAt = %v, want %v", got.ExpiresAt, time.Unix(exp, 0))
				}
				if _, ok := tc.claims["exp"]; (!ok || tc.claims["exp"] == nil) && !got.ExpiresAt.IsZero() {
					t.Errorf("ExpiresAt = %v, want zero", got.ExpiresAt)
				}
				return
			}
			wantInvalid(t, err, tc.reason)
			if errors.Is(err, ErrExpired) != tc.expired {
				t.Errorf("errors.Is(%q, ErrExpired) = %v, want %v", err, !tc.expired, tc.expired)
			}
		})
	}
}

func TestVerifyExpiredErrorShape(t *testing.T) {
	v := hs256Verifier(t)
	_, err := v.Verify(sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{"exp": past()}, ""))
	if err == nil {
		t.Fatal("expired token accepted")
	}
	if err.Error() != "token expired" {
		t.Errorf("Error() = %q, want %q", err, "token expired")
	}
	for _, target := range []error{ErrExpired, ErrInvalidToken, jwt.ErrTokenExpired} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = false", target)
		}
	}
	if !errors.Is(ErrExpired, ErrInvalidToken) {
		t.Error("ErrExpired does not wrap ErrInvalidToken")
	}
}

func TestVerifyMalformed(t *testing.T) {
	v := hs256Verifier(t)
	good := sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{}, "")
	parts := strings.Split(good, ".")
	tests := []struct {
		name, token, reason string
	}{
		{"empty", "", "missing token"},
		{"one segment", "abc", "malformed token"},
		{"two segments", "abc.def", "malformed token"},
		{"four segments", good + ".x", "malformed token"},
		{"header not base64", "%%%." + parts[1] + "." + parts[2], "malformed token"},
		{"header not JSON", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":`, `{}`), "malformed token"},
		{"payload not JSON", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `nope`), "malformed token"},
		{"payload an array", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `[1]`), "malformed token"},
		{"payload null", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `null`), "malformed token"},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!!", "malformed token"},
		{"signature empty", parts[0] + "." + parts[1] + ".", "token signature is invalid"},
		{"too long", strings.Repeat("a", MaxTokenLength+1), "token is too long"},
		{"crit header", signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","crit":["exp"]}`, `{}`), "unsupported critical header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(tc.token)
			wantInvalid(t, err, tc.reason)
		})
	}

	// A token just under the bound is parsed (and here, valid).
	pad := strings.Repeat("x", MaxTokenLength-len(good)-200)
	long := sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{"pad": pad[:len(pad)*3/4]}, "")
	if len(long) > MaxTokenLength {
		t.Fatalf("test token is %d bytes, over the bound", len(long))
	}
	if _, err := v.Verify(long); err != nil {
		t.Errorf("Verify(%d-byte token): %v", len(long), err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	rsaKey := testRSAKey()
	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	smallRSA := mustRSA(1024)
	ec256 := newECKey(t, elliptic.P256())
	ed := newEdKey(t)
	privDER, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown alg", Config{Alg: "HS1024", Key: "k"}, `unknown alg "HS1024"`},
		{"lower-case alg", Config{Alg: "rs256", Key: rsaPEM}, `unknown alg "rs256"`},
		{"none", Config{Alg: "none", Key: "k"}, `alg "none" is never allowed`},
		{"NONE", Config{Alg: "NONE"}, `alg "none" is never allowed`},
		{"empty HMAC key", Config{}, "no key configured for HS256"},
		{"empty RSA key", Config{Alg: "RS256"}, "no key configured for RS256"},
		{"not PEM", Config{Alg: "RS256", Key: "hello"}, "key for RS256 is not PEM-encoded"},
		{"PEM garbage", Config{Alg: "RS256", Key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, "does not parse as its public key type"},
		{"private key", Config{Alg: "EdDSA", Key: privPEM}, "is a PRIVATE KEY: configure the public key"},
		{"EC key for RS256", Config{Alg: "RS256", Key: pemPublic(t, &ec256.PublicKey)}, "does not parse as its public key type"},
		{"RSA key for ES256", Config{Alg: "ES256", Key: rsaPEM}, "does not parse as its public key type"},
		{"RSA key for EdDSA", Config{Alg: "EdDSA", Key: rsaPEM}, "does not parse as its public key type"},
		{"Ed25519 key for ES256", Config{Alg: "ES256", Key: pemPublic(t, ed.Public())}, "does not parse as its public key type"},
		{"P-256 key for ES384", Config{Alg: "ES384", Key: pemPublic(t, &ec256.PublicKey)}, "ES384 needs a key on curve P-384, got P-256"},
		{"1024-bit RSA", Config{Alg: "RS256", Key: pemPublic(t, &smallRSA.PublicKey)}, "has 1024 bits; at least 2048 are required"},
		{"PEM as HMAC secret", Config{Alg: "HS512", Key: rsaPEM}, "looks like a PEM key but alg is HS512"},
		{"JWKS with HMAC", Config{JWKSURL: "https://example.invalid/jwks.json"}, "JWKS URL needs an asymmetric alg"},
		{"JWKS bad scheme", Config{Alg: "RS256", JWKSURL: "ftp://example.invalid/jwks.json"}, "scheme must be https, http or file"},
		{"JWKS relative file", Config{Alg: "RS256", JWKSURL: "file:jwks.json"}, "file:///absolute/path"},
		{"JWKS file on a host", Config{Alg: "RS256", JWKSURL: "file://server/jwks.json"}, "file:///absolute/path"},
		{"JWKS no host", Config{Alg: "RS256", JWKSURL: "https:///jwks.json"}, "no host"},
		{"JWKS missing file", Config{Alg: "RS256", JWKSURL: "file://" + t.TempDir() + "/missing.json"}, "reading JWKS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(context.Background(), tc.cfg)
			if err == nil {
				v.Close()
			}
			wantErrContains(t, err, tc.want)
			if err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
		})
	}
}

func TestNewVerifierKeyForms(t *testing.T) {
	rsaKey := testRSAKey()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)}))
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, &rsaKey.PublicKey, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))

	for name, key := range map[string]string{
		"PKIX":        pemPublic(t, &rsaKey.PublicKey),
		"PKCS1":       pkcs1,
		"certificate": cert,
		"with text":   "my key:\n" + pemPublic(t, &rsaKey.PublicKey),
	} {
		t.Run(name, func(t *testing.T) {
			v := newTestVerifier(t, Config{Alg: "RS256", Key: key})
			if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{}, "")); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestNewVerifierWarnsOnShortHMACKey(t *testing.T) {
	logger, buf := bufferLogger()
	v := newTestVerifier(t, Config{Key: "short", Logger: logger})
	if !strings.Contains(buf.String(), "the JWT key is shorter than the hash size") {
		t.Errorf("no warning logged; log: %q", buf.String())
	}
	// Named, the warning says which key to change.
	named, namedBuf := bufferLogger()
	newTestVerifier(t, Config{Key: "short", Logger: named, Name: "publisher"})
	if !strings.Contains(namedBuf.String(), "the publisher key is shorter than the hash size") {
		t.Errorf("the warning does not name the key; log: %q", namedBuf.String())
	}
	// A short key still works: the warning is advice, not a refusal.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, []byte("short"), jwt.MapClaims{}, "")); err != nil {
		t.Errorf("Verify: %v", err)
	}

	logger, buf = bufferLogger()
	newTestVerifier(t, Config{Key: string(testHMACSecret), Logger: logger})
	if buf.String() != "" {
		t.Errorf("unexpected log for a 64-byte key: %q", buf.String())
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := hs256Verifier(t)
	token := sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"*"}}}, "")
	done := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for range 50 {
				if _, err = v.Verify(token); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
