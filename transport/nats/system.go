package nats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/codec"
	"github.com/heraldhub/herald/transport/internal/ring"
)

// System updates (subscription events, hub-to-hub control updates) share the stream, and so
// the one order of stream sequences, but not its subjects: each goes to one of
// Options.SystemSize slot subjects, "<subject>.sys.<k>", and the stream keeps one message per
// subject (MaxMsgsPerSubject = 1; a publishers' update has a subject of its own anyway). A
// new system update replaces the one in its slot, so at most SystemSize are retained and they
// never push a publishers' update out; MaxMsgs and MaxBytes are raised by that share. Each
// node fills the slots in turn from a random one, so on one node exactly the newest
// SystemSize are retained; nodes appending at once may replace each other's a little early.
//
// A slot subject says nothing of the update's ID, so each node indexes the system updates its
// watcher delivers (sysIndex), before the tail serves them: whoever received one from this
// node finds it in Lookup. The duplicate check across both classes looks in that index and
// in the ID's subject before publishing; unlike the publishers' own check it is not atomic
// with the publish.

// sysIndex maps the IDs of the newest system updates the watcher delivered to their Seqs, and
// says how far the watcher got.
type sysIndex struct {
	mu     sync.Mutex
	ring   *ring.Ring
	seen   uint64        // Seq of the last message the watcher delivered
	notify chan struct{} // closed and replaced when seen advances, and at close
	closed bool
}

func newSysIndex(size int, head uint64) *sysIndex {
	return &sysIndex{ring: ring.New(size, math.MaxInt64), seen: head, notify: make(chan struct{})}
}

// delivered records that the watcher delivered u.
func (x *sysIndex) delivered(u *transport.Update) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if u.Seq <= x.seen {
		return
	}
	if u.System {
		x.ring.Push(u)
	}
	x.seen = u.Seq
	if !x.closed {
		close(x.notify)
		x.notify = make(chan struct{})
	}
}

// lookup returns the Seq of an indexed system update.
func (x *sysIndex) lookup(id string) (uint64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ring.Lookup(id)
}

// wait returns once the watcher has delivered seq, when ctx ends or at close.
func (x *sysIndex) wait(ctx context.Context, seq uint64) error {
	for {
		x.mu.Lock()
		seen, ch, closed := x.seen, x.notify, x.closed
		x.mu.Unlock()
		switch {
		case seen >= seq:
			return nil
		case closed:
			return transport.ErrClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (x *sysIndex) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		close(x.notify)
	}
}

// appendSystem publishes a system update on the next slot subject, after checking that no
// retained update has its ID, and returns once this node's watcher has delivered it (so that
// Lookup finds it here at once).
func (t *Transport) appendSystem(ctx context.Context, u *transport.Update) error {
	cctx, cancel := t.timeout(ctx)
	defer cancel()
	if _, ok := t.sys.lookup(u.ID); ok {
		return fmt.Errorf("nats: append %q: %w", u.ID, transport.ErrDuplicateID)
	}
	switch _, err := t.lookupSubject(cctx, u.ID); {
	case err == nil:
		return fmt.Errorf("nats: append %q: %w", u.ID, transport.ErrDuplicateID)
	case !errors.Is(err, transport.ErrUnknownID):
		return t.fail(ctx, fmt.Sprintf("append %q", u.ID), err)
	}
	slot := (t.slot.Add(1) - 1) % uint64(t.opts.SystemSize)
	msg := &nats.Msg{Subject: fmt.Sprintf("%s%d", t.sysPrefix, slot), Data: codec.Encode(u)}
	ack, err := t.publish(ctx, cctx, u.ID, msg)
	if err != nil {
		return err
	}
	u.Seq = ack.Sequence
	if err := t.sys.wait(cctx, ack.Sequence); err != nil {
		return t.fail(ctx, fmt.Sprintf("append %q: wait for the watcher", u.ID), err)
	}
	return nil
}

// lookupSystem finds a system update by ID in this node's index, and checks with the server,
// within cctx, that its slot still holds it.
func (t *Transport) lookupSystem(ctx, cctx context.Context, id string) (uint64, error) {
	seq, ok := t.sys.lookup(id)
	if !ok {
		return 0, fmt.Errorf("nats: lookup %q: %w", id, transport.ErrUnknownID)
	}
	msg, err := t.stream.GetMsg(cctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, fmt.Errorf("nats: lookup %q: %w", id, transport.ErrUnknownID)
	case err != nil:
		return 0, t.fail(ctx, fmt.Sprintf("lookup %q", id), err)
	}
	if got, ok := codec.DecodeID(string(msg.Data)); !ok || got != id {
		return 0, fmt.Errorf("nats: lookup %q: %w", id, transport.ErrUnknownID)
	}
	return seq, nil
}
