package redis

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"

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

// fill appends n updates through the pipelined script calls, quickly.
func fill(b testing.TB, tr *Transport, rng *rand.Rand, n int) {
	execs := make([]rueidis.LuaExec, n)
	for i := range execs {
		execs[i] = tr.appendExec(benchUpdate(rng, i))
	}
	tr.bulk(b, execs)
}

// BenchmarkAppend measures appends at steady state (the log is full, so every append also
// drops the oldest update) against a redis-server that fsyncs its append-only file at every
// write (appendfsync always) when the benchmark starts its own.
func BenchmarkAppend(b *testing.B) {
	for _, publishers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			const size = 10_000
			opts := serverOptions(b)
			opts.Stream, opts.Size = newStream(b), size
			tr := openT(b, opts)
			rng := rand.New(rand.NewPCG(1, 2))
			fill(b, tr, rng, size)
			ups := make([]*transport.Update, b.N)
			for i := range ups {
				ups[i] = benchUpdate(rng, size+i)
			}
			ctx := context.Background()
			var wg sync.WaitGroup
			var mu sync.Mutex
			var firstErr error
			b.ResetTimer()
			start := time.Now()
			for p := range publishers {
				wg.Go(func() {
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
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
		})
	}
}

// BenchmarkReadHistory measures a catch-up read of 100 000 updates in pages of 1000.
func BenchmarkReadHistory(b *testing.B) {
	const n, page = 100_000, 1000
	opts := serverOptions(b)
	opts.Stream, opts.Size = newStream(b), n
	tr := openT(b, opts)
	fill(b, tr, rand.New(rand.NewPCG(1, 2)), n)
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
