package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/sse"
	"github.com/heraldhub/herald/topic"
)

// Two certmagic goroutines outlive a hub: the one refreshing a storage lock file notices the
// release only at its next refresh, seconds later, then ends; and the rate limiter of each ACME
// account is kept, process-wide, for the life of the process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
		goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.(*RingBufferRateLimiter).loop"))
}

const key = "a-key-that-is-at-least-32-bytes-long!!"

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running command.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address that was free a moment ago, and never one it returned
// before in this process: the kernel may hand a port just released to the next listener, and
// two addresses of one test (the hub's and a server the test starts) would then collide.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		givenMu.Lock()
		fresh := !given[addr]
		given[addr] = true
		givenMu.Unlock()
		if fresh {
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out before")
	return ""
}

// given holds the addresses freeAddr returned.
var (
	givenMu sync.Mutex
	given   = map[string]bool{}
)

func waitUp(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub did not listen on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mint(t *testing.T, publish, subscribe []string) string {
	t.Helper()
	tok, err := mintToken(mintOptions{alg: "HS256", key: key, publish: publish, subscribe: subscribe, ttl: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func post(t *testing.T, client *http.Client, hubURL, tok string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// subscribeNews opens a subscription to the topic news with a token allowed to read it; the
// stream is closed at cleanup.
func subscribeNews(t *testing.T, client *http.Client, hubURL string) *http.Response {
	t.Helper()
	return subscribeTopic(t, client, hubURL, "news")
}

// subscribeTopic opens a subscription to topic with a token allowed to read it; the response
// is closed at cleanup.
func subscribeTopic(t *testing.T, client *http.Client, hubURL, topic string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, hubURL+"?topic="+url.QueryEscape(topic), nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, nil, []string{topic}))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	return resp
}

// TestServeAndGracefulShutdown runs `herald serve` in-process: publish, subscribe, then stop
// it: the stream ends cleanly, with what was published before the stop delivered, and serve
// returns exit code 0.
func TestServeAndGracefulShutdown(t *testing.T) {
	addr, opsAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--listen", addr, "--metrics-addr", opsAddr, "--transport-url", "local://"}, func(k string) string {
			if k == "MERCURE_PUBLISHER_JWT_KEY" {
				return key
			}
			return ""
		}, &stdout, &stderr)
	}()
	waitUp(t, addr)
	hubURL := "http://" + addr + "/.well-known/mercure"
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	resp := subscribeNews(t, client, hubURL)
	if c, body := post(t, client, hubURL, mint(t, []string{"news"}, nil), url.Values{"topic": {"news"}, "data": {"hello"}, "id": {"n1"}}); c != 200 || body != "n1" {
		t.Fatalf("publish: %d %q", c, body)
	}
	br := bufio.NewReader(resp.Body)
	want := ":\nid: n1\ndata: hello\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("stream %q, %v", got, err)
	}

	// The operations endpoints, on their own address.
	for path, want := range map[string]string{
		"/healthz": "ok\n",
		"/readyz":  "ready\n",
		"/metrics": "herald_updates_published_total{visibility=\"public\"} 1\n",
	} {
		resp, err := client.Get("http://" + opsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, body lacks %q:\n%.2000s", path, resp.StatusCode, want, b)
		}
	}
	resp2, err := client.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{"herald_subscribers 1", `herald_subscriptions{kind="exact"} 1`, "herald_events_delivered_total 1", "herald_transport_lag 0", "herald_subscriber_connections_total 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel() // as SIGINT/SIGTERM do
	rest, err := io.ReadAll(br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("after shutdown the stream gave %q, %v; want a clean end", rest, err)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; stderr:\n%s", c, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not return")
	}
	for _, line := range []string{"herald started", "shutting down", "herald stopped"} {
		if !strings.Contains(stderr.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, stderr.String())
		}
	}
}

