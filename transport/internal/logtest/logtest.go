// Package logtest holds what the tests and benchmarks of the transports (bolt, redis, nats)
// share beyond the conformance suite of transporttest: small helpers (updates, reading a
// whole log, a logger that writes to the test), the multi-node scenarios that the cluster
// transports run alike (Cluster, LaggingReader), and the benchmark loops. It is imported by
// tests only.
package logtest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhub/herald/transport"
)

// Upd returns a small update with the ID prefix-i, for tests that check IDs and order.
func Upd(prefix string, i int) *transport.Update {
	return &transport.Update{
		ID:     fmt.Sprintf("%s-%d", prefix, i),
		Topics: []string{fmt.Sprintf("https://example.com/items/%d", i%100)},
		Data:   fmt.Sprintf(`{"n":%d}`, i),
	}
}

// ReadAll reads the whole retained log of tr, without waiting, in pages of 1000.
func ReadAll(t testing.TB, tr transport.Transport) []*transport.Update {
	t.Helper()
	var out []*transport.Update
	var after uint64
	for {
		page, err := tr.Read(context.Background(), after, 1000, false)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
		after = page[len(page)-1].Seq
	}
}

// Head returns tr's head, failing the test on an error.
func Head(t testing.TB, tr transport.Transport) uint64 {
	t.Helper()
	h, err := tr.Head(context.Background())
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	return h
}

// Logger logs to t at debug level, for tests that want to see the transport's warnings.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var streams atomic.Uint64

// StreamName returns a stream name that no other test uses, even on a shared server. It is
// made of the test's name, the time and a counter, without '/', ' ' or '.' (which a
// JetStream stream name must not contain).
func StreamName(t testing.TB) string {
	name := strings.NewReplacer("/", "-", " ", "-", ".", "-").Replace(strings.ToLower(t.Name()))
	return fmt.Sprintf("herald-test-%s-%d-%d", name, time.Now().UnixNano(), streams.Add(1))
}

// Cluster runs the cluster scenario on three nodes (three transports on one new, empty
// log): every node tails the log from the start while publishers append through nodes 0
// and 1, each also re-publishing one of its own IDs through the other node (which must
// refuse it) and racing another publisher for shared IDs (exactly one wins). Every node must
// then have read the whole log, in one order, and report the same head.
func Cluster(t *testing.T, nodes [3]transport.Transport) {
	const publishers, each = 4, 100
	const total = publishers*each + publishers/2*each/10
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Every node tails the log from the start.
	got := make([][]*transport.Update, len(nodes))
	var tailing sync.WaitGroup
	for n, tr := range nodes {
		tailing.Go(func() {
			var after uint64
			for len(got[n]) < total {
				ups, err := tr.Read(ctx, after, 50, true)
				if err != nil {
					t.Errorf("node %d tailing: %v", n, err)
					return
				}
				got[n] = append(got[n], ups...)
				after = ups[len(ups)-1].Seq
			}
		})
	}
	// Publishers on nodes 0 and 1. Each also re-publishes one of its own earlier IDs
	// through the other node, which must refuse it; and races another publisher, on the
	// other node, to publish a shared ID: exactly one of them wins.
	var publishing sync.WaitGroup
	var dups, raceWins atomic.Int64
	for p := range publishers {
		publishing.Go(func() {
			tr, other := nodes[p%2], nodes[(p+1)%2]
			for i := range each {
				if err := tr.Append(ctx, Upd(fmt.Sprintf("pub%d", p), i)); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				if i%10 == 9 {
					err := other.Append(ctx, Upd(fmt.Sprintf("pub%d", p), i/2))
					if !errors.Is(err, transport.ErrDuplicateID) {
						t.Errorf("publisher %d: re-publishing its own id through the other node = %v, want ErrDuplicateID", p, err)
					}
					dups.Add(1)
				}
				if i%10 == 0 {
					err := other.Append(ctx, Upd(fmt.Sprintf("race%d", p/2), i))
					switch {
					case err == nil:
						raceWins.Add(1)
					case !errors.Is(err, transport.ErrDuplicateID):
						t.Errorf("publisher %d: racing for a shared id: %v", p, err)
					}
				}
			}
		})
	}
	publishing.Wait()
	// Pairs of publishers (0 and 1, 2 and 3) raced for each race ID: one win per ID.
	if want := int64(publishers / 2 * each / 10); raceWins.Load() != want {
		t.Errorf("%d race IDs stored, want %d (one per ID)", raceWins.Load(), want)
	}
	tailing.Wait()
	if t.Failed() {
		return
	}
	want := ReadAll(t, nodes[2])
	if len(want) != total {
		t.Fatalf("the log holds %d updates, want %d", len(want), total)
	}
	seen := map[string]bool{}
	for i, u := range want {
		if seen[u.ID] {
			t.Fatalf("update %q stored twice", u.ID)
		}
		seen[u.ID] = true
		for n := range nodes {
			if got[n][i].Seq != u.Seq || got[n][i].ID != u.ID {
				t.Fatalf("node %d update %d = %d %q, want %d %q", n, i, got[n][i].Seq, got[n][i].ID, u.Seq, u.ID)
			}
		}
	}
	for n, tr := range nodes {
		if h := Head(t, tr); h != want[total-1].Seq {
			t.Fatalf("node %d head %d, want %d", n, h, want[total-1].Seq)
		}
	}
	t.Logf("%d updates; %d duplicates refused across nodes", total, dups.Load())
}

