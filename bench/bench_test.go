package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/server"
)

// hubs are the hubs every scenario runs against.
func hubs(t *testing.T) map[string]string {
	return map[string]string{"herald": newHerald(t, nil), "floor": newFloor(t, nil)}
}

func TestFanout(t *testing.T) {
	for name, u := range hubs(t) {
		t.Run(name, func(t *testing.T) {
			res, err := bench.Fanout(context.Background(), bench.FanoutConfig{
				Options: opts(u), Subscribers: 50, Topics: 5, Updates: 200, Publishers: 2, Size: 64,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkFanout(t, res, 50*200/5)
		})
	}
}

func checkFanout(t *testing.T, res *bench.FanoutResult, want int64) {
	t.Helper()
	c := res.Check
	if !res.OK || len(res.Problems) != 0 || !c.OK() {
		t.Fatalf("not OK: %+v", res)
	}
	if c.Expected != want || c.Delivered != want || c.Lost != 0 || c.Duplicated != 0 || c.OutOfOrder != 0 || c.Unexpected != 0 {
		t.Fatalf("check %+v, want %d delivered", c, want)
	}
	if res.Connected != res.Subscribers || res.Published != int64(res.Updates) || res.PublishErrors != 0 {
		t.Fatalf("result %+v", res)
	}
	if res.Latency.Count != want || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.EventsPerSecond <= 0 {
		t.Fatalf("latency %+v, %.0f events/s", res.Latency, res.EventsPerSecond)
	}
	if res.PublishLatency.Count != res.Published || res.PublishesPerSecond <= 0 {
		t.Fatalf("publish latency %+v", res.PublishLatency)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "OK: every subscriber got every update") {
		t.Fatalf("table %v:\n%s", err, buf.String())
	}
}

// TestFanoutProcs spreads the subscribers over two worker processes; their results and
// histograms are merged.
func TestFanoutProcs(t *testing.T) {
	o := opts(newHerald(t, nil))
	o.Procs = 2
	o.WorkerCommand = workerCommand
	res, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: o, Subscribers: 21, Topics: 3, Updates: 90})
	if err != nil {
		t.Fatal(err)
	}
	if res.Procs != 2 {
		t.Fatalf("procs %d", res.Procs)
	}
	checkFanout(t, res, 21*90/3)
}

// TestFanoutReconnects: the hub ends streams every ~300 ms during a paced run; subscribers
// reconnect with Last-Event-ID and still get everything once, in order.
func TestFanoutReconnects(t *testing.T) {
	u := newHerald(t, func(c *server.Config) { c.WriteTimeout = 300 * time.Millisecond })
	res, err := bench.Fanout(context.Background(), bench.FanoutConfig{
		Options: opts(u), Subscribers: 10, Topics: 2, Updates: 200, Publishers: 2, Rate: 250,
	})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res, 10*200/2)
	if res.Reconnects < 10 {
		t.Fatalf("%d reconnects: the streams did not end", res.Reconnects)
	}
	if res.PublishSeconds < 0.7 {
		t.Fatalf("published in %.2fs: --rate was not honoured", res.PublishSeconds)
	}
}

func TestCatchup(t *testing.T) {
	u := newHerald(t, nil)
	for _, earliest := range []bool{false, true} {
		res, err := bench.Catchup(context.Background(), bench.CatchupConfig{Options: opts(u), Updates: 500, Publishers: 2, Earliest: earliest})
		if err != nil {
			t.Fatal(err)
		}
		if !res.OK || res.Check.Delivered != 500 || res.Check.Expected != 500 || res.Published != 500 || res.UpdatesPerSecond <= 0 {
			t.Fatalf("earliest=%v: %+v", earliest, res)
		}
		if res.ResponseLastEventID != res.LastEventID || res.LastEventID == "" {
			t.Fatalf("Last-Event-ID sent %q, answered %q", res.LastEventID, res.ResponseLastEventID)
		}
	}
}

