package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/topic"
)

// checkVerifyResult holds for any input: an error is a short, one-line
// ErrInvalidToken rejection; success yields well-formed claims.
func checkVerifyResult(t *testing.T, claims *Claims, err error) {
	t.Helper()
	if err != nil {
		if claims != nil {
			t.Fatalf("claims %+v returned with error %q", claims, err)
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("error %q does not wrap ErrInvalidToken", err)
		}
		if msg := err.Error(); msg == "" || len(msg) > 200 || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("error text unfit for a response body: %q", msg)
		}
		return
	}
	if claims == nil {
		t.Fatal("nil claims without error")
	}
	if len(claims.Publish) > MaxSelectors || len(claims.Subscribe) > MaxSelectors {
		t.Fatalf("too many selectors: %d publish, %d subscribe", len(claims.Publish), len(claims.Subscribe))
	}
	if claims.HasPublish != (claims.Publish != nil) || claims.HasSubscribe != (claims.Subscribe != nil) {
		t.Fatalf("Has* flags disagree with the lists: %+v", claims)
	}
}

// FuzzVerify feeds arbitrary strings to Verify and to Issuers.Verify: they must never panic
// and must never accept a token they cannot have signed. The seed corpus is in
// testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	v, err := NewVerifier(f.Context(), Config{Key: string(testHMACSecret)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })

	f.Add("")
	f.Add("a.b.c")
	f.Add(signRaw(f, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `{"mercure":{"publish":["*"],"subscribe":["a"],"payload":{"x":1}}}`))
	f.Add(signRaw(f, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `{"exp":1,"nbf":"x"}`))
	f.Add(signRaw(f, nil, nil, `{"alg":"none"}`, `{}`))

	is, err := NewIssuers([]Issuer{{ID: "i", Publisher: v, Subscriber: v}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signRaw(f, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`, `{"iss":"i","aud":"h","exp":99999999999}`))
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		checkVerifyResult(t, claims, err)
		// The draft-08 path, which reads iss before the signature check, holds to the same.
		IsAccessToken(token)
		claims, err = is.Verify(token, RolePublisher, "h")
		checkVerifyResult(t, claims, err)
	})
}

// FuzzVerifyClaims signs arbitrary claim sets, so the fuzzer reaches the
// claim parser past the signature check.
func FuzzVerifyClaims(f *testing.F) {
	v, err := NewVerifier(f.Context(), Config{Key: string(testHMACSecret)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })

	for _, seed := range []string{
		`{}`,
		`null`,
		`{"mercure":{"publish":["a"],"subscribe":[],"payload":null}}`,
		`{"https://mercure.rocks/":{"subscribe":["*"]},"mercure":1}`,
		`{"mercure":{"publish":"x"}}`,
		`{"exp":1e300,"nbf":-1,"sub":"s"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		token := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"JWT"}`, string(payload))
		claims, err := v.Verify(token)
		checkVerifyResult(t, claims, err)
	})
}

// FuzzAccessTokenClaims signs arbitrary claim sets as draft-08 access tokens, so that the
// fuzzer reaches the authorization_details parser past the signature check: whatever the
// claims, the result is a short rejection or well-formed draft-08 claims within the limits.
// The seed corpus is in testdata/fuzz/FuzzAccessTokenClaims.
func FuzzAccessTokenClaims(f *testing.F) {
	v, err := NewVerifier(f.Context(), Config{Key: string(testHMACSecret)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })
	is, err := NewIssuers([]Issuer{{ID: "i", Publisher: v, Subscriber: v}})
	if err != nil {
		f.Fatal(err)
	}
	base := `"iss":"i","aud":"h","exp":99999999999`
	for _, seed := range []string{
		`{` + base + `}`,
		`{` + base + `,"authorization_details":[{"type":"https://mercure.rocks/authorization-detail","actions":["publish","subscribe"],"topics":[{"match":"*"},{"match":"https://e/:id","match_type":"urlpattern"}],"payload":{"a":1}}]}`,
		`{` + base + `,"authorization_details":[{"type":"other","topics":"x"},{"type":"https://mercure.rocks/authorization-detail","actions":["x"],"topics":[{"match":"a","match_type":"exact"}]}]}`,
		`{` + base + `,"authorization_details":[{"type":"https://mercure.rocks/authorization-detail","actions":[1],"topics":[null]}]}`,
		`{` + base + `,"authorization_details":{}}`,
		`{"iss":"i","aud":["h","g"],"exp":1e300,"nbf":-1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		token := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`, string(payload))
		claims, err := is.Verify(token, RoleSubscriber, "h")
		checkVerifyResult(t, claims, err)
		if err != nil {
			return
		}
		if claims.Dialect != DialectDraft08 || claims.Issuer != "i" || claims.ExpiresAt.IsZero() || claims.Payload != nil {
			t.Fatalf("claims %+v", claims)
		}
		for _, s := range append(slices.Clone(claims.Publish), claims.Subscribe...) {
			if s.Value == "" || len(s.Value) > MaxMatcherLength || (s.Type != topic.MatchExact && s.Type != topic.MatchURLPattern) {
				t.Fatalf("bad matcher %+v", s)
			}
		}
	})
}