// TestDevMode checks that --dev prints a token that works, and lets anonymous clients in.
func TestDevMode(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"serve", "--dev", "--listen", addr, "--metrics-addr", "off", "--transport-url", "memory://?size=10"}, func(string) string { return "" }, &stdout, &stderr)
	}()
	defer func() { cancel(); <-code }()
	waitUp(t, addr)
	var tok []string
	for deadline := time.Now().Add(5 * time.Second); tok == nil; time.Sleep(10 * time.Millisecond) {
		tok = regexp.MustCompile(`Bearer ([A-Za-z0-9_.-]+)`).FindStringSubmatch(stdout.String())
		if tok == nil && time.Now().After(deadline) {
			t.Fatalf("no token printed:\n%s", stdout.String())
		}
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	hubURL := "http://" + addr + "/.well-known/mercure"
	resp, err := client.Get(hubURL + "?topic=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("anonymous subscribe: %d", resp.StatusCode)
	}
	if c, body := post(t, client, hubURL, tok[1], url.Values{"topic": {"x"}}); c != http.StatusOK {
		t.Fatalf("publish with the printed token: %d %s", c, body)
	}
	// Dev mode serves the UI, its demo and its token button, and the subscriptions API.
	for _, path := range []string{"/ui/", "/ui/demo/", "/ui/token?publish=*"} {
		resp, err := client.Get(hubURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	// The UI's draft-08 access token: for the default issuer, the audience the page asks for;
	// the hub takes it.
	resp, err = client.Get(hubURL + "/ui/token?kind=access&publish=*&subscribe_urlpattern=/x/:id&audience=" + url.QueryEscape(hubURL))
	if err != nil {
		t.Fatal(err)
	}
	access, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("minting an access token in the UI: %d %s", resp.StatusCode, access)
	}
	if c, body := post(t, client, hubURL, string(access), url.Values{"topic": {"x"}}); c != http.StatusOK {
		t.Errorf("publish with the UI's access token: %d %s", c, body)
	}
	req, _ := http.NewRequest(http.MethodGet, hubURL+"/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("subscriptions API in dev mode: %d", resp.StatusCode)
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := run(context.Background(), []string{"serve", "--transport-url", "kafka://x"}, func(k string) string {
		return map[string]string{"MERCURE_PUBLISHER_JWT_KEY": key, "MERCURE_EXTRA_DIRECTIVES": "ui\nfrobnicate"}[k]
	}, &stdout, &stderr)
	if c != 1 || !strings.Contains(stderr.String(), `unknown directive "frobnicate"`) {
		t.Fatalf("exit %d, stderr %q", c, stderr.String())
	}
	stderr.Reset()
	c = run(context.Background(), []string{"serve", "--transport-url", "kafka://x", "--listen", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"MERCURE_PUBLISHER_JWT_KEY": key}[k]
	}, &stdout, &stderr)
	if c != 1 || !strings.Contains(stderr.String(), `unknown scheme "kafka"`) {
		t.Fatalf("exit %d, stderr %q", c, stderr.String())
	}
	stderr.Reset()
	db := filepath.Join(t.TempDir(), "h.db")
	c = run(context.Background(), []string{"serve", "--transport-url", "bolt://" + db + "?sync_interval=1s", "--sync-interval", "1s", "--listen", "127.0.0.1:0"}, func(k string) string {
		return map[string]string{"MERCURE_PUBLISHER_JWT_KEY": key}[k]
	}, &stdout, &stderr)
	if c != 1 || !strings.Contains(stderr.String(), "sync_interval is given both as a directive and in the URL") {
		t.Fatalf("exit %d, stderr %q", c, stderr.String())
	}
}

func TestTokenCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := run(context.Background(), []string{"token", "--publish", "https://example.com/{id}", "--subscribe", "*", "--key", key, "--payload", `{"user":1}`, "--ttl", "1m"}, func(string) string { return "" }, &stdout, &stderr)
	if c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	claims, err := v.Verify(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(claims.Publish) != 1 || claims.Publish[0].Value != "https://example.com/{id}" || len(claims.Subscribe) != 1 || string(claims.Payload) != `{"user":1}` {
		t.Fatalf("claims %+v", claims)
	}
	if d := time.Until(claims.ExpiresAt); d < 50*time.Second || d > time.Minute {
		t.Fatalf("expires in %v", d)
	}
}

// TestTokenCommandDraft08: with --issuer and --audience, herald token mints a draft-08 access
// token that the hub's issuers accept, its grants in authorization_details.
func TestTokenCommandDraft08(t *testing.T) {
	var stdout, stderr bytes.Buffer
	args := []string{"token", "--issuer", "https://app.example", "--audience", "https://hub.example/.well-known/mercure",
		"--publish", "*", "--subscribe", "https://example.com/a", "--subscribe-urlpattern", "https://example.com/books/:id",
		"--payload", `{"user":1}`, "--key", key, "--ttl", "1m"}
	if c := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	v, err := auth.NewVerifier(context.Background(), auth.Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	is, err := auth.NewIssuers([]auth.Issuer{{ID: "https://app.example", Publisher: v, Subscriber: v}})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := is.Verify(strings.TrimSpace(stdout.String()), auth.RoleSubscriber, "https://hub.example/.well-known/mercure")
	if err != nil {
		t.Fatal(err)
	}
	wantSub := []topic.Spec{{Type: topic.MatchExact, Value: "https://example.com/a"}, {Type: topic.MatchURLPattern, Value: "https://example.com/books/:id"}}
	if !slices.Equal(claims.Publish, []topic.Spec{{Type: topic.MatchExact, Value: "*"}}) || !slices.Equal(claims.Subscribe, wantSub) ||
		len(claims.SubscribeDetails) != 1 || string(claims.SubscribeDetails[0].Payload) != `{"user":1}` || claims.Subject != "https://app.example" {
		t.Fatalf("claims %+v", claims)
	}
	if d := time.Until(claims.ExpiresAt); d < 50*time.Second || d > time.Minute {
		t.Fatalf("expires in %v", d)
	}
	for _, bad := range [][]string{
		{"token", "--issuer", "i", "--publish", "*", "--key", key},
		{"token", "--issuer", "i", "--audience", "a", "--publish", "*", "--key", key, "--ttl", "0"},
		{"token", "--publish-urlpattern", "x", "--key", key},
		{"token", "--issuer", "i", "--audience", "a", "--subscribe", "*", "--payload", "[1]", "--key", key},
	} {
		stderr.Reset()
		if c := run(context.Background(), bad, func(string) string { return "" }, &stdout, &stderr); c == 0 {
			t.Errorf("%q: exit 0", bad)
		}
	}
}

// TestSIGTERM builds the real binary and stops it with SIGTERM: exit status 0.
func TestSIGTERM(t *testing.T) {
	bin := buildHerald(t)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "bolt://"+filepath.Join(t.TempDir(), "h.db"))
	cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+key)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitUp(t, addr)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("herald did not stop on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "herald stopped") {
		t.Fatalf("log:\n%s", stderr.String())
	}
}

