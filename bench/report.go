package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Result is what every scenario returns.
type Result interface {
	// Passed reports whether the run's checks passed.
	Passed() bool
	// Failures lists what went wrong, one line each.
	Failures() []string
	// WriteTable writes a readable report.
	WriteTable(w io.Writer) error
}

func (r *FanoutResult) Passed() bool        { return r.OK }
func (r *FanoutResult) Failures() []string  { return r.Problems }
func (r *IdleResult) Passed() bool          { return r.OK }
func (r *IdleResult) Failures() []string    { return r.Problems }
func (r *CatchupResult) Passed() bool       { return r.OK }
func (r *CatchupResult) Failures() []string { return r.Problems }
func (r *PublishResult) Passed() bool       { return r.OK }
func (r *PublishResult) Failures() []string { return r.Problems }

// table is a two-column report.
type table struct {
	title string
	rows  [][2]string
}

func (t *table) add(key, format string, args ...any) {
	t.rows = append(t.rows, [2]string{key, fmt.Sprintf(format, args...)})
}

func (t *table) latency(key string, l Latency) {
	if l.Count == 0 {
		t.add(key, "-")
		return
	}
	t.add(key, "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, %d samples)",
		ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), ms(l.Mean), l.Count)
}

func (t *table) verdict(ok bool, problems []string, okText string) {
	if ok {
		t.add("result", "OK: %s", okText)
		return
	}
	t.add("result", "FAILED")
	for _, p := range problems {
		t.add("", "%s", p)
	}
}

func (t *table) write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, t.title)
	for _, r := range t.rows {
		fmt.Fprintf(tw, "  %s\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func procs(n int) string {
	if n <= 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}

func (r *FanoutResult) WriteTable(w io.Writer) error {
	t := &table{title: fmt.Sprintf("fanout  %s  (%s)", r.Hub, procs(r.Procs))}
	t.add("subscribers", "%d connected of %d, over %d topics, in %.2fs (%.0f connections/s)", r.Connected, r.Subscribers, r.Topics, r.ConnectSeconds, r.ConnectionsPerSecond)
	t.add("published", "%d of %d updates by %d publishers in %.2fs (%.0f/s), %d errors", r.Published, r.Updates, r.Publishers, r.PublishSeconds, r.PublishesPerSecond, r.PublishErrors)
	t.latency("publish latency", r.PublishLatency)
	t.add("delivered", "%d of %d events in %.2fs: %.0f events/s", r.Check.Delivered, r.Check.Expected, r.Seconds, r.EventsPerSecond)
	t.latency("latency", r.Latency)
	t.add("reconnects", "%d", r.Reconnects)
	t.add("lost/dup/order", "%d lost, %d duplicated, %d out of order, %d unexpected", r.Check.Lost, r.Check.Duplicated, r.Check.OutOfOrder, r.Check.Unexpected)
	t.verdict(r.OK, r.Problems, "every subscriber got every update of its topic once, in order")
	return t.write(w)
}

func (r *IdleResult) WriteTable(w io.Writer) error {
	t := &table{title: fmt.Sprintf("idle  %s  (%s)", r.Hub, procs(r.Procs))}
	t.add("connections", "%d opened of %d in %.2fs: %.0f connections/s (%d refused)", r.Connected, r.Connections, r.ConnectSeconds, r.ConnectionsPerSecond, r.Failed)
	t.add("hold", "%.1fs, %d still on their first connection, %d reconnects", r.HoldSeconds, r.StillOpen, r.Reconnects)
	if r.PID != 0 {
		t.add("hub RSS", "%s before, %s open, %s after closing (pid %d)", kib(r.RSSBeforeKiB), kib(r.RSSOpenKiB), kib(r.RSSAfterKiB), r.PID)
		t.add("per connection", "%.1f KiB", r.KiBPerConnection)
		t.add("returned", "%.0f%% of the growth after closing", math.Max(r.ReturnedPercent, 0))
	}
	t.verdict(r.OK, r.Problems, "every connection opened")
	return t.write(w)
}

func kib(v int64) string {
	if v >= 10*1024 {
		return fmt.Sprintf("%.1f MiB", float64(v)/1024)
	}
	return fmt.Sprintf("%d KiB", v)
}

func (r *CatchupResult) WriteTable(w io.Writer) error {
	t := &table{title: fmt.Sprintf("catchup  %s", r.Hub)}
	t.add("published", "%d of %d updates by %d publishers in %.2fs (%.0f/s), %d errors", r.Published, r.Updates, r.Publishers, r.PublishSeconds, r.PublishesPerSecond, r.PublishErrors)
	t.add("Last-Event-ID", "sent %s, answered %q", r.LastEventID, r.ResponseLastEventID)
	t.add("caught up", "%d of %d updates in %.3fs: %.0f updates/s (first after %.1f ms)", r.Check.Delivered, r.Check.Expected, r.Seconds, r.UpdatesPerSecond, r.FirstEventSeconds*1000)
	t.add("reconnects", "%d", r.Reconnects)
	t.add("lost/dup/order", "%d lost, %d duplicated, %d out of order, %d unexpected", r.Check.Lost, r.Check.Duplicated, r.Check.OutOfOrder, r.Check.Unexpected)
	t.verdict(r.OK, r.Problems, "every update replayed once, in order")
	return t.write(w)
}

func (r *PublishResult) WriteTable(w io.Writer) error {
	t := &table{title: fmt.Sprintf("publish  %s", r.Hub)}
	t.add("published", "%d of %d updates by %d publishers in %.2fs: %.0f publishes/s, %d errors", r.Published, r.Updates, r.Publishers, r.Seconds, r.PublishesPerSecond, r.Errors)
	t.latency("latency", r.Latency)
	t.verdict(r.OK, r.Problems, "every publish answered 200")
	return t.write(w)
}

// summary is the one-line reason a run failed, for the error message.
func summary(r Result) string {
	p := r.Failures()
	if len(p) == 0 {
		return "failed"
	}
	return strings.Join(p, "; ")
}
