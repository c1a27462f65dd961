package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServe runs `herald serve` in-process on a free loopback port with an in-memory log
// and the test key (and no metrics listener), and returns its endpoint; it stops at cleanup.
func startServe(t *testing.T, extra ...string) string {
	t.Helper()
	addr := freeAddr(t)
	runServe(t, keyEnv, append([]string{"--listen", addr, "--metrics-addr", "off", "--transport-url", "local://"}, extra...)...)
	waitUp(t, addr)
	return "http://" + addr + "/.well-known/mercure"
}

// runServe runs `herald serve` in-process with args and the environment getenv, and returns
// its log; it stops at cleanup, which fails the test unless it exits with 0.
func runServe(t *testing.T, getenv func(string) string, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"serve"}, args...), getenv, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("serve exited with %d:\n%s", c, stderr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})
	return &stderr
}

// keyEnv is an environment with the test key as MERCURE_PUBLISHER_JWT_KEY.
func keyEnv(k string) string {
	if k == "MERCURE_PUBLISHER_JWT_KEY" {
		return key
	}
	return ""
}

func noEnv(string) string { return "" }

func TestPublishCommand(t *testing.T) {
	hubURL := startServe(t)
	var stdout, stderr bytes.Buffer
	if c := run(context.Background(), []string{"publish", "--hub", hubURL, "--topic", "news", "--data", "hello", "--id", "n1", "--type", "t", "--retry", "10"}, keyEnv, &stdout, &stderr); c != 0 || stdout.String() != "n1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", c, stdout.String(), stderr.String())
	}
	// Data from a file, and an id chosen by the hub.
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if c := run(context.Background(), []string{"publish", "--hub", hubURL, "--topic", "news", "--data-file", f, "--private", "--key", key}, noEnv, &stdout, &stderr); c != 0 || !strings.HasPrefix(stdout.String(), "urn:uuid:") {
		t.Fatalf("exit %d, stdout %q, stderr %q", c, stdout.String(), stderr.String())
	}
	// With a draft-08 access token minted for the hub's URL by the default trusted issuer.
	stdout.Reset()
	if c := run(context.Background(), []string{"publish", "--hub", hubURL, "--topic", "news", "--data", "08", "--id", "d08", "--draft-08"}, keyEnv, &stdout, &stderr); c != 0 || stdout.String() != "d08\n" {
		t.Fatalf("--draft-08: exit %d, stdout %q, stderr %q", c, stdout.String(), stderr.String())
	}
	// Refusals: the hub's status and reason, exit 1.
	for _, tc := range []struct {
		args []string
		env  func(string) string
		want string
	}{
		{[]string{"--topic", "news", "--key", "a-wrong-key-that-is-at-least-32-bytes-long"}, noEnv, "401"},
		{[]string{"--topic", "news", "--id", "n1"}, keyEnv, "409"},
		{[]string{"--topic", "news"}, noEnv, "no JWT"},
		{[]string{"--topic", "news", "--draft-08", "--audience", "https://elsewhere.example/.well-known/mercure"}, keyEnv, "401"},
		{[]string{"--topic", "news", "--draft-08", "--issuer", "https://untrusted.example"}, keyEnv, "401"},
		{[]string{"--data", "x"}, keyEnv, "--topic"},
	} {
		stdout.Reset()
		stderr.Reset()
		if c := run(context.Background(), append([]string{"publish", "--hub", hubURL}, tc.args...), tc.env, &stdout, &stderr); c != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q", tc.args, c, stderr.String())
		}
	}
}