// TestRestartKeepsHistory stops a hub on the default (bolt) transport and starts another on
// the same file: a client reconnecting with Last-Event-ID gets every later update once.
func TestRestartKeepsHistory(t *testing.T) {
	db := filepath.Join(t.TempDir(), "herald.db")
	start := func() (string, func()) {
		addr := freeAddr(t)
		ctx, cancel := context.WithCancel(context.Background())
		var stderr syncBuffer
		code := make(chan int, 1)
		go func() {
			code <- run(ctx, []string{"serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "bolt://" + db}, func(k string) string {
				if k == "MERCURE_PUBLISHER_JWT_KEY" {
					return key
				}
				return ""
			}, io.Discard, &stderr)
		}()
		waitUp(t, addr)
		return "http://" + addr + "/.well-known/mercure", func() {
			cancel()
			if c := <-code; c != 0 {
				t.Fatalf("exit %d: %s", c, stderr.String())
			}
		}
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	pub := mint(t, []string{"*"}, nil)

	hubURL, stop := start()
	for i := range 50 {
		id := fmt.Sprintf("r%02d", i)
		if c, body := post(t, client, hubURL, pub, url.Values{"topic": {"t"}, "id": {id}, "data": {id}}); c != 200 {
			t.Fatalf("publish %s: %d %s", id, c, body)
		}
	}
	stop()
	client.CloseIdleConnections()

	hubURL, stop = start()
	defer stop()
	req, _ := http.NewRequest(http.MethodGet, hubURL+"?topic=t", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, nil, []string{"*"}))
	req.Header.Set("Last-Event-ID", "r24")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Last-Event-ID") != "r24" {
		t.Fatalf("Last-Event-ID header %q", resp.Header.Get("Last-Event-ID"))
	}
	if c, _ := post(t, client, hubURL, pub, url.Values{"topic": {"t"}, "id": {"r50"}, "data": {"r50"}}); c != 200 {
		t.Fatalf("publish r50: %d", c)
	}
	var want strings.Builder
	want.WriteString(":\n")
	for i := 25; i <= 50; i++ {
		fmt.Fprintf(&want, "id: r%02d\ndata: r%02d\n\n", i, i)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want.String() {
		t.Fatalf("after the restart the stream gave %q, %v; want %q", got, err, want.String())
	}
}

