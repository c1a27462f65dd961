package bench

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Resources a soak samples. A value is -1 when no source gave it.
const (
	ResRSS        = "rss"
	ResHeap       = "heap"
	ResGoroutines = "goroutines"
	ResFDs        = "open_fds"
	ResStore      = "store"
)

// resourceOrder is the order of the resources in tables and CSV columns.
var resourceOrder = []string{ResRSS, ResHeap, ResGoroutines, ResFDs, ResStore}

// promMetric is the Prometheus metric each resource is read from on a hub's /metrics.
var promMetric = map[string]string{
	ResRSS:        "process_resident_memory_bytes",
	ResHeap:       "go_memstats_heap_inuse_bytes",
	ResGoroutines: "go_goroutines",
	ResFDs:        "process_open_fds",
}

// Sample is one reading of the hub's resources during a soak.
type Sample struct {
	// Seconds since the soak started publishing.
	Seconds float64 `json:"seconds"`
	// Values by resource (ResRSS…); bytes for memory and store, counts otherwise; -1 unknown.
	Values map[string]float64 `json:"values"`
	// Burst marks a sample taken while a connection burst was open or settling: it is drawn,
	// but left out of the growth fit.
	Burst bool `json:"burst,omitempty"`
	// Online subscribers and Delivered checked deliveries at that moment.
	Online    int64 `json:"online"`
	Delivered int64 `json:"delivered"`
}

// sampler reads a hub's resources from its Prometheus endpoint, /proc/PID, and the size of
// its store files.
type sampler struct {
	metricsURL string
	pid        int
	storeFiles []string
	httpClient *http.Client
}

// read takes one sample; an unreachable source leaves its values at -1 and returns the
// error, so that a hub restarting does not stop the soak.
func (s *sampler) read(ctx context.Context) (map[string]float64, error) {
	v := map[string]float64{}
	for _, r := range resourceOrder {
		v[r] = -1
	}
	var firstErr error
	keep := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	if s.metricsURL != "" {
		if err := s.readMetrics(ctx, v); err != nil {
			keep(err)
		}
	}
	if s.pid > 0 {
		if v[ResRSS] < 0 {
			if kib, err := ReadRSS(s.pid); err == nil {
				v[ResRSS] = float64(kib * 1024)
			} else {
				keep(err)
			}
		}
		if v[ResFDs] < 0 {
			if ents, err := os.ReadDir("/proc/" + strconv.Itoa(s.pid) + "/fd"); err == nil {
				v[ResFDs] = float64(len(ents))
			} else {
				keep(fmt.Errorf("open files of process %d: %w", s.pid, err))
			}
		}
	}
	if len(s.storeFiles) > 0 {
		var total int64
		for _, f := range s.storeFiles {
			fi, err := os.Stat(f)
			if err != nil {
				if !os.IsNotExist(err) {
					keep(fmt.Errorf("store file: %w", err))
				}
				continue
			}
			total += fi.Size()
		}
		v[ResStore] = float64(total)
	}
	return v, firstErr
}

// readMetrics fills v from the Prometheus text exposition at s.metricsURL.
func (s *sampler) readMetrics(ctx context.Context, v map[string]float64) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	resp, err := s.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metrics: %s answered %s", s.metricsURL, resp.Status)
	}
	return parseMetrics(resp.Body, v)
}

