package memory_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
	"github.com/heraldhub/herald/transport/transporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Factory{
		Open: func(t *testing.T, _ string, opts transporttest.Options) transport.Transport {
			return memory.New(memory.Options{Size: opts.Size, MaxBytes: opts.MaxBytes, SystemSize: opts.SystemSize})
		},
	})
}

// TestAgainstModel drives the ring with random appends, reads and lookups and compares every
// answer with a plain slice that applies the same retention rule.
func TestAgainstModel(t *testing.T) {
	ctx := t.Context()
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 7))
		size := 1 + rng.IntN(40)
		maxBytes := int64(200 + rng.IntN(4000))
		tr := memory.New(memory.Options{Size: size, MaxBytes: maxBytes})
		var model []*transport.Update
		var bytes int64
		var head uint64
		for op := range 600 {
			switch rng.IntN(3) {
			case 0, 1:
				u := &transport.Update{
					ID:     fmt.Sprintf("id-%d", rng.IntN(300)),
					Topics: []string{"t"},
					Data:   strings.Repeat("x", rng.IntN(300)),
				}
				dup := slices.ContainsFunc(model, func(m *transport.Update) bool { return m.ID == u.ID })
				err := tr.Append(ctx, u)
				if dup {
					if !errors.Is(err, transport.ErrDuplicateID) {
						t.Fatalf("seed %d op %d: duplicate append = %v", seed, op, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("seed %d op %d: append: %v", seed, op, err)
				}
				head++
				if u.Seq != head {
					t.Fatalf("seed %d op %d: Seq %d, want %d", seed, op, u.Seq, head)
				}
				cost := memory.Cost(u)
				for len(model) > 0 && (len(model) >= size || bytes+cost > maxBytes) {
					bytes -= memory.Cost(model[0])
					model = model[1:]
				}
				model = append(model, u)
				bytes += cost
			case 2:
				after := uint64(rng.IntN(int(head) + 2))
				limit := 1 + rng.IntN(50)
				got, err := tr.Read(ctx, after, limit, false)
				if err != nil {
					t.Fatalf("seed %d op %d: read: %v", seed, op, err)
				}
				var want []*transport.Update
				for _, m := range model {
					if m.Seq > after && len(want) < limit {
						want = append(want, m)
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d op %d: Read(%d, %d) = %d updates, want %d", seed, op, after, limit, len(got), len(want))
				}
				id := fmt.Sprintf("id-%d", rng.IntN(300))
				seq, err := tr.Lookup(ctx, id)
				i := slices.IndexFunc(model, func(m *transport.Update) bool { return m.ID == id })
				switch {
				case i < 0 && !errors.Is(err, transport.ErrUnknownID):
					t.Fatalf("seed %d op %d: Lookup(%q) = %d, %v; want ErrUnknownID", seed, op, id, seq, err)
				case i >= 0 && (err != nil || seq != model[i].Seq):
					t.Fatalf("seed %d op %d: Lookup(%q) = %d, %v; want %d", seed, op, id, seq, err, model[i].Seq)
				}
			}
		}
		_ = tr.Close()
	}
}
