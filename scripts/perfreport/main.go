// Command perfreport turns the results of scripts/perf.sh into the table of
// docs/performance.md (OUTDIR/report.md) and its plot (OUTDIR/perf.svg). Given the output
// directories of several runs, it reports the median of each figure over the runs (and
// writes into the first directory).
//
//	go run ./scripts/perfreport OUTDIR [OUTDIR...]
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// result holds the fields of herald bench's JSON output that the report uses.
type result struct {
	OK                   bool    `json:"ok"`
	EventsPerSecond      float64 `json:"events_per_second"`
	ConnectionsPerSecond float64 `json:"connections_per_second"`
	KiBPerConnection     float64 `json:"kib_per_connection"`
	RSSBefore            float64 `json:"rss_before_kib"`
	RSSOpen              float64 `json:"rss_open_kib"`
	RSSAfter             float64 `json:"rss_after_kib"`
	Latency              struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"latency"`
	Check struct {
		Expected  int `json:"expected"`
		Delivered int `json:"delivered"`
	} `json:"check"`
	Updates  int     `json:"updates"`
	Received int     `json:"received"`
	Seconds  float64 `json:"seconds"`
}

var hubs = []string{"ref", "floor", "herald"}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: perfreport OUTDIR [OUTDIR...]")
		os.Exit(2)
	}
	dirs := os.Args[1:]
	dir := dirs[0]
	// loadAll returns the result of a hub and scenario in every run that has one.
	loadAll := func(hub, name string) []*result {
		var out []*result
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, hub+"-"+name+".json"))
			if err != nil {
				continue
			}
			var r result
			if json.Unmarshal(b, &r) == nil {
				out = append(out, &r)
			}
		}
		return out
	}
	// median applies get to every run's result and returns the median of the valid values.
	median := func(hub, name string, get func(*result) (float64, bool)) (float64, bool) {
		var vs []float64
		for _, r := range loadAll(hub, name) {
			if v, ok := get(r); ok {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			return 0, false
		}
		slices.Sort(vs)
		if len(vs)%2 == 1 {
			return vs[len(vs)/2], true
		}
		return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
	}

	var md strings.Builder
	md.WriteString("| scenario | reference | floor hub | Herald | Herald ÷ reference | Herald ÷ floor |\n| --- | --- | --- | --- | --- | --- |\n")
	// row adds one line: the value of each hub for scenario, then Herald's ratios.
	row := func(scenario, label string, get func(*result) (float64, bool), format string, lowerIsBetter bool) {
		vals := map[string]float64{}
		cells := []string{label}
		for _, h := range hubs {
			v, ok := median(h, scenario, get)
			if !ok {
				cells = append(cells, "—")
				continue
			}
			vals[h] = v
			cells = append(cells, fmt.Sprintf(format, v))
		}
		for _, other := range []string{"ref", "floor"} {
			hv, ok1 := vals["herald"]
			ov, ok2 := vals[other]
			if !ok1 || !ok2 || hv == 0 || ov == 0 {
				cells = append(cells, "—")
				continue
			}
			ratio := hv / ov
			if lowerIsBetter {
				ratio = ov / hv
			}
			cells = append(cells, fmt.Sprintf("%.2f×", ratio))
		}
		md.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	okOnly := func(f func(*result) float64) func(*result) (float64, bool) {
		return func(r *result) (float64, bool) { return f(r), r.OK }
	}
	eps := okOnly(func(r *result) float64 { return r.EventsPerSecond })
	p99 := okOnly(func(r *result) float64 { return r.Latency.P99 })
	for _, s := range []struct{ name, label string }{
		{"A", "A: 1 000 subscribers, 1 topic, 1 000 updates: events/s"},
		{"B", "B: 10 000 subscribers, 1 topic, 200 updates: events/s"},
	} {
		row(s.name, s.label, eps, "%.0f", false)
	}
	row("B", "B: publish→receive p99 (ms)", p99, "%.0f", true)
	row("C", "C: 10 000 subscribers over 1 000 topics, 10 000 updates: events/s", eps, "%.0f", false)
	row("P", "P: 1 000 subscribers, 50 updates/s: p99 (ms)", p99, "%.1f", true)
	for _, n := range []string{"1000", "10000", "19500"} {
		row("idle-"+n, "resident memory per idle connection, "+n+" connections (KiB)", func(r *result) (float64, bool) {
			return r.KiBPerConnection, r.OK && r.KiBPerConnection > 0
		}, "%.1f", true)
	}
	row("idle-10000", "new connections per second (128 in flight, 10 000 connections)", okOnly(func(r *result) float64 { return r.ConnectionsPerSecond }), "%.0f", false)
	row("idle-19500", "RSS after 19 500 connections close, % of the RSS before", func(r *result) (float64, bool) {
		return 100 * r.RSSAfter / r.RSSBefore, r.RSSBefore > 0
	}, "%.0f %%", true)
	fmt.Fprintf(&md, "\nMedians over %d run(s).\n\n", len(dirs))
	for _, h := range hubs {
		for _, r := range loadAll(h, "idle-19500") {
			if r.RSSBefore > 0 {
				fmt.Fprintf(&md, "- %s, 19 500 idle connections: RSS %.1f MiB before, %.1f MiB open, %.1f MiB after closing.\n", name(h), r.RSSBefore/1024, r.RSSOpen/1024, r.RSSAfter/1024)
			}
		}
	}
	for _, h := range []string{"ref", "herald"} {
		for _, r := range loadAll(h, "replay") {
			rate := 0.0
			if r.Seconds > 0 {
				rate = float64(r.Received) / r.Seconds
			}
			fmt.Fprintf(&md, "- %s, replay after a restart on its persistent store: %d of %d missed updates received in %.2f s (%.0f updates/s, process start included).\n", name(h), r.Received, r.Updates, r.Seconds, rate)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(md.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Print(md.String())

	// The curve: events/s and p99 against subscribers.
	counts := []int{100, 1000, 5000, 10000, 19500}
	series := map[string][2][]float64{}
	for _, h := range hubs {
		var e, p []float64
		for _, c := range counts {
			name := fmt.Sprintf("curve-%d", c)
			ev, ok1 := median(h, name, eps)
			pv, ok2 := median(h, name, p99)
			if !ok1 || !ok2 {
				e, p = append(e, math.NaN()), append(p, math.NaN())
				continue
			}
			e, p = append(e, ev), append(p, pv)
		}
		series[h] = [2][]float64{e, p}
	}
	svg := plot(counts, series)
	if err := os.WriteFile(filepath.Join(dir, "perf.svg"), []byte(svg), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func name(h string) string {
	return map[string]string{"ref": "Reference hub", "floor": "Floor hub", "herald": "Herald"}[h]
}

var colors = map[string]string{"ref": "#d62728", "floor": "#7f7f7f", "herald": "#1f77b4"}

// plot draws two charts side by side: events/s and p99 latency against subscribers (log x).
func plot(counts []int, series map[string][2][]float64) string {
	const w, h, pad = 440, 300, 60
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, 2*w, h+40)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>`)
	for i, title := range []string{"delivered events/s", "publish→receive p99 (ms)"} {
		x0 := i * w
		maxY := 0.0
		for _, s := range series {
			for _, v := range s[i] {
				if !math.IsNaN(v) && v > maxY {
					maxY = v
				}
			}
		}
		if maxY == 0 {
			maxY = 1
		}
		maxY *= 1.1
		lx := func(c int) float64 {
			lo, hi := math.Log10(float64(counts[0])), math.Log10(float64(counts[len(counts)-1]))
			return float64(x0+pad) + (math.Log10(float64(c))-lo)/(hi-lo)*float64(w-pad-20)
		}
		ly := func(v float64) float64 { return float64(h-pad+20) - v/maxY*float64(h-pad-20) }
		fmt.Fprintf(&b, `<text x="%d" y="16" font-weight="bold">%s</text>`, x0+pad, title)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`, x0+pad, h-pad+20, x0+w-20, h-pad+20)
		fmt.Fprintf(&b, `<line x1="%d" y1="30" x2="%d" y2="%d" stroke="black"/>`, x0+pad, x0+pad, h-pad+20)
		for _, c := range counts {
			fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">%d</text>`, lx(c), h-pad+36, c)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">subscribers (log scale)</text>`, x0+w/2, h-pad+54)
		for k := 0; k <= 4; k++ {
			v := maxY * float64(k) / 4
			fmt.Fprintf(&b, `<text x="%d" y="%.0f" text-anchor="end">%s</text>`, x0+pad-4, ly(v)+4, short(v))
			fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#eee"/>`, x0+pad, ly(v), x0+w-20, ly(v))
		}
		for j, hub := range hubs {
			s, ok := series[hub]
			if !ok {
				continue
			}
			var pts []string
			for k, v := range s[i] {
				if math.IsNaN(v) {
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", lx(counts[k]), ly(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, lx(counts[k]), ly(v), colors[hub])
			}
			if len(pts) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), colors[hub])
			}
			if i == 0 {
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`, x0+pad+10+j*120, h+20, colors[hub], x0+pad+26+j*120, h+31, name(hub))
			}
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// short formats an axis value: 12k, 1.5M.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
