// Package gate is the closing state that the cluster transports (redis and nats) keep: once
// closed, new calls fail with transport.ErrClosed, and Close waits for the Appends that got
// past the check before it tears down the connection they use.
package gate

import (
	"sync"

	"github.com/heraldhub/herald/transport"
)

// Gate tracks whether a transport is closed and which calls are in flight. The zero value
// is open; it is safe for concurrent use.
type Gate struct {
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // calls past Enter; Wait waits for them
}

// Enter registers a call that Close must wait for, or returns transport.ErrClosed once the
// gate is closed. After a nil error the caller must call Leave when the call is done.
func (g *Gate) Enter() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return transport.ErrClosed
	}
	g.inflight.Add(1)
	return nil
}

// Leave ends a call registered by Enter.
func (g *Gate) Leave() { g.inflight.Done() }

// Closed reports whether Close was called.
func (g *Gate) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close makes later Enters fail. It does not wait: call Wait for the calls in flight.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

// Wait waits until every call registered by Enter has left.
func (g *Gate) Wait() { g.inflight.Wait() }
