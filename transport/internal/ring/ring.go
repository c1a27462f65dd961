// Package ring is a bounded, in-memory run of updates in Seq order, with an index by ID. The
// memory transport keeps each retention class (publishers' updates, system updates) in one;
// the bolt transport keeps its system updates in one. Merge interleaves what two classes
// return for one Read.
package ring

import (
	"sort"

	"github.com/heraldhub/herald/transport"
)

// Cost is the retention cost of an update, in bytes, shared by the bounded transports.
func Cost(u *transport.Update) int64 {
	n := len(u.ID) + len(u.Type) + len(u.Data) + 64
	for _, t := range u.Topics {
		n += len(t) + 16
	}
	return int64(n)
}

// Ring holds the newest updates pushed into it, at most Size of them and at most MaxBytes of
// summed Cost (but always the newest one). Seqs must grow from one Push to the next; they may
// have gaps. The zero Ring is not usable: create it with New. A Ring is not safe for
// concurrent use: its owner locks it.
type Ring struct {
	size     int
	maxBytes int64
	buf      []*transport.Update // buf[(start+i)%len(buf)] for i < count, oldest first
	start    int
	count    int
	bytes    int64
	ids      map[string]uint64 // ID → Seq of the held updates
}

// New returns an empty ring with the given bounds (both positive).
func New(size int, maxBytes int64) *Ring {
	return &Ring{size: size, maxBytes: maxBytes, ids: make(map[string]uint64)}
}

// Len returns the number of updates held.
func (r *Ring) Len() int { return r.count }

// Push adds u, whose Seq is greater than any held, after dropping the oldest updates until
// the bounds hold with it.
func (r *Ring) Push(u *transport.Update) {
	cost := Cost(u)
	for r.count > 0 && (r.count >= r.size || r.bytes+cost > r.maxBytes) {
		r.dropOldest()
	}
	if r.count == len(r.buf) {
		r.grow()
	}
	r.buf[(r.start+r.count)%len(r.buf)] = u
	r.count++
	r.bytes += cost
	r.ids[u.ID] = u.Seq
}

// grow makes room for one more update, up to size: the buffer doubles (it starts small, so
// that a lightly used ring costs little), unrolled so that it starts at 0 again.
func (r *Ring) grow() {
	grown := make([]*transport.Update, min(r.size, max(2*len(r.buf), 16)))
	for i := range r.count {
		grown[i] = r.buf[(r.start+i)%len(r.buf)]
	}
	r.buf, r.start = grown, 0
}

// dropOldest removes the oldest held update.
func (r *Ring) dropOldest() {
	u := r.buf[r.start]
	r.buf[r.start] = nil
	r.start = (r.start + 1) % len(r.buf)
	r.count--
	r.bytes -= Cost(u)
	if r.ids[u.ID] == u.Seq {
		delete(r.ids, u.ID)
	}
	if r.count == 0 && len(r.ids) == 0 {
		r.ids = make(map[string]uint64) // a Go map never shrinks after a peak
	}
}

// at returns the i-th oldest held update.
func (r *Ring) at(i int) *transport.Update { return r.buf[(r.start+i)%len(r.buf)] }

// After returns up to limit held updates with Seq greater than after, oldest first, in a new
// slice.
func (r *Ring) After(after uint64, limit int) []*transport.Update {
	i := sort.Search(r.count, func(i int) bool { return r.at(i).Seq > after })
	n := min(r.count-i, limit)
	if n <= 0 {
		return nil
	}
	out := make([]*transport.Update, n)
	for k := range n {
		out[k] = r.at(i + k)
	}
	return out
}

// Lookup returns the Seq of the held update with this ID.
func (r *Ring) Lookup(id string) (uint64, bool) {
	seq, ok := r.ids[id]
	return seq, ok
}

// Merge interleaves a and b, each in Seq order, into one run in Seq order of at most limit
// updates. Callers pass each class's first limit updates after the same position, so the
// result is exactly the first limit updates of both classes after it.
func Merge(a, b []*transport.Update, limit int) []*transport.Update {
	switch {
	case len(b) == 0:
		return a[:min(len(a), limit)]
	case len(a) == 0:
		return b[:min(len(b), limit)]
	}
	out := make([]*transport.Update, 0, min(len(a)+len(b), limit))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && a[0].Seq < b[0].Seq {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}
