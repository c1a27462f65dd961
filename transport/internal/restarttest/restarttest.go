// Package restarttest is the server restart scenario that the cluster transports (redis and
// nats) run alike against a server of their own: killing the server (SIGKILL, as a crash)
// while one node publishes and another tails, then starting it again. It is imported by tests
// only.
package restarttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/internal/logtest"
)

// Timeout is the timeout the nodes must use for every call to the server: a publish during
// the outage must fail within it (plus scheduling slack).
const Timeout = time.Second

// Server is the server the scenario crashes and restarts, such as a *testkit.Server.
type Server interface {
	// Kill stops the server at once, as a crash.
	Kill()
	// Start starts it again on the same address and data, and returns once it is ready.
	Start()
}

// Run runs the scenario: open returns a new node (a transport with Timeout as its timeout)
// on one log of srv, and is called twice. Publishes during the outage must fail promptly
// with ErrUnavailable, never with success; once the server is back (with its data on disk),
// publishing must work again without any action, the tailing node resume from where it
// was, and the log hold every acknowledged update exactly once, in the order every node
// read.
func Run(t *testing.T, srv Server, open func() transport.Transport) {
	pub, sub := open(), open() // two nodes: one publishes, the other tails

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()

	// The tailing node reads like a hub's dispatch loop: errors are retried.
	var (
		readMu sync.Mutex
		read   []*transport.Update
	)
	var reading sync.WaitGroup
	reading.Go(func() {
		var after uint64
		for {
			ups, err := sub.Read(readCtx, after, 100, true)
			switch {
			case readCtx.Err() != nil:
				return
			case err != nil && !errors.Is(err, transport.ErrUnavailable):
				t.Errorf("tailing: %v, want only ErrUnavailable errors", err)
				return
			case err != nil:
				time.Sleep(20 * time.Millisecond)
				continue
			}
			readMu.Lock()
			read = append(read, ups...)
			readMu.Unlock()
			after = ups[len(ups)-1].Seq
		}
	})

	// Publishers run throughout.
	type result struct {
		id    string
		seq   uint64
		err   error
		start time.Time
		d     time.Duration
	}
	results := make(chan result, 1<<16)
	stopPublishing := make(chan struct{})
	var publishing sync.WaitGroup
	for p := range 4 {
		publishing.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopPublishing:
					return
				default:
				}
				u := logtest.Upd(fmt.Sprintf("p%d", p), i)
				start := time.Now()
				err := pub.Append(ctx, u)
				results <- result{u.ID, u.Seq, err, start, time.Since(start)}
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}

	acked := map[string]uint64{}
	attempted := map[string]bool{}
	var failures int
	var killed time.Time   // zero until the server is down
	var downAcked []string // appends started while the server was down that succeeded
	collect := func(until func() bool, what string) {
		t.Helper()
		for !until() {
			select {
			case r := <-results:
				attempted[r.id] = true
				switch {
				case r.err == nil:
					acked[r.id] = r.seq
					if !killed.IsZero() && r.start.After(killed) {
						downAcked = append(downAcked, r.id)
					}
				case !errors.Is(r.err, transport.ErrUnavailable):
					t.Fatalf("append %s: %v, want ErrUnavailable", r.id, r.err)
				case r.d > Timeout+time.Second:
					t.Fatalf("append %s took %v to fail (timeout %v)", r.id, r.d, Timeout)
				default:
					failures++
				}
			case <-ctx.Done():
				t.Fatalf("%s: %v (acked %d, failed %d)", what, ctx.Err(), len(acked), failures)
			}
		}
	}

	collect(func() bool { return len(acked) >= 100 }, "publishing before the outage")
	srv.Kill()
	killed = time.Now()
	collect(func() bool { return failures >= 12 && time.Since(killed) > 500*time.Millisecond }, "publishing during the outage")
	if len(downAcked) > 0 {
		t.Fatalf("appends started while the server was down succeeded: %q", downAcked)
	}
	for name, call := range map[string]func() error{
		"Head":   func() error { _, err := pub.Head(ctx); return err },
		"Lookup": func() error { _, err := pub.Lookup(ctx, "p0-0"); return err },
		"Read":   func() error { _, err := pub.Read(ctx, 0, 10, false); return err },
	} {
		if err := call(); !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("%s during the outage = %v, want ErrUnavailable", name, err)
		}
	}
	t.Logf("outage: %d appends failed within %v", failures, time.Since(killed))

	srv.Start()
	killed = time.Time{}
	restarted := time.Now()
	ackedAtRestart := len(acked)
	collect(func() bool { return len(acked) >= ackedAtRestart+100 }, "publishing after the restart")
	t.Logf("100 appends acknowledged %v after the restart", time.Since(restarted))
	close(stopPublishing)
	publishing.Wait()
	close(results)
	for r := range results {
		attempted[r.id] = true
		if r.err == nil {
			acked[r.id] = r.seq
		}
	}

	// The log: every acknowledged update once, at its Seq; nothing that was not attempted.
	log := logtest.ReadAll(t, pub)
	inLog := map[string]bool{}
	for i, u := range log {
		if inLog[u.ID] {
			t.Fatalf("update %q stored twice", u.ID)
		}
		inLog[u.ID] = true
		if !attempted[u.ID] {
			t.Fatalf("update %q in the log was never published", u.ID)
		}
		if seq, ok := acked[u.ID]; ok && seq != u.Seq {
			t.Fatalf("update %q acknowledged as %d, stored as %d", u.ID, seq, u.Seq)
		}
		if i > 0 && u.Seq <= log[i-1].Seq {
			t.Fatalf("Seq %d after %d", u.Seq, log[i-1].Seq)
		}
	}
	for id := range acked {
		if !inLog[id] {
			t.Fatalf("acknowledged update %q is not in the log", id)
		}
	}

	// The tailing node caught up by itself and read exactly the log.
	for {
		readMu.Lock()
		n := len(read)
		readMu.Unlock()
		if n >= len(log) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the tailing node read %d of %d updates", n, len(log))
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopReading()
	reading.Wait()
	if len(read) != len(log) {
		t.Fatalf("the tailing node read %d updates, the log holds %d", len(read), len(log))
	}
	for i := range log {
		if read[i].Seq != log[i].Seq || read[i].ID != log[i].ID {
			t.Fatalf("tailing node's update %d = %d %q, log has %d %q", i, read[i].Seq, read[i].ID, log[i].Seq, log[i].ID)
		}
	}
	t.Logf("log: %d updates, %d acknowledged, %d attempted", len(log), len(acked), len(attempted))
}
