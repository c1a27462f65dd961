package bolt

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
)

// BenchmarkAppend measures appends at steady state: the log is full, so every bbolt commit
// also drops the oldest updates. By default each append is synced in the write-ahead log
// before it returns, and concurrent publishers share syncs; the sync=100ms variants
// acknowledge once the log is written and sync it every 100 ms (Options.SyncInterval).
func BenchmarkAppend(b *testing.B) {
	for _, v := range []struct {
		name string
		opts Options
	}{
		{"", Options{}}, // the default: sync before acknowledging, cleanup_frequency 1
		{"sync=100ms/", Options{SyncInterval: 100 * time.Millisecond}},
		{"cleanup=0.3/", Options{CleanupFrequency: 0.3}},
		{"cleanup=forced/", Options{CleanupFrequency: -1}},
	} {
		for _, publishers := range []int{1, 8, 16, 64} {
			b.Run(fmt.Sprintf("%spublishers=%d", v.name, publishers), func(b *testing.B) {
				benchmarkAppend(b, publishers, v.opts)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, publishers int, opts Options) {
	const size = 10_000
	opts.Size = size
	tr := openT(b, tempPath(b), opts)
	rng := rand.New(rand.NewPCG(1, 2))
	fill := make([]*transport.Update, size)
	for i := range fill {
		fill[i] = logtest.BenchUpdate(rng, i)
	}
	bulkAppend(b, tr, fill)
	ups := make([]*transport.Update, b.N)
	for i := range ups {
		ups[i] = logtest.BenchUpdate(rng, size+i)
	}
	commits, applies := tr.commits, tr.applies
	elapsed := logtest.BenchAppend(b, tr, ups, publishers)
	if err := tr.Close(); err != nil { // waits for the committer and the applier
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if c := tr.commits - commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/sync") // write-ahead log syncs
	}
	if c := tr.applies - applies; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/bbolt-tx")
	}
}

// BenchmarkReadHistory measures a catch-up read of 100 000 updates in pages of 1000.
func BenchmarkReadHistory(b *testing.B) {
	logtest.BenchmarkReadHistory(b, func(b *testing.B, n int, rng *rand.Rand) transport.Transport {
		tr := openT(b, tempPath(b), Options{Size: n})
		ups := make([]*transport.Update, n)
		for i := range ups {
			ups[i] = logtest.BenchUpdate(rng, i)
		}
		tr.db.NoSync = true
		bulkAppend(b, tr, ups)
		tr.db.NoSync = false
		return tr
	})
}

// BenchmarkCodec compares the stored binary encoding with JSON for a typical update.
func BenchmarkCodec(b *testing.B) {
	u := logtest.BenchUpdate(rand.New(rand.NewPCG(1, 2)), 1)
	u.Type = "book-updated"
	bin := encodeUpdate(u)
	js, _ := json.Marshal(u)
	b.Run("binary/encode", func(b *testing.B) {
		for b.Loop() {
			_ = encodeUpdate(u)
		}
		b.ReportMetric(float64(len(bin)), "bytes/update")
	})
	b.Run("json/encode", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(u)
		}
		b.ReportMetric(float64(len(js)), "bytes/update")
	})
	b.Run("binary/decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeUpdate(1, bin); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/decode", func(b *testing.B) {
		for b.Loop() {
			var v transport.Update
			if err := json.Unmarshal(js, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
