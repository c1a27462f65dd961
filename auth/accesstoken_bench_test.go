package auth

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerifyCached compares a repeated token's cost on the two paths: a 0.x token through
// Verifier.Verify, a draft-08 one through Issuers.Verify (which reads iss before the cache).
func BenchmarkVerifyCached(b *testing.B) {
	v, err := NewVerifier(b.Context(), Config{Key: string(testHMACSecret)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	is, err := NewIssuers([]Issuer{{ID: testIssuer, Publisher: v, Subscriber: v}})
	if err != nil {
		b.Fatal(err)
	}
	old := signRaw(b, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256"}`, `{"exp":99999999999,"mercure":{"publish":["*"]}}`)
	at := signRaw(b, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`,
		accessClaims(`[{`+detailType+`,"actions":["publish"],"topics":[{"match":"*"}]}]`, ""))
	b.Run("0.x", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(old); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("draft-08", func(b *testing.B) {
		for b.Loop() {
			if _, err := is.Verify(at, RolePublisher, testResource); err != nil {
				b.Fatal(err)
			}
		}
	})
}
