// Command soakplot draws the resource samples of `herald bench soak --samples FILE` as an
// SVG: resident memory, heap in use, goroutines, open files and store size over time, one
// line per hub. Samples taken during a connection burst are drawn as dots off the line, so
// that the line shows the steady state the growth check fits.
//
//	go run ./scripts/soakplot -o docs/images/soak.svg herald=herald.csv reference=ref.csv
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// panel is one chart: a CSV column, its title and the divisor to its unit.
type panel struct {
	column, title string
	scale         float64
}

var panels = []panel{
	{"rss", "resident memory (MiB)", 1 << 20},
	{"heap", "heap in use (MiB)", 1 << 20},
	{"goroutines", "goroutines", 1},
	{"open_fds", "open files", 1},
	{"store", "store files (MiB)", 1 << 20},
}

var colors = []string{"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e"}

// point is one sample of one column, x in minutes.
type point struct {
	x, y  float64
	burst bool
}

// series is one hub's samples: by column.
type series struct {
	name string
	cols map[string][]point
}

func main() {
	out := flag.String("o", "soak.svg", "SVG file to write")
	warmup := flag.Float64("warmup", 0, "draw the end of the warm-up at this many minutes (0: none)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: soakplot [-o FILE] NAME=SAMPLES.csv [NAME=SAMPLES.csv...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var all []series
	for _, arg := range flag.Args() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			name, path = arg, arg
		}
		s, err := load(name, path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soakplot:", err)
			os.Exit(1)
		}
		all = append(all, s)
	}
	if err := os.WriteFile(*out, []byte(plot(all, *warmup)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "soakplot:", err)
		os.Exit(1)
	}
}

// load reads a samples CSV: a header naming the columns, then one row per sample.
func load(name, path string) (series, error) {
	f, err := os.Open(path)
	if err != nil {
		return series{}, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return series{}, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return series{}, fmt.Errorf("%s: no samples", path)
	}
	idx := map[string]int{}
	for i, h := range rows[0] {
		idx[h] = i
	}
	for _, c := range []string{"seconds", "burst"} {
		if _, ok := idx[c]; !ok {
			return series{}, fmt.Errorf("%s: no %q column", path, c)
		}
	}
	s := series{name: name, cols: map[string][]point{}}
	for _, row := range rows[1:] {
		x, err := strconv.ParseFloat(row[idx["seconds"]], 64)
		if err != nil {
			return series{}, fmt.Errorf("%s: %w", path, err)
		}
		burst := row[idx["burst"]] == "1"
		for _, p := range panels {
			i, ok := idx[p.column]
			if !ok || row[i] == "" {
				continue
			}
			y, err := strconv.ParseFloat(row[i], 64)
			if err != nil {
				return series{}, fmt.Errorf("%s: %s: %w", path, p.column, err)
			}
			s.cols[p.column] = append(s.cols[p.column], point{x / 60, y / p.scale, burst})
		}
	}
	return s, nil
}

// Geometry of one panel.
const (
	pw, ph     = 380, 190 // plot area
	left, top  = 60, 30   // margins inside a cell
	cellW      = left + pw + 30
	cellH      = top + ph + 45
	perRow     = 2
	legendRows = 1
)

func plot(all []series, warmup float64) string {
	var shown []panel
	for _, p := range panels {
		for _, s := range all {
			if len(s.cols[p.column]) > 0 {
				shown = append(shown, p)
				break
			}
		}
	}
	rows := (len(shown) + perRow - 1) / perRow
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, perRow*cellW, rows*cellH+20*legendRows+10)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>`)
	xmax := 0.0
	for _, s := range all {
		for _, pts := range s.cols {
			for _, p := range pts {
				xmax = max(xmax, p.x)
			}
		}
	}
	xmax = niceCeil(xmax)
	for i, p := range shown {
		ox, oy := (i%perRow)*cellW, (i/perRow)*cellH
		ymax := 0.0
		for _, s := range all {
			for _, pt := range s.cols[p.column] {
				ymax = max(ymax, pt.y)
			}
		}
		ymax = niceCeil(ymax)
		x0, y0 := float64(ox+left), float64(oy+top+ph)
		sx := func(x float64) float64 { return x0 + x/xmax*pw }
		sy := func(y float64) float64 { return y0 - y/ymax*ph }
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-weight="bold">%s</text>`, x0, oy+top-12, p.title)
		for k := 0; k <= 4; k++ {
			y := ymax * float64(k) / 4
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, x0, sy(y), x0+pw, sy(y))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`, x0-4, sy(y)+4, short(y))
			x := xmax * float64(k) / 4
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`, sx(x), y0+16, short(x))
		}
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`, x0, y0, x0+pw, y0)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`, x0, y0, x0, y0-ph)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">minutes</text>`, x0+pw/2, y0+32)
		if warmup > 0 && warmup < xmax {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#999" stroke-dasharray="4 3"/>`, sx(warmup), y0, sx(warmup), y0-ph)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#777" font-size="10">warm-up</text>`, sx(warmup)+3, y0-ph+10)
		}
		for si, s := range all {
			c := colors[si%len(colors)]
			var line []string
			for _, pt := range s.cols[p.column] {
				if pt.burst {
					fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="1.5" fill="%s" fill-opacity="0.4"/>`, sx(pt.x), sy(pt.y), c)
					continue
				}
				line = append(line, fmt.Sprintf("%.1f,%.1f", sx(pt.x), sy(pt.y)))
			}
			if len(line) > 0 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`, strings.Join(line, " "), c)
			}
		}
	}
	ly, x := rows*cellH+10, left
	for si, s := range all {
		c := colors[si%len(colors)]
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`, x, ly, x+24, ly, c)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`, x+30, ly+4, s.name)
		x += 30 + 7*len(s.name) + 24 // about 7 px a character at 12 px
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">dots: samples during a connection burst (left out of the growth fit)</text>`, x, ly+4)
	b.WriteString(`</svg>`)
	return b.String()
}

// niceCeil rounds v up to a round multiple of a power of ten (1 for 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// short writes an axis label.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
