package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenLength is the longest token Verify accepts, in bytes. Longer input
// is refused before any decoding so an oversized token costs nothing.
const MaxTokenLength = 16 << 10

// Config says how to verify one kind of token (publisher or subscriber).
// The hub builds one Verifier per kind from it at start-up.
type Config struct {
	// Key is the HMAC secret for HS* (used as raw bytes), or a PEM public key
	// for RS*, PS*, ES* and EdDSA: a PKIX "PUBLIC KEY", an "RSA PUBLIC KEY"
	// (PKCS #1) or a "CERTIFICATE" whose public key is used. Ignored when
	// JWKSURL is set.
	Key string
	// Alg is the only algorithm tokens may be signed with: one of HS256
	// HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512
	// EdDSA. "" means HS256. It is matched exactly against each token's
	// header, which closes the door on "none" and on algorithm confusion.
	Alg string
	// JWKSURL, when set, replaces Key with a JSON Web Key Set. An http(s)://
	// set is fetched at start-up, refreshed hourly and when a token names an
	// unknown kid (at most once every 10 seconds), and keeps its last good
	// keys when a refresh fails. A file:// set is read once at start-up.
	// JWKS is only for asymmetric algorithms.
	JWKSURL string
	// HTTPClient fetches the JWKS. Nil means a client of the Verifier's
	// own with a 30-second timeout and no kept-alive connections (a fetch
	// an hour gains nothing from them), so nothing outlives Close.
	HTTPClient *http.Client
	// Logger receives start-up warnings and JWKS refresh problems. Nil
	// discards them.
	Logger *slog.Logger
	// Name says whose key this is ("publisher", "subscriber"), so that a
	// warning about it says which key to change. Empty means "JWT".
	Name string
}

// Verifier checks tokens against one Config. It is safe for concurrent use;
// create it with NewVerifier and release it with Close.
type Verifier struct {
	cache  verifiedCache
	alg    string
	parser *jwt.Parser
	key    any        // static key; nil when jwks is set
	jwks   *jwksCache // nil for a static key
}

// NewVerifier validates cfg and prepares a Verifier. Everything that can be
// checked without a token is checked here, so that a misconfigured hub
// fails at start-up with a clear message instead of refusing every request:
// unknown alg, "none", an empty key, a key of the wrong type or curve, an
// RSA key under 2048 bits, a PEM key given with an HS* alg, an unreachable
// JWKS or one with no key usable for Alg.
//
// ctx bounds the initial JWKS fetch only; the background refresh runs until
// Close, even after ctx is cancelled.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	return newVerifier(ctx, cfg, defaultJWKSTiming())
}

func newVerifier(ctx context.Context, cfg Config, timing jwksTiming) (*Verifier, error) {
	alg, info, err := lookupAlg(cfg.Alg)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		alg:    alg,
		parser: jwt.NewParser(jwt.WithValidMethods([]string{alg})),
	}

	if cfg.JWKSURL != "" {
		if info.family == familyHMAC {
			return nil, fmt.Errorf("auth: a JWKS URL needs an asymmetric alg (RS*, PS*, ES*, EdDSA), not %s", alg)
		}
		if cfg.Key != "" {
			logger.Warn("auth: both a key and a JWKS URL are configured; the key is ignored", "alg", alg)
		}
		c, err := newJWKSCache(ctx, cfg.JWKSURL, alg, info, cfg.HTTPClient, logger, timing)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		v.jwks = c
		return v, nil
	}

	key, err := parseStaticKey(alg, info, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if b, ok := key.([]byte); ok && len(b) < info.hmacMinLen {
		name := cfg.Name
		if name == "" {
			name = "JWT"
		}
		logger.Warn("auth: the "+name+" key is shorter than the hash size; use a longer random secret",
			"alg", alg, "bytes", len(b), "recommended", info.hmacMinLen)
	}
	v.key = key
	return v, nil
}

// Alg returns the one algorithm this Verifier accepts.
func (v *Verifier) Alg() string { return v.alg }

