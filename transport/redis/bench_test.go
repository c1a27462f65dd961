package redis

import (
	"math/rand/v2"
	"testing"

	"github.com/redis/rueidis"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
)

// fill appends n updates through the pipelined script calls, quickly.
func fill(b testing.TB, tr *Transport, rng *rand.Rand, n int) {
	execs := make([]rueidis.LuaExec, n)
	for i := range execs {
		execs[i] = tr.appendExec(logtest.BenchUpdate(rng, i))
	}
	tr.bulk(b, execs)
}

// BenchmarkAppend measures appends at steady state (the log is full, so every append also
// drops the oldest update) against a redis-server that fsyncs its append-only file at every
// write (appendfsync always) when the benchmark starts its own.
func BenchmarkAppend(b *testing.B) { logtest.BenchmarkAppend(b, openFilled) }

// BenchmarkReadHistory measures a catch-up read of 100 000 updates in pages of 1000.
func BenchmarkReadHistory(b *testing.B) { logtest.BenchmarkReadHistory(b, openFilled) }

// openFilled opens a node on a new stream bounded to size updates, filled by fill.
func openFilled(b *testing.B, size int, rng *rand.Rand) transport.Transport {
	opts := serverOptions(b)
	opts.Stream, opts.Size = logtest.StreamName(b), size
	tr := openT(b, opts)
	fill(b, tr, rng, size)
	return tr
}
