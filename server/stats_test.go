package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// statsHub starts a hub with metrics and its operations endpoints serving /stats.
func statsHub(t *testing.T) (*testHub, *httptest.Server) {
	t.Helper()
	m := metrics.New()
	var src *server.StatsSource
	th := newTestHubWith(t, func(c *hub.Config) { c.Metrics = m }, func(c *server.Config) {
		c.Metrics = m
		src = server.NewStatsSource(server.StatsConfig{
			Version: "v9.9.9", Transport: "local", Started: time.Now(), Hub: c.Hub, Interval: 20 * time.Millisecond,
		}, m)
		c.Stats = src
	})
	ops := httptest.NewServer(server.OpsHandler(server.OpsConfig{Metrics: m, Stats: src}))
	t.Cleanup(ops.Close)
	return th, ops
}

// getStats reads one snapshot from /stats?once=1.
func getStats(t *testing.T, opsURL string) server.Stats {
	t.Helper()
	resp, err := http.Get(opsURL + "/stats?once=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st server.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStatsCountsExactly(t *testing.T) {
	th, ops := statsHub(t)
	const subscribers, publishes = 3, 5
	topic := "https://example.com/stats"
	var streams []*stream
	for range subscribers {
		streams = append(streams, th.subscribe(t, "topic="+url.QueryEscape(topic), bearer(mercureToken(t, nil, []string{"*"}))))
	}
	for i := range publishes {
		th.publish(t, url.Values{"topic": {topic}, "data": {"n" + strconv.Itoa(i)}})
	}
	for _, s := range streams {
		for range publishes {
			s.next(t)
		}
	}
	waitFor(t, "every delivery counted", func() bool { return getStats(t, ops.URL).Totals.Delivered >= subscribers*publishes })

	st := getStats(t, ops.URL)
	if st.Totals.Published != publishes || st.Totals.Delivered != subscribers*publishes ||
		st.Totals.Connections != subscribers || st.Subscribers != subscribers {
		t.Fatalf("stats %+v, want %d published, %d delivered, %d connections and subscribers", st, publishes, subscribers*publishes, subscribers)
	}
	if st.Totals.BytesWritten == 0 || st.Totals.SlowDisconnects != 0 {
		t.Fatalf("totals %+v: want bytes written and no slow disconnects", st.Totals)
	}
	if st.Version != "v9.9.9" || st.Transport != "local" || st.Goroutines <= 0 || st.UptimeSeconds <= 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.RSSBytes <= 0 || st.OpenFiles <= 0 || st.MaxOpenFiles < int64(st.OpenFiles) {
		t.Fatalf("process figures: rss %d, open files %d of %d", st.RSSBytes, st.OpenFiles, st.MaxOpenFiles)
	}
}

func TestStatsStream(t *testing.T) {
	th, ops := statsHub(t)
	next := openStats(t, th.Client, ops.URL+"/stats", "")
	first := next()
	if first.Totals.Published != 0 {
		t.Fatalf("first snapshot %+v, want nothing published", first.Totals)
	}
	th.publish(t, url.Values{"topic": {"https://example.com/stats"}, "data": {"one"}})
	deadline := time.Now().Add(5 * time.Second)
	for next().Totals.Published != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stream never showed the publish")
		}
	}
}

func TestStatsBadOnce(t *testing.T) {
	_, ops := statsHub(t)
	resp, err := http.Get(ops.URL + "/stats?once=yes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || string(b) != "once must be 1 or 0\n" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// openStats opens a live-stats stream at u (with a bearer token unless tok is empty), checks
// the answer, and returns the function that reads its next snapshot. The stream is closed at
// cleanup.
func openStats(t *testing.T, client *http.Client, u, tok string) func() server.Stats {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := sse.NewReader(resp.Body)
	return func() server.Stats { t.Helper(); return nextStats(t, r) }
}

// nextStats reads the next event of a live-stats stream, which must be a stats snapshot.
func nextStats(t *testing.T, r *sse.Reader) server.Stats {
	t.Helper()
	msg, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var st server.Stats
	if msg.Type != "stats" || json.Unmarshal([]byte(msg.Data), &st) != nil {
		t.Fatalf("event %+v, want a stats snapshot", msg)
	}
	return st
}
