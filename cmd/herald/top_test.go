package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// TestTopCommand runs `herald top` against an in-process hub after 4 publishes to 3
// subscribers: --once --json gives the exact counts, the live view shows them with rates,
// and a hub without /stats is an error that says so.
func TestTopCommand(t *testing.T) {
	opsAddr := freeAddr(t)
	hubURL := startServe(t, "--metrics-addr", opsAddr)
	opsURL := "http://" + opsAddr
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	const subscribers, publishes = 3, 4
	var readers []*sse.Reader
	for range subscribers {
		readers = append(readers, sse.NewReader(subscribeNews(t, client, hubURL).Body))
	}
	for i := range publishes {
		if c, body := post(t, client, hubURL, mint(t, []string{"news"}, nil), url.Values{"topic": {"news"}, "data": {"n" + strconv.Itoa(i)}}); c != http.StatusOK {
			t.Fatalf("publish: %d %q", c, body)
		}
	}
	for _, r := range readers {
		for range publishes {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
	}

	once := func() server.Stats {
		t.Helper()
		var stdout, stderr syncBuffer
		if c := run(context.Background(), []string{"top", "--hub-ops", opsURL, "--once", "--json"}, noEnv, &stdout, &stderr); c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
		var st server.Stats
		if err := json.Unmarshal([]byte(stdout.String()), &st); err != nil {
			t.Fatalf("%q: %v", stdout.String(), err)
		}
		return st
	}
	deadline := time.Now().Add(5 * time.Second)
	st := once()
	for st.Totals.Delivered < subscribers*publishes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the last write is counted just after it is read
		st = once()
	}
	if st.Totals.Published != publishes || st.Totals.Delivered != subscribers*publishes || st.Totals.Connections != subscribers ||
		st.Subscribers != subscribers || st.Transport != "local" || st.Version == "" {
		t.Fatalf("snapshot %+v, want %d published, %d delivered, %d subscribers on local", st, publishes, subscribers*publishes, subscribers)
	}

	// The live view: two refreshes, the second with rates, until interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"top", "--hub-ops", opsURL}, noEnv, &stdout, &stderr) }()
	deadline = time.Now().Add(5 * time.Second)
	for strings.Count(stdout.String(), "\x1b[H\x1b[2J") < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	screens := strings.Split(stdout.String(), "\x1b[H\x1b[2J")
	if len(screens) < 3 {
		t.Fatalf("fewer than two screens in %q", stdout.String())
	}
	second := screens[2]
	for _, line := range []string{
		"subscribers 3 ",
		"published                       4          0.0\n",
		"delivered                      12          0.0\n",
		"connections                     3          0.0\n",
	} {
		if !strings.Contains(second, line) {
			t.Fatalf("screen %q lacks %q", second, line)
		}
	}

	// An address without /stats: the answer, and exit 1.
	var errOut syncBuffer
	if c := run(context.Background(), []string{"top", "--hub-ops", strings.TrimSuffix(hubURL, "/.well-known/mercure"), "--once"}, noEnv, &stdout, &errOut); c != 1 ||
		!strings.HasPrefix(errOut.String(), "herald top: "+strings.TrimSuffix(hubURL, "/.well-known/mercure")+"/stats?once=1 answered 404: ") {
		t.Fatalf("exit %d, %q", c, errOut.String())
	}
}

// TestTopOverHubAddress runs `herald top --hub` against a hub whose streams last a second:
// it reads the stats topic with a JWT minted from the key, and goes on across the ends of
// its stream; without a key or token it says what it needs; a token for other topics gets
// the hub's 403.
func TestTopOverHubAddress(t *testing.T) {
	hubURL := startServe(t, "--write-timeout", "1s")
	env := func(k string) string {
		if k == "MERCURE_JWT_KEY" {
			return key
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	var stdout, stderr syncBuffer
	if c := run(ctx, []string{"top", "--hub", hubURL, "--json"}, env, &stdout, &stderr); c != 0 {
		t.Fatalf("exit %d: %s", c, stderr.String())
	}
	// Streams of 0.8-1 s over 3.5 s: snapshots more than two seconds apart come from streams
	// that followed the first one's end.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var first, last server.Stats
	for i, l := range lines {
		var st server.Stats
		if err := json.Unmarshal([]byte(l), &st); err != nil || st.Transport != "local" {
			t.Fatalf("line %q: %v", l, err)
		}
		if i == 0 {
			first = st
		}
		last = st
	}
	if len(lines) < 3 || last.Time.Sub(first.Time) < 2*time.Second {
		t.Fatalf("%d snapshots over %v: %q (stderr %q)", len(lines), last.Time.Sub(first.Time), stdout.String(), stderr.String())
	}

	var errOut syncBuffer
	if c := run(context.Background(), []string{"top", "--hub", hubURL, "--once"}, noEnv, &stdout, &errOut); c != 1 ||
		errOut.String() != "herald top: --hub needs a JWT allowed to subscribe to /.well-known/mercure/stats: give --token or --key\n" {
		t.Fatalf("without a token: exit %d, %q", c, errOut.String())
	}
	errOut = syncBuffer{}
	other := mint(t, nil, []string{"news"})
	if c := run(context.Background(), []string{"top", "--hub", hubURL, "--token", other, "--once"}, noEnv, &stdout, &errOut); c != 1 ||
		errOut.String() != "herald top: "+hubURL+"/stats?once=1 answered 403: token's mercure.subscribe claim does not match /.well-known/mercure/stats\n" {
		t.Fatalf("with a token for other topics: exit %d, %q", c, errOut.String())
	}
}
