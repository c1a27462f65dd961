package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhub/herald/bench/floorhub"
)

// TestBenchCommand runs small scenarios against a real `herald serve`: exit 0 and a table.
func TestBenchCommand(t *testing.T) {
	hubURL := startServe(t)
	for _, args := range [][]string{
		{"fanout", "--subscribers", "20", "--topics", "2", "--updates", "50", "--publishers", "2"},
		{"catchup", "--updates", "100"},
		{"publish", "--updates", "50", "--publishers", "2"},
		{"idle", "--connections", "10", "--hold", "100ms"},
	} {
		var stdout, stderr bytes.Buffer
		if c := run(context.Background(), append([]string{"bench"}, append(args, "--hub", hubURL)...), keyEnv, &stdout, &stderr); c != 0 {
			t.Fatalf("%q: exit %d\n%s\n%s", args, c, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "OK: ") {
			t.Fatalf("%q: table\n%s", args, stdout.String())
		}
	}
}

// TestBenchCommandFails: a catch-up from the floor hub, which keeps no history, fails its
// check: exit 1 with the reason.
func TestBenchCommandFails(t *testing.T) {
	h := floorhub.New()
	ts := httptest.NewServer(h)
	defer ts.Close()
	defer h.Close()
	var stdout, stderr bytes.Buffer
	c := run(context.Background(), []string{"bench", "catchup", "--hub", ts.URL + floorhub.Path, "--updates", "5", "--grace", "200ms"}, noEnv, &stdout, &stderr)
	if c != 1 || !strings.Contains(stderr.String(), "lost 5") || !strings.Contains(stdout.String(), "FAILED") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", c, stdout.String(), stderr.String())
	}
	// Remote hubs are refused.
	stderr.Reset()
	if c := run(context.Background(), []string{"bench", "publish", "--hub", "http://192.0.2.1/.well-known/mercure", "--key", key}, noEnv, &stdout, &stderr); c != 1 || !strings.Contains(stderr.String(), "--allow-remote") {
		t.Fatalf("remote: exit %d, %s", c, stderr.String())
	}
}
