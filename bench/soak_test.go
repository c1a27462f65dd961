package bench_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/metrics"
)

// soakConfig is a short soak: fast churn, small bursts, frequent samples, no growth limits
// (a two-second run grows while it warms up).
func soakConfig(hubURL string) bench.SoakConfig {
	return bench.SoakConfig{
		Options: opts(hubURL), Duration: 2 * time.Second, Subscribers: 30, Rate: 100, Publishers: 2,
		ChurnMin: 200 * time.Millisecond, ChurnMax: 600 * time.Millisecond, Offline: 100 * time.Millisecond,
		BurstConnections: 40, BurstEvery: 900 * time.Millisecond, BurstHold: 50 * time.Millisecond,
		PrivateShare: 0.3, SampleEvery: 100 * time.Millisecond, Grace: time.Second, Warmup: 300 * time.Millisecond,
		Limits: map[string]float64{bench.ResRSS: -1, bench.ResHeap: -1, bench.ResGoroutines: -1, bench.ResFDs: -1, bench.ResStore: -1},
	}
}

// metricsURL serves a Prometheus registry with the Go and process collectors, as Herald's
// operations address does, and returns its URL.
func metricsURL(t *testing.T) string {
	ts := httptest.NewServer(promhttp.HandlerFor(metrics.New().Registry, promhttp.HandlerOpts{}))
	t.Cleanup(ts.Close)
	return ts.URL + "/metrics"
}

