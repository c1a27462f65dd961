package hub

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// Reasons a subscriber is closed by the hub, reported by Subscriber.Err.
var (
	// ErrSlow means the subscriber's queue overflowed: it could not keep up with its updates.
	ErrSlow = errors.New("hub: subscriber too slow, queue full")
	// ErrShutdown means the hub is shutting down.
	ErrShutdown = errors.New("hub: shutting down")
)

// Event is one update ready to send: the update and its SSE frame, encoded once and shared by
// every subscriber that receives it. Both are immutable.
type Event struct {
	Update *transport.Update
	Frame  []byte
	// Dispatched is when the dispatch loop handed the event out; zero for history.
	Dispatched time.Time
}

// Subscriber is one subscription request (one SSE connection) and its bounded queue.
type Subscriber struct {
	// ID identifies the subscriber (a urn:uuid), for the subscriptions API and logs.
	ID string
	// Selectors are the topic selectors the client asked for.
	Selectors []*topic.Selector
	// Allowed are the selectors of the JWT's mercure.subscribe claim: they decide which private
	// updates the subscriber may receive. Nil means public updates only.
	Allowed []*topic.Selector
	// Payload is the JWT's mercure.payload claim, if any.
	Payload json.RawMessage
	// Payloads, when not nil, holds the payload of each selector instead (a draft-08 token
	// gives one per subscription).
	Payloads []json.RawMessage

	maxQueue      int
	maxQueueBytes int
	lastSeq       uint64 // Seq last offered; touched only by the loop that serves the subscriber
	wild          bool   // served by the wild loop (a "*" or template selector); set by register
	since         uint64 // for a wild subscriber, the dispatch loop's position when it registered

	mu         sync.Mutex
	queue      []*Event
	queueBytes int
	replaying  bool          // history replay in progress: overflow drops the queue instead of closing
	replayed   uint64        // Seq of the last update replayed from history: enqueue skips up to it
	overflowed bool          // the queue was dropped during replay; replay must read further
	err        error         // why the hub closed the subscriber; nil while open
	ready      chan struct{} // capacity 1: a token means "the queue has something"; nil with notify
	done       chan struct{} // closed when the hub closes the subscriber; nil with notify
	notify     Notifier      // replaces ready and done when set: see SubscribeOptions.Notify
}

// Ready returns a channel that receives a value when events may be waiting in the queue. It is
// nil for a subscriber created with SubscribeOptions.Notify.
func (s *Subscriber) Ready() <-chan struct{} { return s.ready }

// signal tells the owner that the queue or the state changed. s.mu must not be held.
func (s *Subscriber) signal() {
	if s.notify != nil {
		s.notify.Notify()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Done returns a channel closed when the hub has closed the subscriber (see Err). It is nil
// for a subscriber created with SubscribeOptions.Notify, which learns of it through Notify.
func (s *Subscriber) Done() <-chan struct{} { return s.done }

// Err returns why the hub closed the subscriber, or nil while it is open.
func (s *Subscriber) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Drain moves the queued events into dst (reusing its storage) and returns it. After the hub
// closed the subscriber, Drain still returns what was queued before, so the owner can flush it.
func (s *Subscriber) Drain(dst []*Event) []*Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	dst = append(dst[:0], s.queue...)
	clear(s.queue)
	if cap(s.queue) > 64 {
		s.queue = nil // do not keep a burst's large array for the connection's life
	} else {
		s.queue = s.queue[:0]
	}
	s.queueBytes = 0
	return dst
}

// CanReceive reports whether the subscriber asked for u and may see it.
func (s *Subscriber) CanReceive(m *topic.Matcher, u *transport.Update) bool {
	return m.MatchAny(s.Selectors, u.Topics) && s.MayReceive(m, u)
}

// MayReceive reports whether the subscriber may see u, which it asked for: u is public, or
// its JWT allows one of u's topics.
func (s *Subscriber) MayReceive(m *topic.Matcher, u *transport.Update) bool {
	return !u.Private || m.MatchAny(s.Allowed, u.Topics)
}

// enqueue offers e without blocking. A full queue closes the subscriber with ErrSlow, except
// during history replay, where the queue is dropped and replay reads further from the log.
func (s *Subscriber) enqueue(e *Event) {
	s.mu.Lock()
	if s.err != nil || e.Update.Seq <= s.replayed {
		// The dispatch loop may lag behind the log: what replay already sent from history is
		// dropped here, so that it is not sent twice.
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.maxQueue || s.queueBytes+len(e.Frame) > s.maxQueueBytes {
		if !s.replaying {
			s.closeLocked(ErrSlow)
			s.mu.Unlock()
			s.signal()
			return
		}
		clear(s.queue)
		s.queue = s.queue[:0]
		s.queueBytes = 0
		s.overflowed = true
		s.mu.Unlock()
		return
	}
	wasEmpty := len(s.queue) == 0
	s.queue = append(s.queue, e)
	s.queueBytes += len(e.Frame)
	s.mu.Unlock()
	if wasEmpty || s.notify == nil {
		s.signal()
	}
}

// close closes the subscriber with reason, once, and signals the owner.
func (s *Subscriber) close(reason error) {
	s.mu.Lock()
	first := s.err == nil
	s.closeLocked(reason)
	s.mu.Unlock()
	if first {
		s.signal()
	}
}

// closeLocked is close with s.mu held.
func (s *Subscriber) closeLocked(reason error) {
	if s.err == nil {
		s.err = reason
		if s.done != nil {
			close(s.done)
		}
	}
}

// payload returns the payload of the subscriber's i-th selector's subscription.
func (s *Subscriber) payload(i int) json.RawMessage {
	if s.Payloads != nil {
		return s.Payloads[i]
	}
	return s.Payload
}
