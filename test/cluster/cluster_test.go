// Package cluster_test runs several Herald nodes as real processes on loopback, sharing a real
// Redis or NATS server, and checks what issue #7 promises: every node sees every update in the
// same order, a subscriber survives the death of its node by reconnecting to another with
// Last-Event-ID and gets every update once, publishes during a transport outage fail with 503
// and never with a 200 for an update that was not stored, and the subscriptions API lists
// every node's subscribers until a dead node's expire.
package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/sse"
)

const key = "cluster-test-key-that-is-long-enough!"

var herald string // the binary under test, built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cluster")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	herald = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", herald, "github.com/heraldhub/herald/cmd/herald")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// backend is a transport server shared by the nodes of a test.
type backend struct {
	name   string
	server *testkit.Server
	// url returns a transport URL for a stream of its own.
	url func(stream string) string
}

// startBackend starts the named transport server for one test.
func startBackend(t *testing.T, name string) backend {
	t.Helper()
	switch name {
	case "redis":
		s := testkit.StartRedis(t)
		return backend{name: name, server: s, url: func(stream string) string { return s.URL() + "/0?stream=" + stream }}
	default:
		s := testkit.StartNATS(t)
		return backend{name: name, server: s, url: func(stream string) string { return s.URL() + "?stream=" + stream }}
	}
}

// forEachBackend runs test once per cluster transport.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	for _, name := range []string{"redis", "nats"} {
		t.Run(name, func(t *testing.T) { test(t, startBackend(t, name)) })
	}
}