// TestCatchupFloor: the floor hub keeps no history, so a catch-up gets nothing, and the run
// says so.
func TestCatchupFloor(t *testing.T) {
	o := opts(newFloor(t, nil))
	res, err := bench.Catchup(context.Background(), bench.CatchupConfig{Options: o, Updates: 500, Grace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Check.Lost != 500 || res.Check.Delivered != 0 || len(res.Problems) == 0 {
		t.Fatalf("%+v", res)
	}
}

func TestPublish(t *testing.T) {
	for name, u := range hubs(t) {
		t.Run(name, func(t *testing.T) {
			res, err := bench.Publish(context.Background(), bench.PublishConfig{Options: opts(u), Updates: 300, Publishers: 4, Topics: 3})
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK || res.Published != 300 || res.Errors != 0 || res.Latency.Count != 300 || res.PublishesPerSecond <= 0 {
				t.Fatalf("%+v", res)
			}
		})
	}
}

// TestPublishErrors: a refused publish fails the run with the hub's reason.
func TestPublishErrors(t *testing.T) {
	o := opts(newHerald(t, nil))
	o.Key = "another key that the hub does not know!!"
	res, err := bench.Publish(context.Background(), bench.PublishConfig{Options: o, Updates: 10, Publishers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Errors != 2 || res.Published != 0 || !strings.Contains(strings.Join(res.Problems, " "), "401") {
		t.Fatalf("%+v", res)
	}
}

func TestIdle(t *testing.T) {
	for name, u := range hubs(t) {
		t.Run(name, func(t *testing.T) {
			res, err := bench.Idle(context.Background(), bench.IdleConfig{
				Options: opts(u), Connections: 20, Topics: 3, Concurrency: 8,
				Hold: 200 * time.Millisecond, PID: os.Getpid(), Settle: 100 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !res.OK || res.Connected != 20 || res.StillOpen != 20 || res.Reconnects != 0 || res.ConnectionsPerSecond <= 0 {
				t.Fatalf("%+v", res)
			}
			if res.RSSBeforeKiB <= 0 || res.RSSOpenKiB <= 0 || res.RSSAfterKiB <= 0 {
				t.Fatalf("RSS %+v", res)
			}
			var buf bytes.Buffer
			if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "per connection") {
				t.Fatalf("table %v:\n%s", err, buf.String())
			}
		})
	}
}

// TestIdleRefused: connections the hub refuses fail the run.
func TestIdleRefused(t *testing.T) {
	o := opts(newHerald(t, nil))
	o.Key = ""
	o.SubscriberToken = "not.a.jwt"
	o.Token = "x"
	res, err := bench.Idle(context.Background(), bench.IdleConfig{Options: o, Connections: 5, Hold: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Connected != 0 || res.Failed != 5 || !strings.Contains(strings.Join(res.Problems, " "), "401") {
		t.Fatalf("%+v", res)
	}
}

// TestIdleProcs holds the connections in two worker processes.
func TestIdleProcs(t *testing.T) {
	o := opts(newFloor(t, nil))
	o.Procs = 2
	o.WorkerCommand = workerCommand
	res, err := bench.Idle(context.Background(), bench.IdleConfig{Options: o, Connections: 10, Hold: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Connected != 10 || res.StillOpen != 10 || res.Procs != 2 {
		t.Fatalf("%+v", res)
	}
}

// brokenHub wraps a hub: publish n (from 1) is dropped (answered 200 without being
// forwarded), forwarded twice, or held back until the publish marked "release" has been
// forwarded, as misbehave(n) says.
func brokenHub(misbehave func(n int) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		var (
			mu   sync.Mutex
			n    int
			held url.Values
		)
		forward := func(form url.Values) {
			r, _ := http.NewRequest(http.MethodPost, "/.well-known/mercure", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			next.ServeHTTP(discard{}, r)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				next.ServeHTTP(w, r)
				return
			}
			_ = r.ParseForm()
			mu.Lock()
			defer mu.Unlock()
			n++
			switch misbehave(n) {
			case "drop":
			case "duplicate":
				forward(r.PostForm)
				forward(r.PostForm)
			case "hold":
				held = r.PostForm
			case "release":
				forward(r.PostForm)
				forward(held)
			default:
				forward(r.PostForm)
			}
			io.WriteString(w, "urn:broken:x")
		})
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// TestDetectsBrokenHubs: a lost, a duplicated and a reordered update are each reported, and
// the command exits non-zero.
func TestDetectsBrokenHubs(t *testing.T) {
	// One publisher, 5 topics: publish n carries update n-1, for topic (n-1) mod 5. Publish 10
	// is for topic 4, which subscribers 4, 9, 14 and 19 (of 20) listen to; so is publish 15.
	for _, tc := range []struct {
		name      string
		misbehave func(n int) string
		check     func(bench.Check) bool
	}{
		{"drop", func(n int) string { return map[int]string{10: "drop"}[n] },
			func(c bench.Check) bool {
				return c.Lost == 4 && c.Delivered == 4*(40-1)+16*40 && c.SubscribersWithProblems == 4
			}},
		{"duplicate", func(n int) string { return map[int]string{10: "duplicate"}[n] },
			func(c bench.Check) bool { return c.Duplicated == 4 && c.Lost == 0 && c.Delivered == c.Expected }},
		{"reorder", func(n int) string { return map[int]string{10: "hold", 15: "release"}[n] },
			func(c bench.Check) bool { return c.OutOfOrder == 4 && c.Lost == 0 && c.Delivered == c.Expected }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newFloor(t, brokenHub(tc.misbehave))
			res, err := bench.Fanout(context.Background(), bench.FanoutConfig{
				Options: opts(u), Subscribers: 20, Topics: 5, Updates: 200, Grace: 300 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.Check.OK() || !tc.check(res.Check) || len(res.Check.Examples) == 0 {
				t.Fatalf("check %+v; problems %q", res.Check, res.Problems)
			}
		})
	}

	// The command: a table saying FAILED, and an error wrapping ErrFailed.
	u := newFloor(t, brokenHub(func(n int) string {
		if n == 3 {
			return "drop"
		}
		return ""
	}))
	var stdout, stderr bytes.Buffer
	err := bench.Command(context.Background(), []string{"fanout", "--hub", u, "--subscribers", "4", "--topics", "2", "--updates", "20", "--grace", "200ms"},
		func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, bench.ErrFailed) || !strings.Contains(err.Error(), "lost 2") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(stdout.String(), "FAILED") {
		t.Fatalf("stdout:\n%s", stdout.String())
	}
}

// TestCommandJSON: --json prints the result as JSON, and keys come from the environment.
func TestCommandJSON(t *testing.T) {
	u := newHerald(t, nil)
	var stdout, stderr bytes.Buffer
	env := func(k string) string {
		if k == "MERCURE_PUBLISHER_JWT_KEY" {
			return testKey
		}
		return ""
	}
	err := bench.Command(context.Background(), []string{"publish", "--hub", u, "--updates", "20", "--publishers", "2", "--json"}, env, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var res bench.PublishResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Scenario != "publish" || res.Published != 20 || !res.OK {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	stdout.Reset()
	if err := bench.Command(context.Background(), []string{"fanout", "--hub", u, "--subscribers", "3", "--topics", "1", "--updates", "5"}, env, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "delivered") || !strings.Contains(stdout.String(), "15 of 15 events") {
		t.Fatalf("table:\n%s", stdout.String())
	}
}

func TestCommandErrors(t *testing.T) {
	env := func(string) string { return "" }
	for _, args := range [][]string{
		{},
		{"nope"},
		{"fanout", "--hub", "http://192.0.2.1/.well-known/mercure", "--key", testKey},
		{"publish", "--hub", "ftp://localhost/", "--key", testKey},
		{"catchup", "--updates", "0", "--key", testKey},
		{"fanout", "stray"},
	} {
		var stdout, stderr bytes.Buffer
		if err := bench.Command(context.Background(), args, env, &stdout, &stderr); err == nil || errors.Is(err, bench.ErrFailed) {
			t.Errorf("%q: err = %v", args, err)
		}
	}
}

func TestCheckHub(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:3000/.well-known/mercure", "http://[::1]:1/", "https://localhost/", "http://a.localhost/"} {
		if err := bench.CheckHub(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://192.0.2.1/", "http://[2001:db8::1]/", "ftp://127.0.0.1/", "http:///x", "://"} {
		if err := bench.CheckHub(bad, false); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if err := bench.CheckHub("http://192.0.2.1/", true); err != nil {
		t.Errorf("--allow-remote: %v", err)
	}
}