// Verify checks token's length, algorithm, signature, exp and nbf (no
// leeway; iat, aud and iss are ignored), then reads its Mercure claims. The
// error, if any, wraps ErrInvalidToken (and ErrExpired for an expired token);
// its text is a short reason fit for a 401 response body.
//
// Tokens that verified are remembered for a short while (see verifiedCache), so that a
// publisher or a reconnecting subscriber presenting the same token again costs a map lookup
// rather than a signature check; expiry is still checked every time. The returned Claims are
// shared: callers must not modify them.
func (v *Verifier) Verify(token string) (*Claims, error) {
	return v.verifyCached(token, Dialect0x, v.verify)
}

// verifyCached checks token's length, answers from the cache when it verified lately in
// dialect d (its expiry checked again), and otherwise verifies it with verify and remembers it.
func (v *Verifier) verifyCached(token string, d Dialect, verify func(string) (*Claims, error)) (*Claims, error) {
	if token == "" {
		return nil, invalidf("missing token")
	}
	if len(token) > MaxTokenLength {
		return nil, invalidf("token is too long (at most %d bytes)", MaxTokenLength)
	}
	gen := v.keyGen()
	if c, ok := v.cache.get(token, gen); ok && c.Dialect == d {
		if !c.ExpiresAt.IsZero() && !time.Now().Before(c.ExpiresAt) {
			return nil, &tokenError{reason: "token expired", kind: ErrExpired}
		}
		return c, nil
	}
	c, err := verify(token)
	if err == nil {
		v.cache.put(token, c, gen)
	}
	return c, err
}

// keyGen returns the generation of the keys in use: it changes when a JWKS refresh replaces
// them.
func (v *Verifier) keyGen() uint64 {
	if v.jwks == nil {
		return 0
	}
	return v.jwks.gen.Load()
}

// verify does the full check of Verify.
func (v *Verifier) verify(token string) (*Claims, error) {
	tc := &tokenClaims{}
	tok, err := v.parser.ParseWithClaims(token, tc, v.keyFunc)
	if err != nil {
		return nil, v.classify(tok, err)
	}
	if !tok.Valid {
		// ParseWithClaims sets Valid whenever it returns no error; refuse
		// rather than trust a library change.
		return nil, invalidf("invalid token")
	}
	if tc.raw == nil {
		// A "null" claim set decodes without calling UnmarshalJSON.
		return nil, invalidf("malformed token")
	}
	return tc.toClaims()
}

// Close stops the JWKS refresh goroutine, if any, and waits for it to
// exit. Verify keeps working afterwards with the keys already known, without
// refreshing them. Close is idempotent and always returns nil.
func (v *Verifier) Close() error {
	if v.jwks != nil {
		v.jwks.close()
	}
	return nil
}

// keyFunc hands jwt the key for a token whose alg already matched.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 §4.1.11: a token relying on extensions we do not
		// implement must be refused.
		return nil, invalidf("unsupported critical header")
	}
	if v.jwks == nil {
		return v.key, nil
	}
	var kid string
	hasKID := false
	if raw, ok := t.Header["kid"]; ok {
		s, isString := raw.(string)
		if !isString {
			return nil, invalidf("kid header must be a string")
		}
		kid, hasKID = s, true
	}
	return v.jwks.key(kid, hasKID)
}

// classify turns a jwt parse error into a tokenError with a short reason.
func (v *Verifier) classify(tok *jwt.Token, err error) error {
	var te *tokenError
	if errors.As(err, &te) {
		return te
	}
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return invalid("malformed token", err)
	}
	if tok != nil {
		if alg, _ := tok.Header["alg"].(string); alg != v.alg {
			return invalid(unexpectedAlg(alg, v.alg), err)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return &tokenError{reason: "token expired", kind: ErrExpired, cause: err}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid("token is not valid yet", err)
	default:
		return invalid("invalid token", err)
	}
}

// unexpectedAlg words an algorithm mismatch, echoing the token's alg only
// when it is short and plain so the reason stays safe to show.
func unexpectedAlg(got, want string) string {
	if got == "" {
		return fmt.Sprintf("token has no signing algorithm (want %s)", want)
	}
	if len(got) > 16 {
		return fmt.Sprintf("unexpected signing algorithm (want %s)", want)
	}
	for _, r := range got {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Sprintf("unexpected signing algorithm (want %s)", want)
		}
	}
	return fmt.Sprintf("unexpected signing algorithm %s (want %s)", got, want)
}