// TestSoak: churning subscribers of every selector and authorisation kind get exactly their
// updates from Herald, across reconnections, while bursts come and go; the resources are
// sampled from the metrics endpoint, /proc and a store file.
func TestSoak(t *testing.T) {
	cfg := soakConfig(newHerald(t, nil))
	cfg.MetricsURL = metricsURL(t)
	cfg.PID = os.Getpid()
	store := filepath.Join(t.TempDir(), "store")
	if err := os.WriteFile(store, make([]byte, 1234), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.StoreFiles = []string{store}
	res, err := bench.Soak(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := res.Check
	if !res.OK || len(res.Problems) != 0 || !c.OK() || c.Expected == 0 || c.Delivered != c.Expected {
		t.Fatalf("not OK: %v, check %+v", res.Problems, c)
	}
	if res.Published < 20 || res.PublishedPrivate == 0 || res.PublishErrors != 0 || res.Foreign != 0 {
		t.Fatalf("published %d (%d private), %d errors, %d foreign", res.Published, res.PublishedPrivate, res.PublishErrors, res.Foreign)
	}
	if res.Sessions < int64(2*cfg.Subscribers) {
		t.Fatalf("%d sessions for %d subscribers: they did not churn", res.Sessions, cfg.Subscribers)
	}
	if res.Bursts < 1 || res.BurstOpened != int64(res.Bursts*cfg.BurstConnections) || res.BurstFailed != 0 {
		t.Fatalf("bursts %d, opened %d, failed %d", res.Bursts, res.BurstOpened, res.BurstFailed)
	}
	if len(res.Samples) < 15 || res.SampleErrors != 0 {
		t.Fatalf("%d samples, %d errors", len(res.Samples), res.SampleErrors)
	}
	if len(res.Trends) != 5 {
		t.Fatalf("trends %+v", res.Trends)
	}
	for _, tr := range res.Trends {
		if tr.Start <= 0 || tr.End <= 0 || tr.Fitted < 3 {
			t.Fatalf("trend %+v", tr)
		}
		if tr.Resource == bench.ResStore && (tr.Start != 1234 || tr.SlopePerHour != 0) {
			t.Fatalf("store trend %+v", tr)
		}
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "OK: every subscriber got exactly its updates") {
		t.Fatalf("table %v:\n%s", err, buf.String())
	}
}

// TestSoakFloor: the floor hub keeps no history, ignores JWTs and knows only exact topics, so
// churning subscribers lose updates, template and "*" ones get nothing, and unauthorised ones
// get private updates: the soak fails and says so.
func TestSoakFloor(t *testing.T) {
	cfg := soakConfig(newFloor(t, nil))
	cfg.Duration, cfg.BurstEvery, cfg.Grace = time.Second, 0, 300*time.Millisecond
	res, err := bench.Soak(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Check.Lost == 0 || res.Check.Unexpected == 0 || len(res.Check.Examples) == 0 {
		t.Fatalf("passed against the floor hub: %+v", res.Check)
	}
	if !strings.Contains(strings.Join(res.Problems, "\n"), "expected deliveries arrived") {
		t.Fatalf("problems %q", res.Problems)
	}
}

// TestSoakCommand: the CLI prints JSON, writes the CSV of samples, and fails a run whose RSS
// limit is impossible to meet.
func TestSoakCommand(t *testing.T) {
	u := newHerald(t, nil)
	samples := filepath.Join(t.TempDir(), "samples.csv")
	var stdout, stderr bytes.Buffer
	args := []string{"soak", "--hub", u, "--key", testKey, "--duration", "1s", "--subscribers", "6", "--rate", "50",
		"--churn-min", "200ms", "--churn-max", "400ms", "--burst", "0", "--sample-every", "100ms", "--warmup", "1ms",
		"--pid", "1", "--max-rss-growth", "-1", "--max-fd-growth", "-1", "--json", "--samples", samples}
	if err := bench.Command(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	var res bench.SoakResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Scenario != "soak" || !res.OK || res.Check.Delivered == 0 {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	f, err := os.Open(samples)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != len(res.Samples)+1 || strings.Join(rows[0], ",") != "seconds,rss,heap,goroutines,open_fds,store,burst,online,delivered" {
		t.Fatalf("%v: %q", err, rows)
	}
	if rows[1][1] == "" || rows[1][2] != "" || rows[1][4] == "" {
		t.Fatalf("first row %q: want rss and open files from /proc, no heap", rows[1])
	}

	// A store file growing while the run samples it: over the limit, the run fails.
	store := filepath.Join(t.TempDir(), "store")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.Create(store)
		if err != nil {
			return
		}
		defer f.Close()
		for ctx.Err() == nil {
			_, _ = f.Write(make([]byte, 4096))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	stdout.Reset()
	args = []string{"soak", "--hub", u, "--key", testKey, "--duration", "500ms", "--subscribers", "2", "--rate", "20",
		"--burst", "0", "--grace", "200ms", "--sample-every", "50ms", "--warmup", "1ms", "--metrics", metricsURL(t),
		"--store-file", store, "--max-rss-growth", "-1", "--max-heap-growth", "-1", "--max-fd-growth", "-1", "--max-goroutine-growth", "-1"}
	err = bench.Command(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
	cancel()
	<-done
	if !errors.Is(err, bench.ErrFailed) || !strings.Contains(err.Error(), "store keeps growing") || !strings.Contains(stdout.String(), "GROWING") {
		t.Fatalf("err = %v\n%s", err, stdout.String())
	}
}

// TestDetectGrowth: a series climbing 20 MiB/h under noise is flagged; a flat series with
// the same noise passes, as do too few points.
func TestDetectGrowth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const limit = 5 << 20 // per hour
	var xs, grow, flat []float64
	for i := range 360 { // one hour, a sample every 10 s
		x := float64(i * 10)
		noise := rng.NormFloat64() * (2 << 20)
		xs = append(xs, x)
		grow = append(grow, 100<<20+x/3600*(20<<20)+noise)
		flat = append(flat, 100<<20+noise)
	}
	g := bench.DetectGrowth(xs, grow, limit)
	if !g.Growing || math.Abs(g.SlopePerHour-(20<<20)) > 2<<20 {
		t.Fatalf("growing series: %+v", g)
	}
	f := bench.DetectGrowth(xs, flat, limit)
	if f.Growing || math.Abs(f.SlopePerHour) > 2<<20 || f.StdErrPerHour <= 0 {
		t.Fatalf("flat series: %+v", f)
	}
	// Ten minutes of the flat series: fewer samples, a wider error, still not growing.
	if s := bench.DetectGrowth(xs[:60], flat[:60], limit); s.Growing {
		t.Fatalf("short flat series: %+v", s)
	}
	if s := bench.DetectGrowth(xs[:2], grow[:2], limit); s.Growing || s.Points != 2 {
		t.Fatalf("two points: %+v", s)
	}
}

// TestSoakUncertainPublishes: a hub that answers 503 to some publishes, after storing some of
// them and not others, as a cluster whose shared log restarts may. With TolerateUnavailable
// the run passes: those updates may arrive or not, and everything else must; without it, the
// publish errors fail the run.
func TestSoakUncertainPublishes(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.Handler.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		forward := func(w http.ResponseWriter) {
			fr := httptest.NewRequest(http.MethodPost, r.URL.String(), bytes.NewReader(body))
			fr.Header = r.Header.Clone()
			h.Handler.ServeHTTP(w, fr)
		}
		switch k := n.Add(1); {
		case k%13 == 0: // stored, but the publisher is told otherwise
			forward(httptest.NewRecorder())
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case k%17 == 0: // not stored
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		default:
			forward(w)
		}
	}))
	t.Cleanup(ts.Close)
	u := ts.URL + "/.well-known/mercure"

	cfg := soakConfig(u)
	cfg.Duration, cfg.BurstEvery, cfg.TolerateUnavailable = time.Second, 0, true
	res, err := bench.Soak(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.PublishErrors == 0 || !res.Check.OK() || res.Check.Delivered == 0 {
		t.Fatalf("tolerated: OK %v, %d publish errors, problems %q, check %+v", res.OK, res.PublishErrors, res.Problems, res.Check)
	}

	cfg.TolerateUnavailable = false
	n.Store(0) // the marker, first, goes through
	res, err = bench.Soak(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "publish errors: hub answered 503") || !res.Check.OK() {
		t.Fatalf("not tolerated: OK %v, problems %q, check %+v", res.OK, res.Problems, res.Check)
	}
}
