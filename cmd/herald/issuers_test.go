package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestServeIssuers runs `herald serve` with an issuer that has a publisher key of its own and
// one that takes the top-level keys: each draft-08 token is accepted with its own issuer's key
// only, and the default issuer (https://localhost) is not trusted once issuers are configured.
func TestServeIssuers(t *testing.T) {
	const ownKey = "the-own-publisher-key-of-app.example-32-bytes"
	addr := freeAddr(t)
	hubURL := "http://" + addr + "/.well-known/mercure"
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "local://"}, func(k string) string {
			return map[string]string{
				"MERCURE_PUBLISHER_JWT_KEY": key,
				"MERCURE_TRUSTED_ISSUERS":   "https://shared.example",
				"MERCURE_EXTRA_DIRECTIVES":  "issuer https://app.example publisher jwt " + ownKey + " HS256",
			}[k]
		}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		select {
		case <-code:
		case <-time.After(15 * time.Second):
			t.Error("serve did not return")
		}
		if t.Failed() {
			t.Log(stderr.String())
		}
	}()
	waitUp(t, addr)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	mint08 := func(iss, k string) string {
		tok, err := mintToken(mintOptions{alg: "HS256", key: k, publish: []string{"*"}, ttl: time.Minute, issuer: iss, audience: []string{hubURL}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name, iss, key string
		code           int
	}{
		{"own key", "https://app.example", ownKey, http.StatusOK},
		{"top-level key for an issuer with its own", "https://app.example", key, http.StatusUnauthorized},
		{"issuer taking the top-level keys", "https://shared.example", key, http.StatusOK},
		{"default issuer no longer trusted", "https://localhost", key, http.StatusUnauthorized},
	} {
		if c, body := post(t, client, hubURL, mint08(tc.iss, tc.key), url.Values{"topic": {"t"}, "data": {"x"}}); c != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, c, body, tc.code)
		}
	}
	if c, body := post(t, client, hubURL, mint(t, []string{"*"}, nil), url.Values{"topic": {"t"}, "data": {"x"}}); c != http.StatusOK {
		t.Errorf("0.x token: %d %q", c, body)
	}
}
