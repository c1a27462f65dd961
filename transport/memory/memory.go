// Package memory is the in-process Transport: a bounded ring of recent updates held in RAM.
//
// It suits tests, development and single-node hubs that do not need history to survive a
// restart. Retention is bounded by a count and a byte budget; the oldest updates go first.
package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/heraldhub/herald/transport"
)

// Defaults for Options' zero values.
const (
	DefaultSize     = 10_000
	DefaultMaxBytes = 64 << 20
)

// Options bound what the log retains. Zero values take the defaults above.
type Options struct {
	// Size is the number of updates kept for history (Last-Event-ID replay).
	Size int
	// MaxBytes bounds the summed size of retained updates (data, topics, id, type).
	MaxBytes int64
}

// Transport is the in-memory log. Create it with New.
type Transport struct {
	size     int
	maxBytes int64

	mu       sync.Mutex
	ring     []*transport.Update // ring[(start+i)%len(ring)] for i < count, oldest first
	start    int
	count    int
	bytes    int64
	head     uint64            // Seq of the newest update; 0 when none was ever appended
	ids      map[string]uint64 // ID → Seq of retained updates
	appended chan struct{}     // closed and replaced at every Append, to wake waiting readers
	closed   bool
}

var _ transport.Transport = (*Transport)(nil)

// New returns an empty in-memory log.
func New(opts Options) *Transport {
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	return &Transport{
		size:     opts.Size,
		maxBytes: opts.MaxBytes,
		ids:      make(map[string]uint64),
		appended: make(chan struct{}),
	}
}

// Cost is the retention cost of an update, in bytes, shared by the bounded transports.
func Cost(u *transport.Update) int64 {
	n := len(u.ID) + len(u.Type) + len(u.Data) + 64
	for _, t := range u.Topics {
		n += len(t) + 16
	}
	return int64(n)
}

// Append implements transport.Transport.
func (t *Transport) Append(_ context.Context, u *transport.Update) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	if _, dup := t.ids[u.ID]; dup {
		return fmt.Errorf("memory: append %q: %w", u.ID, transport.ErrDuplicateID)
	}
	if t.ring == nil {
		t.ring = make([]*transport.Update, 0, min(t.size, 1024))
	}
	t.head++
	u.Seq = t.head
	cost := Cost(u)
	for t.count > 0 && (t.count >= t.size || t.bytes+cost > t.maxBytes) {
		t.dropOldest()
	}
	t.push(u)
	t.bytes += cost
	t.ids[u.ID] = u.Seq
	close(t.appended)
	t.appended = make(chan struct{})
	return nil
}

// push adds u after the newest entry, growing the ring up to size. t.mu must be held.
func (t *Transport) push(u *transport.Update) {
	if t.count < len(t.ring) {
		t.ring[(t.start+t.count)%len(t.ring)] = u
		t.count++
		return
	}
	if len(t.ring) < t.size {
		// Grow: unroll into a new slice so the ring starts at 0 again.
		grown := make([]*transport.Update, 0, min(t.size, max(2*len(t.ring), 16)))
		for i := 0; i < t.count; i++ {
			grown = append(grown, t.ring[(t.start+i)%len(t.ring)])
		}
		t.ring = append(grown, u)
		t.ring = t.ring[:cap(t.ring)]
		for i := t.count + 1; i < len(t.ring); i++ {
			t.ring[i] = nil
		}
		t.start = 0
		t.count++
		return
	}
	panic("memory: push on a full ring") // unreachable: Append drops first
}

// dropOldest removes the oldest retained update. t.mu must be held.
func (t *Transport) dropOldest() {
	u := t.ring[t.start]
	t.ring[t.start] = nil
	t.start = (t.start + 1) % len(t.ring)
	t.count--
	t.bytes -= Cost(u)
	delete(t.ids, u.ID)
}

// Read implements transport.Transport.
func (t *Transport) Read(ctx context.Context, after uint64, limit int, wait bool) ([]*transport.Update, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("memory: read: limit must be positive, got %d", limit)
	}
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, transport.ErrClosed
		}
		if after < t.head {
			out := t.readLocked(after, limit)
			t.mu.Unlock()
			return out, nil
		}
		woken := t.appended
		t.mu.Unlock()
		if !wait {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-woken:
		}
	}
}

// readLocked copies out up to limit retained updates after the given Seq. t.mu must be held.
func (t *Transport) readLocked(after uint64, limit int) []*transport.Update {
	oldest := t.head - uint64(t.count) + 1 // Seq of ring[start]; Seqs are contiguous here
	skip := 0
	if after >= oldest {
		skip = int(after - oldest + 1)
	}
	n := min(t.count-skip, limit)
	out := make([]*transport.Update, n)
	for i := range n {
		out[i] = t.ring[(t.start+skip+i)%len(t.ring)]
	}
	return out
}

// Lookup implements transport.Transport.
func (t *Transport) Lookup(_ context.Context, id string) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, transport.ErrClosed
	}
	seq, ok := t.ids[id]
	if !ok {
		return 0, fmt.Errorf("memory: lookup %q: %w", id, transport.ErrUnknownID)
	}
	return seq, nil
}

// Head implements transport.Transport.
func (t *Transport) Head(context.Context) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, transport.ErrClosed
	}
	return t.head, nil
}

// Close implements transport.Transport. Waiting readers return ErrClosed.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.appended)
	}
	return nil
}