// parseMetrics reads the unlabelled samples of the metrics in promMetric from a Prometheus
// text exposition.
func parseMetrics(r io.Reader, v map[string]float64) error {
	want := map[string]string{}
	for res, m := range promMetric {
		want[m] = res
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		res, ok := want[f[0]]
		if !ok {
			continue
		}
		x, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return fmt.Errorf("metrics: %s: %w", f[0], err)
		}
		v[res] = x
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Trend is how one resource evolved over a soak.
type Trend struct {
	Resource string `json:"resource"`
	// Start and End are the first and last known values; Min and Max over the whole run.
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Fitted is how many samples (after warm-up, outside bursts) the slope was fitted on.
	Fitted int `json:"fitted"`
	// SlopePerHour is the least-squares slope over those samples, StdErrPerHour its standard
	// error, both in the resource's unit per hour; LimitPerHour the allowed growth.
	SlopePerHour  float64 `json:"slope_per_hour"`
	StdErrPerHour float64 `json:"stderr_per_hour"`
	LimitPerHour  float64 `json:"limit_per_hour"`
	// Growing is set when the slope exceeds the limit by more than two standard errors:
	// the resource keeps growing, beyond what noise explains.
	Growing bool `json:"growing"`
}

// Growth is a detected growth, or not, of a series of (seconds, value) points.
type Growth struct {
	Points        int
	SlopePerHour  float64
	StdErrPerHour float64
	// Growing: SlopePerHour - 2·StdErrPerHour > limit.
	Growing bool
}

// DetectGrowth fits a least-squares line through the points (x in seconds) and reports
// whether its slope, per hour, exceeds limitPerHour by more than two standard errors, so
// that a flat but noisy series passes and a steady climb fails. Fewer than three points,
// points all at one time, or a negative limit (no check) never count as growing.
func DetectGrowth(xs, ys []float64, limitPerHour float64) Growth {
	n := len(xs)
	g := Growth{Points: n}
	if n < 3 || len(ys) != n {
		return g
	}
	var mx, my float64
	for i := range n {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(n)
	my /= float64(n)
	var sxx, sxy float64
	for i := range n {
		dx := xs[i] - mx
		sxx += dx * dx
		sxy += dx * (ys[i] - my)
	}
	if sxx == 0 {
		return g
	}
	slope := sxy / sxx
	var sse float64
	for i := range n {
		r := ys[i] - (my + slope*(xs[i]-mx))
		sse += r * r
	}
	se := math.Sqrt(sse / float64(n-2) / sxx)
	g.SlopePerHour = slope * 3600
	g.StdErrPerHour = se * 3600
	g.Growing = limitPerHour >= 0 && g.SlopePerHour-2*g.StdErrPerHour > limitPerHour
	return g
}

// trends summarises each resource that has values: start, end, range, and the growth
// after warmup (in seconds) outside bursts, against limits (per hour, by resource).
func trends(samples []Sample, warmup float64, limits map[string]float64) []Trend {
	var out []Trend
	for _, r := range resourceOrder {
		t := Trend{Resource: r, LimitPerHour: limits[r], Min: math.Inf(1), Max: math.Inf(-1)}
		var xs, ys []float64
		known := 0
		for _, s := range samples {
			v := s.Values[r]
			if v < 0 {
				continue
			}
			if known == 0 {
				t.Start = v
			}
			known++
			t.End = v
			t.Min = min(t.Min, v)
			t.Max = max(t.Max, v)
			if s.Seconds >= warmup && !s.Burst {
				xs = append(xs, s.Seconds)
				ys = append(ys, v)
			}
		}
		if known == 0 {
			continue
		}
		g := DetectGrowth(xs, ys, t.LimitPerHour)
		t.Fitted, t.SlopePerHour, t.StdErrPerHour, t.Growing = g.Points, g.SlopePerHour, g.StdErrPerHour, g.Growing
		out = append(out, t)
	}
	return out
}

// WriteSamplesCSV writes samples as CSV, one row per sample, for plotting: seconds, each
// resource (empty when unknown), burst (0/1), online subscribers, checked deliveries.
func WriteSamplesCSV(w io.Writer, samples []Sample) error {
	sw, err := newSampleWriter(w)
	if err != nil {
		return err
	}
	for _, s := range samples {
		if err := sw.write(s); err != nil {
			return err
		}
	}
	return nil
}

// sampleWriter writes samples as CSV rows as they are taken, so that a long soak's samples
// are on disk even if it is interrupted.
type sampleWriter struct{ cw *csv.Writer }

// newSampleWriter writes the header.
func newSampleWriter(w io.Writer) (*sampleWriter, error) {
	cw := csv.NewWriter(w)
	head := append([]string{"seconds"}, resourceOrder...)
	head = append(head, "burst", "online", "delivered")
	if err := cw.Write(head); err != nil {
		return nil, err
	}
	cw.Flush()
	return &sampleWriter{cw: cw}, cw.Error()
}

// write writes one row and flushes it.
func (sw *sampleWriter) write(s Sample) error {
	row := []string{strconv.FormatFloat(s.Seconds, 'f', 1, 64)}
	for _, r := range resourceOrder {
		v, ok := s.Values[r]
		if !ok || v < 0 {
			row = append(row, "")
			continue
		}
		row = append(row, strconv.FormatFloat(v, 'f', -1, 64))
	}
	burst := "0"
	if s.Burst {
		burst = "1"
	}
	row = append(row, burst, strconv.FormatInt(s.Online, 10), strconv.FormatInt(s.Delivered, 10))
	if err := sw.cw.Write(row); err != nil {
		return err
	}
	sw.cw.Flush()
	return sw.cw.Error()
}