// LaggingReader checks that a reader far behind reads on from its own position: tr is a
// node whose log holds exactly Upd("lag", i) for i below n (appended through another node),
// and waiting reads from the start must return them all, in order, within 20 s.
func LaggingReader(t *testing.T, tr transport.Transport, n int) {
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	var after uint64
	count := 0
	for count < n {
		ups, err := tr.Read(ctx, after, 300, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups {
			if u.Seq != after+1 || u.ID != fmt.Sprintf("lag-%d", count) {
				t.Fatalf("read %d %q after %d, want %d lag-%d", u.Seq, u.ID, after, after+1, count)
			}
			after = u.Seq
			count++
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of %d updates", count, n)
		}
	}
}

// BenchUpdate looks like a typical publish: a UUID id, one topic, a few hundred bytes of
// JSON.
func BenchUpdate(rng *rand.Rand, i int) *transport.Update {
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

// BenchAppend is the timed part of an append benchmark: it resets the timer, appends ups
// (b.N of them) from the given number of concurrent publishers, stops the timer and returns
// the time taken; the first failed append fails the benchmark.
func BenchAppend(b *testing.B, tr transport.Transport, ups []*transport.Update, publishers int) time.Duration {
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
	return elapsed
}

// OpenFilled opens a transport on a new log bounded to size updates and fills it with size
// updates of BenchUpdate drawn from rng, as quickly as the transport allows.
type OpenFilled func(b *testing.B, size int, rng *rand.Rand) transport.Transport

// BenchmarkAppend measures appends at steady state, with 1, 8 and 64 concurrent publishers:
// the log is full, so every append also drops the oldest update. It reports appends/s.
func BenchmarkAppend(b *testing.B, open OpenFilled) {
	for _, publishers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("publishers=%d", publishers), func(b *testing.B) {
			const size = 10_000
			rng := rand.New(rand.NewPCG(1, 2))
			tr := open(b, size, rng)
			ups := make([]*transport.Update, b.N)
			for i := range ups {
				ups[i] = BenchUpdate(rng, size+i)
			}
			elapsed := BenchAppend(b, tr, ups, publishers)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
		})
	}
}

// BenchmarkReadHistory measures a catch-up read of 100 000 updates in pages of 1000, and
// reports updates/s.
func BenchmarkReadHistory(b *testing.B, open OpenFilled) {
	const n, page = 100_000, 1000
	tr := open(b, n, rand.New(rand.NewPCG(1, 2)))
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