// TestKillKeepsAcknowledged kills the real binary (SIGKILL) while 16 publishers are publishing
// on the default bolt store, then starts it again on the same file: every publish that got its
// 200 is in the history exactly once, those the bbolt applier had not committed yet replayed
// from the write-ahead log. With a sync interval longer than the test, the log was never
// synced: what the process wrote to it survives in the page cache all the same.
func TestKillKeepsAcknowledged(t *testing.T) {
	bin := buildHerald(t)
	t.Run("sync before acknowledging", func(t *testing.T) { killKeepsAcknowledged(t, bin) })
	t.Run("sync_interval 1m", func(t *testing.T) { killKeepsAcknowledged(t, bin, "--sync-interval", "1m") })
}

func killKeepsAcknowledged(t *testing.T, bin string, args ...string) {
	db := filepath.Join(t.TempDir(), "herald.db")
	start := func() (*exec.Cmd, string, *syncBuffer) {
		addr := freeAddr(t)
		cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "bolt://" + db}, args...)...)
		cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+key)
		stderr := &syncBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitUp(t, addr)
		return cmd, "http://" + addr + "/.well-known/mercure", stderr
	}

	cmd, hubURL, _ := start()
	pub := mint(t, []string{"*"}, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
		stop  atomic.Bool
	)
	for p := range 16 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("k-%d-%d", p, i)
				form := url.Values{"topic": {"t"}, "id": {id}, "data": {id}}
				req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer "+pub)
				resp, err := client.Do(req)
				if err != nil {
					return // the hub was killed
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}
		})
	}
	// Kill once a good part of the history can only be in the write-ahead log: the applier
	// waits up to 50 ms or 1024 updates before committing to bbolt.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stop.Store(true)
	wg.Wait()
	client.CloseIdleConnections()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	if want < 100 {
		t.Fatalf("only %d publishes acknowledged before the kill", want)
	}

	cmd, hubURL, stderr := start()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	seen := readHistory(t, hubURL, pub, stderr)
	mu.Lock()
	defer mu.Unlock()
	for id := range acked {
		if !seen[id] {
			t.Errorf("acknowledged publish %s is missing after the kill", id)
		}
	}
	t.Logf("%d publishes acknowledged before SIGKILL, %d in the history after the restart", len(acked), len(seen))
	if !strings.Contains(stderr.String(), "replayed the write-ahead log") {
		t.Logf("the kill came when bbolt held everything (no replay logged)")
	}
}

// readHistory reads back every update of topic t from the start of the history, up to an
// update "end" that it publishes first, and fails the test if one comes twice.
func readHistory(t *testing.T, hubURL, pub string, stderr *syncBuffer) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, hubURL+"?topic=t", nil)
	req.Header.Set("Authorization", "Bearer "+mint(t, nil, []string{"*"}))
	req.Header.Set("Last-Event-ID", "earliest")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The end of the history: one more update, published now.
	if c, body := post(t, client, hubURL, pub, url.Values{"topic": {"t"}, "id": {"end"}, "data": {"end"}}); c != 200 {
		t.Fatalf("publish after the restart: %d %s", c, body)
	}
	seen := map[string]bool{}
	r := sse.NewReader(resp.Body)
	for {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("reading the history after %d events: %v\n%s", len(seen), err, stderr.String())
		}
		if m.ID == "end" {
			return seen
		}
		if seen[m.ID] {
			t.Fatalf("%s replayed twice", m.ID)
		}
		seen[m.ID] = true
	}
}
