package bench

import (
	"runtime"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 10 minutes, with 3 significant digits.
const (
	histMin    = 1
	histMax    = 10 * 60 * 1_000_000
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// Latency summarises a latency histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min_ms"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// clampMicros keeps a measure inside the histogram's range.
func clampMicros(us int64) int64 { return min(max(us, histMin), histMax) }

// recorder is a histogram sharded to keep concurrent recorders off one lock.
type recorder struct {
	shards []recShard
}

type recShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte // keep shards' locks on different cache lines
}

func newRecorder() *recorder {
	r := &recorder{shards: make([]recShard, 2*runtime.GOMAXPROCS(0))}
	for i := range r.shards {
		r.shards[i].h = newHist()
	}
	return r
}

// record adds a value in microseconds; key spreads callers over the shards.
func (r *recorder) record(key int, us int64) {
	s := &r.shards[key%len(r.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(clampMicros(us))
	s.mu.Unlock()
}

// merged returns one histogram holding every value recorded.
func (r *recorder) merged() *hdrhistogram.Histogram {
	h := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		h.Merge(s.h)
		s.mu.Unlock()
	}
	return h
}

// encodeHist serialises a histogram for a worker's report (the compressed HdrHistogram V2
// format); decodeHist reads it back. Merging decoded histograms is exact: same geometry.
func encodeHist(h *hdrhistogram.Histogram) []byte {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil
	}
	return b
}

func decodeHist(b []byte) (*hdrhistogram.Histogram, error) {
	if len(b) == 0 {
		return newHist(), nil
	}
	return hdrhistogram.Decode(b)
}
