package server

import (
	"math"
	"testing"
)

func TestQuantiles(t *testing.T) {
	bounds := []float64{.001, .01, .1, math.Inf(1)}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	for _, tc := range []struct {
		name             string
		cumulative, base []uint64
		want             Latency
	}{
		{"nothing", []uint64{0, 0, 0, 0}, nil, Latency{}},
		{"whole run", []uint64{10, 90, 100, 100}, nil, Latency{P50Seconds: .0055, P99Seconds: .091, Count: 100}},
		{"since the previous snapshot", []uint64{10, 90, 100, 100}, []uint64{10, 10, 10, 10}, Latency{P50Seconds: .0060625, P99Seconds: .0919, Count: 90}},
		{"nothing new", []uint64{10, 90, 100, 100}, []uint64{10, 90, 100, 100}, Latency{}},
		{"beyond the last bound", []uint64{0, 0, 0, 5}, nil, Latency{P50Seconds: .1, P99Seconds: .1, Count: 5}},
	} {
		got := quantiles(bounds, tc.cumulative, tc.base)
		if got.Count != tc.want.Count || !near(got.P50Seconds, tc.want.P50Seconds) || !near(got.P99Seconds, tc.want.P99Seconds) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
