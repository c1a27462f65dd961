package nats

import (
	"sort"
	"sync"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
)

// tail is what this node's watcher has read of the log: its position and the newest updates,
// so that waiting readers (above all the hub's dispatch loop) are served from memory instead
// of each asking the server again.
type tail struct {
	mu     sync.Mutex
	head   uint64              // Seq of the newest update the watcher has read
	base   uint64              // ups holds every retained update with base < Seq <= head
	first  uint64              // no update before it is retained (0: unknown)
	ups    []*transport.Update // oldest first
	bytes  int64               // summed memory.Cost of ups
	notify chan struct{}       // closed and replaced when head advances, and at close
	closed bool
}

func newTail(head uint64) *tail {
	return &tail{head: head, base: head, notify: make(chan struct{})}
}

// read returns up to limit retained updates after the given Seq when the tail holds them.
// covered is false when the tail cannot answer (after is older than what it holds): the
// caller reads the stream instead. When it returns no update, woken is closed once the head
// advances (or the tail closes).
func (t *tail) read(after uint64, limit int) (ups []*transport.Update, covered bool, woken <-chan struct{}, err error) {
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

// push adds updates the watcher read, oldest first, with a Seq before which nothing is
// retained any more, and wakes waiting readers.
func (t *tail) push(ups []*transport.Update, first uint64) {
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
	for drop < len(t.ups) && (t.ups[drop].Seq < t.first || len(t.ups)-drop > tailCount ||
		(t.bytes > tailBytes && len(t.ups)-drop > 1)) {
		t.bytes -= memory.Cost(t.ups[drop])
		t.base = t.ups[drop].Seq
		drop++
	}
	clear(t.ups[:drop])
	t.ups = t.ups[drop:]
	t.wake()
}

// reset forgets what the tail holds and restarts it at head, after the log went back.
func (t *tail) reset(head uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.ups)
	t.ups, t.bytes = nil, 0
	t.head, t.base, t.first = head, head, 0
	t.wake()
}

// close makes every waiting and later read return ErrClosed.
func (t *tail) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.notify)
	}
}

// wake wakes waiting readers. t.mu must be held.
func (t *tail) wake() {
	if !t.closed {
		close(t.notify)
		t.notify = make(chan struct{})
	}
}
