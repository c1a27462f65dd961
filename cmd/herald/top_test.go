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
