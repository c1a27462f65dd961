// Package memory is the in-process Transport: bounded rings of recent updates held in RAM.
//
// It suits tests, development and single-node hubs that do not need history to survive a
// restart. Publishers' updates are retained under a count and a byte budget, system updates
// (transport.Update.System) under bounds of their own; the oldest of each class go first.
package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/ring"
)

// Defaults for Options' zero values.
const (
	DefaultSize           = 10_000
	DefaultMaxBytes       = 64 << 20
	DefaultSystemSize     = 10_000
	DefaultSystemMaxBytes = 16 << 20
)

// Options bound what the log retains. Zero values take the defaults above.
type Options struct {
	// Size is the number of publishers' updates kept for history (Last-Event-ID replay).
	Size int
	// MaxBytes bounds the summed size of retained publishers' updates (data, topics, id, type).
	MaxBytes int64
	// SystemSize is the number of system updates (subscription events, hub-to-hub control
	// updates) kept, apart from Size.
	SystemSize int
	// SystemMaxBytes bounds the summed size of retained system updates.
	SystemMaxBytes int64
}

// Transport is the in-memory log. Create it with New.
type Transport struct {
	mu       sync.Mutex
	user     *ring.Ring    // publishers' updates
	system   *ring.Ring    // system updates
	head     uint64        // Seq of the newest update; 0 when none was ever appended
	appended chan struct{} // closed and replaced at every Append, to wake waiting readers
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
	if opts.SystemSize <= 0 {
		opts.SystemSize = DefaultSystemSize
	}
	if opts.SystemMaxBytes <= 0 {
		opts.SystemMaxBytes = DefaultSystemMaxBytes
	}
	return &Transport{
		user:     ring.New(opts.Size, opts.MaxBytes),
		system:   ring.New(opts.SystemSize, opts.SystemMaxBytes),
		appended: make(chan struct{}),
	}
}

// Cost is the retention cost of an update, in bytes, shared by the bounded transports.
func Cost(u *transport.Update) int64 { return ring.Cost(u) }

// Append implements transport.Transport.
func (t *Transport) Append(_ context.Context, u *transport.Update) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return transport.ErrClosed
	}
	if _, ok := t.lookupLocked(u.ID); ok {
		return fmt.Errorf("memory: append %q: %w", u.ID, transport.ErrDuplicateID)
	}
	t.head++
	u.Seq = t.head
	if u.System {
		t.system.Push(u)
	} else {
		t.user.Push(u)
	}
	close(t.appended)
	t.appended = make(chan struct{})
	return nil
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
			out := ring.Merge(t.user.After(after, limit), t.system.After(after, limit), limit)
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

// lookupLocked finds a retained ID in either class. t.mu must be held.
func (t *Transport) lookupLocked(id string) (uint64, bool) {
	if seq, ok := t.user.Lookup(id); ok {
		return seq, true
	}
	return t.system.Lookup(id)
}

// Lookup implements transport.Transport.
func (t *Transport) Lookup(_ context.Context, id string) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, transport.ErrClosed
	}
	seq, ok := t.lookupLocked(id)
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
