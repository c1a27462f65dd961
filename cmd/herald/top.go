package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/cli"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// topCommand implements `herald top`: the live figures of a hub, shown in the terminal once a
// second with rates, or printed as JSON. It reads /stats on the operations address (no token),
// or, with --hub, the private topic /.well-known/mercure/stats on the hub's address with a JWT
// allowed to subscribe to it, the stream the web UI's dashboard reads.
func topCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald top", flag.ContinueOnError)
	opsURL := fs.String("hub-ops", "http://localhost:2019", "URL of the hub's operations address (metrics_addr)")
	hubURL := fs.String("hub", "", "read the hub's address instead: its URL, e.g. https://example.com/.well-known/mercure (needs a JWT)")
	tok := fs.String("token", "", "with --hub: a JWT whose mercure.subscribe claim matches "+server.StatsTopic+" (default: minted from --key)")
	key := fs.String("key", "", "with --hub: HMAC key to mint that JWT (default $MERCURE_SUBSCRIBER_JWT_KEY, $MERCURE_PUBLISHER_JWT_KEY, $MERCURE_JWT_KEY)")
	alg := fs.String("alg", "HS256", "algorithm of the minted JWT")
	once := fs.Bool("once", false, "print one snapshot and exit")
	asJSON := fs.Bool("json", false, "print snapshots as JSON (the document of /stats?once=1), one a line")
	cli.SetUsage(fs, "top [flags]", "Shows a running hub's live figures (subscribers, publishes, deliveries, bytes, latency,\nbusiest topics, nodes, memory, open files), refreshed every second, from /stats on its\noperations address, or with --hub from the stats topic on the hub's address.")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	statsURL := strings.TrimSuffix(*opsURL, "/") + "/stats"
	// token gives the JWT of each request: none for the operations address, --token, or one
	// minted from the key for every connection (so that a long watch outlives a token).
	token := func() (string, error) { return "", nil }
	if *hubURL != "" {
		statsURL = strings.TrimSuffix(*hubURL, "/") + "/stats"
		k := firstNonEmpty(*key, getenv("MERCURE_SUBSCRIBER_JWT_KEY"), getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY"))
		switch {
		case *tok != "":
			token = func() (string, error) { return *tok, nil }
		case k != "":
			token = func() (string, error) {
				return mintToken(mintOptions{alg: *alg, key: k, subscribe: []string{server.StatsTopic}, ttl: time.Hour})
			}
		default:
			return errors.New("--hub needs a JWT allowed to subscribe to " + server.StatsTopic + ": give --token or --key")
		}
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	if *once {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := getStats(ctx, client, statsURL+"?once=1", token)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st server.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fmt.Errorf("reading %s: %w", statsURL, err)
		}
		return printStats(stdout, st, nil, *asJSON)
	}
	var prev *server.Stats
	show := func(st server.Stats) error {
		if !*asJSON {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home and clear, as top does
		}
		if err := printStats(stdout, st, prev, *asJSON); err != nil {
			return err
		}
		prev = &st
		return nil
	}
	for {
		err := followStats(ctx, client, statsURL, token, show)
		if ctx.Err() != nil {
			return nil // interrupted: the usual way to leave top
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		// The hub ended the stream (write_timeout, or the token's expiry): ask again.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// followStats reads the stream of live stats at u and calls show with each snapshot until the
// stream ends (io.EOF when the hub ended it) or fails.
func followStats(ctx context.Context, client *http.Client, u string, token func() (string, error), show func(server.Stats) error) error {
	resp, err := getStats(ctx, client, u, token)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()
	r := sse.NewReader(resp.Body)
	for {
		msg, err := r.Next()
		if errors.Is(err, io.EOF) {
			return err
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", u, err)
		}
		var st server.Stats
		if err := json.Unmarshal([]byte(msg.Data), &st); err != nil {
			return fmt.Errorf("reading %s: %w", u, err)
		}
		if err := show(st); err != nil {
			return err
		}
	}
}

// getStats asks u, with the JWT that token gives when there is one, and returns the response
// when it is a 200.
func getStats(ctx context.Context, client *http.Client, u string, token func() (string, error)) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", u, err)
	}
	tok, err := token()
	if err != nil {
		return nil, err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("%s answered %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// printStats writes one snapshot: as a JSON line, or as a table with the rates since prev
// (none for the first).
func printStats(w io.Writer, st server.Stats, prev *server.Stats, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encoding the snapshot: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	th := st.TransportHealth
	health := "reachable"
	if !th.Reachable {
		health = "UNREACHABLE: " + th.Error
	}
	fmt.Fprintf(w, "herald %s   up %s   transport %s %s, lag %d\n", st.Version, (time.Duration(st.UptimeSeconds) * time.Second).String(), st.Transport, health, th.Lag)
	if s := th.Store; s != nil {
		limit := ""
		if s.MaxFileBytes > 0 {
			limit = " of " + mib(s.MaxFileBytes)
		}
		fmt.Fprintf(w, "store %s %s%s, keeps %d updates / %s\n", s.Path, mib(s.FileBytes), limit, s.RetainUpdates, mib(s.RetainBytes))
	}
	fmt.Fprintf(w, "subscribers %d   queues over half full %d (queue_size %d)   goroutines %d   rss %s   open files %s\n",
		st.Subscribers, st.Queue.AboveHalf, st.Queue.QueueSize, st.Goroutines, mib(st.RSSBytes), files(st.OpenFiles, st.MaxOpenFiles))
	if l := st.PublishLatency; l.Count > 0 {
		fmt.Fprintf(w, "publish latency p50 %s   p99 %s   (%d publishes in %.0f s)\n\n", seconds(l.P50Seconds), seconds(l.P99Seconds), l.Count, l.WindowSeconds)
	} else {
		fmt.Fprintf(w, "publish latency -   (no publish in %.0f s)\n\n", l.WindowSeconds)
	}
	fmt.Fprintf(w, "%-18s %14s %12s\n", "", "total", "per second")
	rows := []struct {
		name string
		now  func(server.Stats) uint64
	}{
		{"published", func(s server.Stats) uint64 { return s.Totals.Published }},
		{"delivered", func(s server.Stats) uint64 { return s.Totals.Delivered }},
		{"bytes written", func(s server.Stats) uint64 { return s.Totals.BytesWritten }},
		{"connections", func(s server.Stats) uint64 { return s.Totals.Connections }},
		{"slow disconnects", func(s server.Stats) uint64 { return s.Totals.SlowDisconnects }},
		{"history replays", func(s server.Stats) uint64 { return s.Totals.Replays }},
		{"updates replayed", func(s server.Stats) uint64 { return s.Totals.Replayed }},
	}
	for _, row := range rows {
		rate := "-"
		if prev != nil {
			if d := st.Time.Sub(prev.Time).Seconds(); d > 0 {
				rate = fmt.Sprintf("%.1f", float64(row.now(st)-row.now(*prev))/d)
			}
		}
		if _, err := fmt.Fprintf(w, "%-18s %14d %12s\n", row.name, row.now(st), rate); err != nil {
			return err
		}
	}
	const shown = 5
	tops := func(title string, list []hub.TopicCount) {
		fmt.Fprintf(w, "\n%s\n", title)
		if len(list) == 0 {
			fmt.Fprintln(w, "  (none)")
		}
		for _, e := range list[:min(shown, len(list))] {
			fmt.Fprintf(w, "  %10d  %s\n", e.Count, e.Topic)
		}
	}
	tops("busiest by subscribers", st.TopSubscribed)
	if st.TopDeliveredSeconds > 0 {
		tops(fmt.Sprintf("busiest by deliveries, last %.0f s", st.TopDeliveredSeconds), st.TopDelivered)
	} else {
		fmt.Fprintf(w, "\nbusiest by deliveries: counted only while a dashboard or top watches\n")
	}
	if len(st.Nodes) > 1 {
		fmt.Fprintf(w, "\n%-10s %-24s %12s %8s %10s\n", "node", "address", "subscribers", "lag", "heard")
		for _, n := range st.Nodes {
			heard := "self"
			if !n.Self {
				heard = fmt.Sprintf("%.0f s ago", n.SeenSecondsAgo)
			}
			fmt.Fprintf(w, "%-10s %-24s %12d %8d %10s\n", n.Tag, n.Addr, n.Subscribers, n.Lag, heard)
		}
	}
	return nil
}

// seconds formats a latency in milliseconds.
func seconds(s float64) string {
	return fmt.Sprintf("%.2f ms", s*1000)
}

// mib formats a byte count in MiB, or "?" when unknown.
func mib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// files formats open files against their limit, "?" standing for what is unknown.
func files(open int, limit int64) string {
	o, l := "?", "?"
	if open >= 0 {
		o = fmt.Sprint(open)
	}
	if limit >= 0 {
		l = fmt.Sprint(limit)
	}
	return o + "/" + l
}
