package server_test

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/server"
)

// statsURL is the live stats' address on the hub's own address.
func statsURL(th *testHub) string {
	return th.URL[:len(th.URL)-len(server.Path)] + server.StatsTopic
}

func TestDashboardStatsRefusals(t *testing.T) {
	th, _ := statsHub(t)
	for _, tc := range []struct {
		name   string
		header http.Header
		code   int
		body   string
	}{
		{"no token", nil, http.StatusUnauthorized, "missing JWT: send it in the Authorization header, the authorization query parameter or the mercureAuthorization cookie\n"},
		{"other topics only", bearer(mercureToken(t, nil, []string{"https://example.com/{x}"})), http.StatusForbidden,
			"token's mercure.subscribe claim does not match /.well-known/mercure/stats\n"},
		{"no subscribe claim", bearer(mercureToken(t, []string{"*"}, nil)), http.StatusForbidden,
			"token's mercure.subscribe claim does not match /.well-known/mercure/stats\n"},
		{"expired", bearer(token(t, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"*"}}, "exp": time.Now().Add(-time.Minute).Unix()})),
			http.StatusUnauthorized, "token expired\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, statsURL(th)+"?once=1", nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := th.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}

// TestDashboardStatsAnonymousHub: a hub that lets anonymous clients subscribe still wants a
// token for the stats.
func TestDashboardStatsAnonymousHub(t *testing.T) {
	m := metrics.New()
	th := newTestHubWith(t, func(c *hub.Config) { c.Metrics = m }, func(c *server.Config) {
		c.Anonymous = true
		c.Stats = server.NewStatsSource(server.StatsConfig{Hub: c.Hub}, m)
	})
	resp, err := th.Client.Get(statsURL(th) + "?once=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if want := "the live stats need a JWT allowed to subscribe to /.well-known/mercure/stats\n"; resp.StatusCode != http.StatusUnauthorized || string(b) != want {
		t.Fatalf("%d %q, want 401 %q", resp.StatusCode, b, want)
	}
}

// TestDashboardStatsStream reads the stream on the hub's address while a small load runs:
// exact totals (the stream's own events are not deliveries), the busiest topics by
// subscribers and by deliveries, replays, publish latency, and this node.
func TestDashboardStatsStream(t *testing.T) {
	th, _ := statsHub(t)
	const a, b = "https://example.com/a", "https://example.com/b"
	tpl := "https://example.com/{x}"
	sub := bearer(mercureToken(t, nil, []string{"*"}))
	var streams []*stream
	for range 3 {
		streams = append(streams, th.subscribe(t, "topic="+url.QueryEscape(a), sub))
	}
	streams = append(streams, th.subscribe(t, "topic="+url.QueryEscape(b), sub))
	wild := th.subscribe(t, "topic="+url.QueryEscape(tpl), sub)

	next := openStats(t, th.Client, statsURL(th), mercureToken(t, nil, []string{server.StatsTopic}))
	first := next() // the watch has begun: deliveries by topic are counted from here

	var ids []string
	for i := range 5 {
		ids = append(ids, th.publish(t, url.Values{"topic": {a}, "data": {"a" + strconv.Itoa(i)}}))
	}
	for i := range 2 {
		th.publish(t, url.Values{"topic": {b}, "data": {"b" + strconv.Itoa(i)}})
	}
	for _, s := range streams[:3] {
		for range 5 {
			s.next(t)
		}
	}
	for range 2 {
		streams[3].next(t)
	}
	for range 7 {
		wild.next(t)
	}
	// A late subscriber replays the last three updates of a.
	late := th.subscribe(t, "topic="+url.QueryEscape(a)+"&lastEventID="+url.QueryEscape(ids[1]), sub)
	for range 3 {
		late.next(t)
	}

	const delivered = 5*4 + 2*2 + 3
	var st server.Stats
	var latency []server.Latency
	deadline := time.Now().Add(5 * time.Second)
	for st = next(); st.Totals.Delivered < delivered || st.Totals.Replayed < 3; st = next() {
		latency = append(latency, st.PublishLatency)
		if time.Now().After(deadline) {
			t.Fatalf("totals %+v", st.Totals)
		}
	}
	latency = append(latency, st.PublishLatency)
	if first.Totals.Published != 0 || st.Totals.Published != 7 || st.Totals.Delivered != delivered ||
		st.Totals.Replays != 1 || st.Totals.Replayed != 3 || st.Totals.Connections != 6 || st.Subscribers != 6 {
		t.Fatalf("totals %+v, subscribers %d", st.Totals, st.Subscribers)
	}
	wantSubs := []hub.TopicCount{{Topic: a, Count: 4}, {Topic: b, Count: 1}, {Topic: tpl, Count: 1}}
	if !slices.Equal(st.TopSubscribed, wantSubs) {
		t.Fatalf("top subscribed %+v, want %+v", st.TopSubscribed, wantSubs)
	}
	// Deliveries by the updates' topic: a reached 3 exact and 1 template subscriber 5 times,
	// b 1 and 1 twice; replays are not deliveries of the dispatch loops.
	wantDelivered := []hub.TopicCount{{Topic: a, Count: 20}, {Topic: b, Count: 4}}
	if !slices.Equal(st.TopDelivered, wantDelivered) || st.TopDeliveredSeconds <= 0 || st.TopDeliveredSeconds > 60 {
		t.Fatalf("top delivered %+v over %.1f s, want %+v", st.TopDelivered, st.TopDeliveredSeconds, wantDelivered)
	}
	var publishes uint64
	for _, l := range latency {
		publishes += l.Count
		if l.Count > 0 && (l.P50Seconds <= 0 || l.P99Seconds < l.P50Seconds) {
			t.Fatalf("latency %+v", l)
		}
	}
	if publishes != 7 {
		t.Fatalf("publish latency windows counted %d publishes, want 7: %+v", publishes, latency)
	}
	if st.Queue != (server.QueueFill{QueueSize: 100}) || !st.TransportHealth.Reachable || st.TransportHealth.Lag != 0 {
		t.Fatalf("queue %+v, transport %+v", st.Queue, st.TransportHealth)
	}
	if len(st.Nodes) != 1 || !st.Nodes[0].Self || st.Nodes[0].Tag != th.Hub.Tag() || st.Nodes[0].Subscribers != 6 {
		t.Fatalf("nodes %+v", st.Nodes)
	}
}
