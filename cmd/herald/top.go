package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhub/herald/internal/cli"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// topCommand implements `herald top`: the live figures of a hub, read from /stats on its
// operations address, shown in the terminal once a second with rates, or printed as JSON.
func topCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald top", flag.ContinueOnError)
	opsURL := fs.String("hub-ops", "http://localhost:2019", "URL of the hub's operations address (metrics_addr)")
	once := fs.Bool("once", false, "print one snapshot and exit")
	asJSON := fs.Bool("json", false, "print snapshots as JSON (the document of /stats?once=1), one a line")
	cli.SetUsage(fs, "top [flags]", "Shows a running hub's live figures (subscribers, publishes, deliveries, bytes, memory,\nopen files), refreshed every second, from /stats on its operations address.")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	base := strings.TrimSuffix(*opsURL, "/")
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	if *once {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := getStats(ctx, client, base+"/stats?once=1")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st server.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return fmt.Errorf("reading %s/stats: %w", base, err)
		}
		return printStats(stdout, st, nil, *asJSON)
	}
	resp, err := getStats(ctx, client, base+"/stats")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	stop := context.AfterFunc(ctx, func() { resp.Body.Close() })
	defer stop()
	r := sse.NewReader(resp.Body)
	var prev *server.Stats
	for {
		msg, err := r.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the usual way to leave top
			}
			return fmt.Errorf("reading %s/stats: %w", base, err)
		}
		var st server.Stats
		if err := json.Unmarshal([]byte(msg.Data), &st); err != nil {
			return fmt.Errorf("reading %s/stats: %w", base, err)
		}
		if !*asJSON {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home and clear, as top does
		}
		if err := printStats(stdout, st, prev, *asJSON); err != nil {
			return err
		}
		prev = &st
	}
}

// getStats asks u and returns the response when it is a 200.
func getStats(ctx context.Context, client *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("asking %s: %w", u, err)
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
	fmt.Fprintf(w, "herald %s   transport %s   up %s\n", st.Version, st.Transport, (time.Duration(st.UptimeSeconds) * time.Second).String())
	fmt.Fprintf(w, "subscribers %d   goroutines %d   rss %s   open files %s\n\n", st.Subscribers, st.Goroutines, mib(st.RSSBytes), files(st.OpenFiles, st.MaxOpenFiles))
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
	return nil
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
