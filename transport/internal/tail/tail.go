// Package tail keeps, in memory, the newest updates that a cluster transport's watcher has
// read of the shared log, so that waiting readers on a node (above all the hub's dispatch
// loop) are served from memory instead of each asking the server again. The redis and nats
// transports share it.
package tail

import (
	"context"
	"sort"
	"sync"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
)

// Bounds of a Tail: it keeps the newest Count updates, and at most Bytes of their summed
// memory.Cost (but always the newest one), so that a node's memory does not grow with the log.
const (
	Count = 1024
	Bytes = 8 << 20
)

// Tail is what a node's watcher has read of the log: its position and the newest updates.
// Create it with New; it is safe for concurrent use.
type Tail struct {
	mu     sync.Mutex
	head   uint64              // Seq of the newest update the watcher has read
	base   uint64              // ups holds every retained update with base < Seq <= head
	first  uint64              // no update before it is retained (0: unknown)
	ups    []*transport.Update // oldest first
	bytes  int64               // summed memory.Cost of ups
	notify chan struct{}       // closed and replaced when head advances, and at close
	closed bool
}

// New returns an empty Tail whose watcher starts reading after head.
func New(head uint64) *Tail {
	return &Tail{head: head, base: head, notify: make(chan struct{})}
}

// Fetch reads up to limit updates after the given Seq from the server itself. Read calls it
// when the tail does not reach back far enough.
type Fetch func(ctx context.Context, after uint64, limit int) ([]*transport.Update, error)

// Read is a transport's Read with wait: it returns up to limit updates after the given Seq,
// from the tail when it holds them, from fetch when after is older than what the tail holds,
// and otherwise waits for the watcher to push some. It returns ctx's error when ctx ends
// first, and transport.ErrClosed once the tail is closed.
func (t *Tail) Read(ctx context.Context, after uint64, limit int, fetch Fetch) ([]*transport.Update, error) {
	for {
		ups, covered, woken, err := t.held(after, limit)
		switch {
		case err != nil:
			return nil, err
		case len(ups) > 0:
			return ups, nil
		case !covered:
			ups, err := fetch(ctx, after, limit)
			if err != nil || len(ups) > 0 {
				return ups, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-woken:
		}
	}
}

// held returns up to limit retained updates after the given Seq when the tail holds them.
// covered is false when the tail cannot answer (after is older than what it holds): the
// caller reads the server instead. When it returns no update, woken is closed once the head
// advances (or the tail closes).
func (t *Tail) held(after uint64, limit int) (ups []*transport.Update, covered bool, woken <-chan struct{}, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, nil, transport.ErrClosed
	}
	// Everything up to base is either held or dropped by the bounds when first > base.
	if after < t.base && t.first <= t.base {
		return nil, false, t.notify, nil
	}
	from := max(after+1, t.first)
	i := sort.Search(len(t.ups), func(i int) bool { return t.ups[i].Seq >= from })
	if n := min(len(t.ups)-i, limit); n > 0 {
		return append([]*transport.Update(nil), t.ups[i:i+n]...), true, nil, nil
	}
	return nil, true, t.notify, nil
}

// Push adds updates the watcher read, oldest first, with a Seq before which nothing is
// retained any more (the first retained Seq that the newest of them recorded; 0 when not
// known), and wakes waiting readers. Updates at or before the head are ignored.
func (t *Tail) Push(ups []*transport.Update, first uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, u := range ups {
		if u.Seq <= t.head {
			continue
		}
		t.ups = append(t.ups, u)
		t.bytes += memory.Cost(u)
		t.head = u.Seq
	}
	if first > t.first {
		t.first = first
	}
	drop := 0
	for drop < len(t.ups) && (t.ups[drop].Seq < t.first || len(t.ups)-drop > Count ||
		(t.bytes > Bytes && len(t.ups)-drop > 1)) {
		t.bytes -= memory.Cost(t.ups[drop])
		t.base = t.ups[drop].Seq
		drop++
	}
	clear(t.ups[:drop])
	t.ups = t.ups[drop:]
	t.wake()
}

// Reset forgets what the tail holds and restarts it at head, after the log went back.
func (t *Tail) Reset(head uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.ups)
	t.ups, t.bytes = nil, 0
	t.head, t.base, t.first = head, head, 0
	t.wake()
}

// Close makes every waiting and later Read return transport.ErrClosed.
func (t *Tail) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.notify)
	}
}

// wake wakes waiting readers. t.mu must be held.
func (t *Tail) wake() {
	if !t.closed {
		close(t.notify)
		t.notify = make(chan struct{})
	}
}