// node is one herald process.
type node struct {
	url  string // the hub endpoint
	cmd  *exec.Cmd
	logs *strings.Builder
	mu   *sync.Mutex
	done chan struct{}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNode starts a herald node on the transport URL, with extra arguments of serve.
func startNode(t *testing.T, transportURL string, extra ...string) *node {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(herald, append([]string{"serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", transportURL,
		"--subscriptions", "--anonymous", "--node-heartbeat", "200ms", "--heartbeat", "1s", "--log-level", "info"}, extra...)...)
	cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+key)
	n := &node{url: "http://" + addr + "/.well-known/mercure", cmd: cmd, logs: &strings.Builder{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { n.mu.Lock(); defer n.mu.Unlock(); return n.logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.signal(syscall.SIGTERM)
		if t.Failed() {
			n.mu.Lock()
			t.Logf("node %s log:\n%s", addr, n.logs.String())
			n.mu.Unlock()
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return n
		}
		select {
		case <-n.done:
			t.Fatalf("node exited at start:\n%s", n.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signal sends sig and waits for the process to end (SIGKILL after 10 s).
func (n *node) signal(sig syscall.Signal) {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func token(t *testing.T, claims map[string]any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": claims}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}

// publish posts one update and returns the status code (0 for a network error).
func publish(t *testing.T, hubURL, tok, topic, id string) int {
	form := url.Values{"topic": {topic}, "id": {id}, "data": {id}}
	req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// follower is a subscriber that fails over between nodes: when its stream ends or breaks it
// reconnects, to the next node, with the Last-Event-ID of the last event it received.
type follower struct {
	mu   sync.Mutex
	ids  []string
	errs []string
	conn int
}

func (f *follower) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

// follow runs until ctx ends; nodes[start] first, then round-robin.
func (f *follower) follow(ctx context.Context, nodes []*node, start int, topic string) {
	last := "earliest"
	httpClient := &http.Client{Transport: &http.Transport{}}
	defer httpClient.CloseIdleConnections()
	for i := start; ctx.Err() == nil; i++ {
		n := nodes[i%len(nodes)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"?topic="+url.QueryEscape(topic), nil)
		req.Header.Set("Last-Event-ID", last)
		resp, err := httpClient.Do(req)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			f.mu.Lock()
			f.errs = append(f.errs, fmt.Sprintf("%s: %d", n.url, resp.StatusCode))
			f.mu.Unlock()
			resp.Body.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		f.conn++
		f.mu.Unlock()
		r := sse.NewReader(bufio.NewReader(resp.Body))
		for {
			m, err := r.Next()
			if err != nil {
				break
			}
			f.mu.Lock()
			f.ids = append(f.ids, m.ID)
			f.mu.Unlock()
			last = m.ID
		}
		resp.Body.Close()
	}
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSameOrderOnEveryNode publishes through three nodes in turn; a subscriber on each node
// receives every update, in the one order of the log.
func TestSameOrderOnEveryNode(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tr := b.url("order")
		nodes := []*node{startNode(t, tr), startNode(t, tr), startNode(t, tr)}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		followers := make([]*follower, 3)
		for i := range followers {
			followers[i] = &follower{}
			wg.Add(1)
			go func() { defer wg.Done(); followers[i].follow(ctx, nodes[i:i+1], 0, "t") }()
		}
		pub := token(t, map[string]any{"publish": []string{"*"}})
		const total = 300
		var want []string
		for i := range total {
			id := fmt.Sprintf("p%03d", i)
			if code := publish(t, nodes[i%3].url, pub, "t", id); code != http.StatusOK {
				t.Fatalf("publish %s on node %d: %d", id, i%3, code)
			}
			want = append(want, id)
		}
		waitFor(t, 20*time.Second, "every follower to get every update", func() bool {
			for _, f := range followers {
				if len(f.received()) < total {
					return false
				}
			}
			return true
		})
		cancel()
		wg.Wait()
		for i, f := range followers {
			if got := f.received(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("node %d's subscriber got %v", i, got)
			}
		}
	})
}

// TestNodeKilled kills one of three nodes while subscribers stream and a publisher publishes:
// the subscribers of the dead node reconnect to the others, and every subscriber gets every
// acknowledged update exactly once, all in the same order.
func TestNodeKilled(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tr := b.url("failover")
		nodes := []*node{startNode(t, tr), startNode(t, tr), startNode(t, tr)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		followers := make([]*follower, 9)
		for i := range followers {
			followers[i] = &follower{}
			wg.Add(1)
			go func() { defer wg.Done(); followers[i].follow(ctx, nodes, i%3, "t") }()
		}
		waitFor(t, 10*time.Second, "followers to connect", func() bool {
			for _, f := range followers {
				f.mu.Lock()
				c := f.conn
				f.mu.Unlock()
				if c == 0 {
					return false
				}
			}
			return true
		})
		pub := token(t, map[string]any{"publish": []string{"*"}})
		const total = 600
		live := []*node{nodes[0], nodes[1], nodes[2]}
		for i := range total {
			if i == total/3 {
				nodes[0].signal(syscall.SIGKILL)
				live = live[1:]
			}
			id := fmt.Sprintf("k%03d", i)
			for attempt := 0; ; attempt++ {
				code := publish(t, live[(i+attempt)%len(live)].url, pub, "t", id)
				if code == http.StatusOK || code == http.StatusConflict { // 409: an earlier attempt stored it
					break
				}
				if attempt > 20 {
					t.Fatalf("publish %s: %d", id, code)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		waitFor(t, 30*time.Second, "every follower to get every update", func() bool {
			for _, f := range followers {
				if len(f.received()) < total {
					return false
				}
			}
			return true
		})
		cancel()
		wg.Wait()
		first := followers[0].received()
		seen := map[string]bool{}
		for _, id := range first {
			if seen[id] {
				t.Fatalf("%s received twice", id)
			}
			seen[id] = true
		}
		if len(first) != total {
			t.Fatalf("got %d updates, want %d", len(first), total)
		}
		for i, f := range followers {
			if got := f.received(); strings.Join(got, ",") != strings.Join(first, ",") {
				t.Fatalf("follower %d's order differs (%d updates, %d connections)", i, len(got), f.conn)
			}
		}
	})
}

// TestTransportRestart stops the transport server while publishers publish: publishes during
// the outage fail with 503, none answers 200 for an update that was not stored, the nodes
// reconnect by themselves, and subscribers get every acknowledged update exactly once.
func TestTransportRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tr := b.url("restart")
		nodes := []*node{startNode(t, tr), startNode(t, tr)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		followers := []*follower{{}, {}}
		for i, f := range followers {
			wg.Add(1)
			go func() { defer wg.Done(); f.follow(ctx, nodes[i:i+1], 0, "t") }()
		}
		pub := token(t, map[string]any{"publish": []string{"*"}})
		var acked, failed []string
		outage := false
		for i := 0; len(acked) < 300; i++ {
			if len(acked) == 100 && !outage {
				outage = true
				b.server.Kill()
				// Publishes while the server is down.
				for j := range 5 {
					id := fmt.Sprintf("down%d", j)
					code := publish(t, nodes[j%2].url, pub, "t", id)
					switch code {
					case http.StatusServiceUnavailable:
						failed = append(failed, id)
					case http.StatusOK:
						t.Fatalf("publish %s during the outage answered 200", id)
					default:
						t.Fatalf("publish %s during the outage: %d, want 503", id, code)
					}
				}
				b.server.Start()
			}
			id := fmt.Sprintf("r%03d", i)
			switch code := publish(t, nodes[i%2].url, pub, "t", id); code {
			case http.StatusOK:
				acked = append(acked, id)
			case http.StatusServiceUnavailable:
				failed = append(failed, id)
				time.Sleep(50 * time.Millisecond)
			default:
				t.Fatalf("publish %s: %d", id, code)
			}
		}
		waitFor(t, 30*time.Second, "every acknowledged update", func() bool {
			for _, f := range followers {
				got := map[string]bool{}
				for _, id := range f.received() {
					got[id] = true
				}
				for _, id := range acked {
					if !got[id] {
						return false
					}
				}
			}
			return true
		})
		cancel()
		wg.Wait()
		for i, f := range followers {
			seen := map[string]bool{}
			for _, id := range f.received() {
				if seen[id] {
					t.Fatalf("follower %d received %s twice", i, id)
				}
				seen[id] = true
			}
		}
		t.Logf("%d acknowledged, %d refused with 503 during the outage", len(acked), len(failed))
	})
}

// TestSubscriptionsAcrossNodes: every node lists the subscribers of all nodes, in both dialects
// (a 0.x topic selector in the JSON-LD form, a draft-08 matcher in the plain JSON form), and a
// killed node's subscriptions expire everywhere, with their departure events in both forms.
func TestSubscriptionsAcrossNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		tr := b.url("presence")
		a, bn := startNode(t, tr), startNode(t, tr)
		apiTok := token(t, map[string]any{"subscribe": []string{
			"/.well-known/mercure/subscriptions{/topic}{/subscriber}",
			"/.well-known/mercure/subscriptions/exact/{match}/{subscriber}",
		}})
		get := func(n *node, path string) []string {
			req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
			req.Header.Set("Authorization", "Bearer "+apiTok)
			resp, err := client.Do(req)
			if err != nil {
				return nil
			}
			defer resp.Body.Close()
			var doc struct {
				Subscriptions []struct {
					Topic     string `json:"topic"`
					Match     string `json:"match"`
					MatchType string `json:"match_type"`
				} `json:"subscriptions"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&doc)
			var out []string
			for _, s := range doc.Subscriptions {
				out = append(out, s.Topic+s.MatchType+":"+s.Match)
			}
			return out
		}
		list := func(n *node) string { return strings.Join(get(n, "/subscriptions"), ",") }
		// Presence watchers on node b: one in each dialect.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		watch := func(query string) *follower {
			f := &follower{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, bn.url+"?"+query, nil)
				req.Header.Set("Authorization", "Bearer "+apiTok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				r := sse.NewReader(bufio.NewReader(resp.Body))
				for {
					m, err := r.Next()
					if err != nil {
						return
					}
					f.mu.Lock()
					f.ids = append(f.ids, m.Type+" "+m.Data)
					f.mu.Unlock()
				}
			}()
			return f
		}
		watcher := watch("topic=" + url.QueryEscape("/.well-known/mercure/subscriptions{/topic}{/subscriber}"))
		watcher08 := watch("match_urlpattern=" + url.QueryEscape("/.well-known/mercure/subscriptions/exact/:match/:subscriber"))
		// A subscriber on node a, with a 0.x selector and a draft-08 matcher.
		subCtx, stopSub := context.WithCancel(context.Background())
		defer stopSub()
		req, _ := http.NewRequestWithContext(subCtx, http.MethodGet, a.url+"?topic=https://example.com/room/1&match=https://example.com/room/2", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		waitFor(t, 10*time.Second, "node b to list node a's subscriptions", func() bool {
			l := list(bn)
			return strings.Contains(l, "https://example.com/room/1:") && strings.Contains(l, "exact:https://example.com/room/2")
		})
		if got := get(bn, "/subscriptions/exact/"+url.QueryEscape("https://example.com/room/2")); len(got) != 1 || got[0] != "exact:https://example.com/room/2" {
			t.Fatalf("node b's list of the draft-08 matcher: %q", got)
		}
		a.signal(syscall.SIGKILL)
		start := time.Now()
		waitFor(t, 10*time.Second, "node a's subscriptions to expire on node b", func() bool {
			return !strings.Contains(list(bn), "https://example.com/room/")
		})
		t.Logf("expired %v after the kill (node_heartbeat 200ms)", time.Since(start).Round(10*time.Millisecond))
		departed := func(f *follower, typ, field string) func() bool {
			return func() bool {
				for _, d := range f.received() {
					if strings.HasPrefix(d, typ+" {") && strings.Contains(d, field) && strings.Contains(d, `"active":false`) {
						return true
					}
				}
				return false
			}
		}
		waitFor(t, 5*time.Second, "the 0.x departure event", departed(watcher, "", `"topic":"https://example.com/room/1"`))
		waitFor(t, 5*time.Second, "the draft-08 departure event", departed(watcher08, "mercure", `"match":"https://example.com/room/2"`))
		for _, d := range watcher08.received() {
			if strings.Contains(d, "room/1") {
				t.Errorf("the draft-08 watcher got a 0.x event: %s", d)
			}
		}
		cancel()
		wg.Wait()
	})
}
