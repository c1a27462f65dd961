package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A verified token is remembered, but its expiry still counts on every use.
func TestCachedTokenStillExpires(t *testing.T) {
	const key = "a-key-that-is-at-least-32-bytes-long!!"
	v, err := NewVerifier(context.Background(), Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	exp := time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp.Unix(), "mercure": map[string]any{"publish": []string{"*"}}}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(tok)
	if err != nil || second != first {
		t.Fatalf("second Verify: %v (cached: %v)", err, second == first)
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond)
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) || !errors.Is(err, ErrInvalidToken) || err.Error() != "token expired" {
		t.Fatalf("Verify after exp: %v", err)
	}
}
