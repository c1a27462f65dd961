package bolt

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhub/herald/transport"
)

// benchUpdate looks like a typical publish: a UUID id, one topic, a few hundred bytes of JSON.
func benchUpdate(rng *rand.Rand, i int) *transport.Update {
	var id [16]byte
	for j := range id {
		id[j] = byte(rng.UintN(256))
	}
	return &transport.Update{
		ID:     "urn:uuid:" + hex.EncodeToString(id[:]),
		Topics: []string{fmt.Sprintf("https://example.com/books/%d", i%1000)},
		Data:   fmt.Sprintf(`{"@id":"/books/%d","title":"%s","price":%d}`, i, strings.Repeat("lorem ipsum ", 15), i%97),
	}
}

// BenchmarkAppend measures durable appends (each one fsynced) at steady state: the log is full,
// so every commit also drops the oldest updates. Concurrent publishers share commits.
func BenchmarkAppend(b *testing.B) {
	for _, cf := range []struct {
		name string
		freq float64
	}{{"", 0}, {"cleanup=0.3/", 0.3}, {"cleanup=forced/", -1}} { // "" is the default, 1
		for _, publishers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%spublishers=%d", cf.name, publishers), func(b *testing.B) {
				benchmarkAppend(b, publishers, cf.freq)
			})
		}
	}
}

func benchmarkAppend(b *testing.B, publishers int, freq float64) {
	const size = 10_000
	tr := openT(b, tempPath(b), Options{Size: size, CleanupFrequency: freq})
	rng := rand.New(rand.NewPCG(1, 2))
	fill := make([]*transport.Update, size)
	for i := range fill {
		fill[i] = benchUpdate(rng, i)
	}
	bulkAppend(b, tr, fill)
	ups := make([]*transport.Update, b.N)
	for i := range ups {
		ups[i] = benchUpdate(rng, size+i)
	}
	commits := tr.commits
	ctx := context.Background()
	var next sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for p := range publishers {
		next.Go(func() {
			for i := p; i < b.N; i += publishers {
				if err := tr.Append(ctx, ups[i]); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		})
	}
	next.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	if err := tr.Close(); err != nil { // waits for the committer: commits is stable
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	if c := tr.commits - commits; c > 0 {
		b.ReportMetric(float64(b.N)/float64(c), "appends/commit")
	}
}

// BenchmarkReadHistory measures a catch-up read of 100 000 updates in pages of 1000.
func BenchmarkReadHistory(b *testing.B) {
	const n, page = 100_000, 1000
	tr := openT(b, tempPath(b), Options{Size: n})
	rng := rand.New(rand.NewPCG(1, 2))
	ups := make([]*transport.Update, n)
	for i := range ups {
		ups[i] = benchUpdate(rng, i)
	}
	tr.db.NoSync = true
	bulkAppend(b, tr, ups)
	tr.db.NoSync = false
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		var after uint64
		read := 0
		for {
			got, err := tr.Read(ctx, after, page, false)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			read += len(got)
			after = got[len(got)-1].Seq
		}
		if read != n {
			b.Fatalf("read %d updates, want %d", read, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkCodec compares the stored binary encoding with JSON for a typical update.
func BenchmarkCodec(b *testing.B) {
	u := benchUpdate(rand.New(rand.NewPCG(1, 2)), 1)
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
