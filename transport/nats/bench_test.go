package nats

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/codec"
	"github.com/heraldhub/herald/transport/internal/logtest"
)

// fill appends n updates quickly: asynchronous publishes with the same headers as Append.
func fill(b testing.TB, tr *Transport, rng *rand.Rand, n int) {
	js, err := jetstream.New(tr.nc, jetstream.WithPublishAsyncMaxPending(1024))
	if err != nil {
		b.Fatal(err)
	}
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		u := logtest.BenchUpdate(rng, i)
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: tr.subject(u.ID), Data: codec.Encode(u), Header: nats.Header{}},
			jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("async publishes did not complete")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend measures appends at steady state (the stream is full, so every append also
// drops the oldest message), with JetStream file storage.
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
