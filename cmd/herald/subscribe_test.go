package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSubscribeCommand(t *testing.T) {
	hubURL := startServe(t)
	ctx := context.Background()
	var stdout, stderr bytes.Buffer
	publish := func(args ...string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if c := run(ctx, append([]string{"publish", "--hub", hubURL}, args...), keyEnv, &out, &errOut); c != 0 {
			t.Fatalf("publish: exit %d: %s", c, errOut.String())
		}
	}
	publish("--topic", "https://example.com/books/1", "--data", "one\ntwo", "--id", "b1", "--type", "created")
	publish("--topic", "https://example.com/books/2", "--data", "private", "--id", "b2", "--private")

	// History, as text.
	if c := run(ctx, []string{"subscribe", "--hub", hubURL, "--topic", "https://example.com/books/{id}", "--last-event-id", "earliest", "--count", "2"}, keyEnv, &stdout, &stderr); c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	want := "event: created\nid: b1\ndata: one\ndata: two\n\nid: b2\ndata: private\n\n"
	if stdout.String() != want {
		t.Fatalf("stdout %q, want %q", stdout.String(), want)
	}

	// Live, as JSON, with the token in the cookie: publish until the subscriber has one.
	stdout.Reset()
	done := make(chan int, 1)
	var out syncBuffer
	go func() {
		done <- run(ctx, []string{"subscribe", "--hub", hubURL, "--topic", "live", "--count", "1", "--json", "--cookie", "--timeout", "10s"}, keyEnv, &out, &stderr)
	}()
	var code int
wait:
	for {
		publish("--topic", "live", "--data", "now")
		select {
		case code = <-done:
			break wait
		case <-time.After(50 * time.Millisecond):
		}
	}
	var ev struct{ ID, Type, Data string }
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &ev); code != 0 || err != nil || ev.Data != "now" || ev.ID == "" {
		t.Fatalf("exit %d, %v, stdout %q", code, err, out.String())
	}

	// Draft-08 matchers, with a draft-08 access token minted for them, sent in its cookie.
	for _, extra := range [][]string{nil, {"--cookie"}} {
		out = syncBuffer{}
		args := append([]string{"subscribe", "--hub", hubURL, "--match", "live08", "--match-urlpattern", "https://example.com/authors/:id", "--count", "2", "--json", "--timeout", "10s"}, extra...)
		go func() { done <- run(ctx, args, keyEnv, &out, &stderr) }()
	wait08:
		for {
			publish("--topic", "https://example.com/authors/7/books", "--data", "not matched")
			publish("--topic", "live08", "--data", "exact")
			publish("--topic", "https://example.com/authors/7", "--data", "pattern")
			select {
			case code = <-done:
				break wait08
			case <-time.After(50 * time.Millisecond):
			}
		}
		// The subscriber starts somewhere in a round of publishes: its two events are one of
		// each matcher, in either order, and never the unmatched topic's.
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var a, b struct{ Data string }
		if code != 0 || len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &a) != nil || json.Unmarshal([]byte(lines[1]), &b) != nil ||
			!(a.Data == "exact" && b.Data == "pattern" || a.Data == "pattern" && b.Data == "exact") {
			t.Fatalf("draft-08 %v: exit %d, stdout %q, stderr %q", extra, code, out.String(), stderr.String())
		}
	}

	// A refused subscription exits 1 with the hub's answer; --timeout ends a quiet one.
	stderr.Reset()
	if c := run(ctx, []string{"subscribe", "--hub", hubURL, "--topic", "x"}, noEnv, &stdout, &stderr); c != 1 || !strings.Contains(stderr.String(), "401") {
		t.Fatalf("anonymous: exit %d, stderr %q", c, stderr.String())
	}
	start := time.Now()
	if c := run(ctx, []string{"subscribe", "--hub", hubURL, "--topic", "quiet", "--timeout", "200ms"}, keyEnv, &stdout, &stderr); c != 0 || time.Since(start) > 5*time.Second {
		t.Fatalf("timeout: exit %d after %v", c, time.Since(start))
	}
}
