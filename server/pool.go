package server

import (
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/sse"
)

// A long-lived HTTP/1.1 stream is mostly idle. Served the usual way it holds a goroutine, its
// stack and net/http's read and write buffers for its whole life. Instead, the subscribe
// handler hijacks the connection once the stream is set up and hands it to a pool: a few
// writer goroutines serve every stream when it has something to send, one ticker handles
// heartbeats and lifetimes, and a watcher notices clients that hang up. An idle stream then
// costs its socket and a few small structs.

// rawStream is one hijacked HTTP/1.1 stream, written with chunked transfer encoding.
type rawStream struct {
	conn net.Conn
	sub  *hub.Subscriber
	// end is when the stream's lifetime ends, in unix nanoseconds; 0 means never.
	end int64

	state     atomic.Int32 // idle, scheduled or pending: see pool.schedule
	attached  atomic.Bool  // the pool owns the connection: notifications schedule it
	lastWrite atomic.Int64 // unix nanoseconds of the last write
	beat      atomic.Bool  // the ticker asks for a heartbeat
	expired   atomic.Bool  // the ticker found the lifetime over
	hangup    atomic.Bool  // the watcher saw the client close or reset the connection
	fd        int          // the socket's descriptor, for the watcher; -1 when not watched

	evs []*hub.Event // drained events, reused; owned by the servicing worker
}

// Scheduling states of a rawStream.
const (
	streamIdle      = 0 // nothing to do, not queued
	streamScheduled = 1 // queued or being serviced
	streamPending   = 2 // being serviced, and something new arrived meanwhile
)

// pool serves hijacked streams. It starts with the first stream and stops with Close.
type pool struct {
	s       *Server
	workers int

	mu      sync.Mutex
	cond    *sync.Cond
	runq    []*rawStream            // streams with work, each at most once
	streams map[*rawStream]struct{} // every attached stream, for the ticker and Close
	closing bool                    // Close was called: workers exit when runq is empty
	wg      sync.WaitGroup          // workers and the ticker
	stop    chan struct{}           // closed by Close: stops the ticker
	watcher *hangupWatcher          // nil where hang-ups are found by writes only
	bufs    sync.Pool               // *[]byte write buffers
	tick    time.Duration           // ticker period
}

// newPool starts the pool's goroutines.
func newPool(s *Server) *pool {
	p := &pool{
		s:       s,
		workers: 64,
		streams: make(map[*rawStream]struct{}),
		stop:    make(chan struct{}),
		tick:    tickFor(s.cfg.Heartbeat, s.cfg.WriteTimeout),
	}
	p.cond = sync.NewCond(&p.mu)
	p.bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	w, err := newHangupWatcher(p.hangup)
	if err != nil {
		s.log.Warn("cannot watch hijacked connections for hang-ups; they are found at the next write", "err", err)
	} else {
		p.watcher = w
	}
	p.wg.Add(p.workers + 1)
	for range p.workers {
		go p.work()
	}
	go p.ticker()
	return p
}

// tickFor picks the ticker's period: a quarter of the shortest timer, within [10ms, 1s].
func tickFor(heartbeat, lifetime time.Duration) time.Duration {
	d := time.Second
	for _, t := range []time.Duration{heartbeat, lifetime} {
		if t > 0 && t/4 < d {
			d = t / 4
		}
	}
	return max(d, 10*time.Millisecond)
}

// attach hands rs to the pool, which from now on is the only writer of its connection.
func (p *pool) attach(rs *rawStream) {
	rs.fd = -1
	p.mu.Lock()
	p.streams[rs] = struct{}{}
	p.mu.Unlock()
	if p.watcher != nil {
		if fd, err := p.watcher.add(rs); err == nil {
			rs.fd = fd
		} else {
			p.s.log.Debug("not watching a connection for hang-ups", "err", err)
		}
	}
	rs.attached.Store(true)
	p.schedule(rs) // send what was queued while the stream was being set up
}

// notify is the subscriber's Notify callback: it schedules rs once the pool owns it.
func (p *pool) notify(rs *rawStream) {
	if rs.attached.Load() {
		p.schedule(rs)
	}
}

// schedule queues rs for a worker unless it is queued already; if a worker is servicing it,
// the worker services it again when done. It never blocks.
func (p *pool) schedule(rs *rawStream) {
	for {
		switch rs.state.Load() {
		case streamIdle:
			if rs.state.CompareAndSwap(streamIdle, streamScheduled) {
				p.mu.Lock()
				p.runq = append(p.runq, rs)
				p.mu.Unlock()
				p.cond.Signal()
				return
			}
		case streamScheduled:
			if rs.state.CompareAndSwap(streamScheduled, streamPending) {
				return
			}
		default:
			return
		}
	}
}

// work is a writer goroutine: it services queued streams until the pool closes.
func (p *pool) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		for len(p.runq) == 0 && !p.closing {
			p.cond.Wait()
		}
		if len(p.runq) == 0 {
			p.mu.Unlock()
			return
		}
		rs := p.runq[0]
		p.runq[0] = nil
		p.runq = p.runq[1:]
		if len(p.runq) == 0 {
			p.runq = nil // let a burst's backing array go
		}
		p.mu.Unlock()
		for {
			p.service(rs)
			if rs.state.CompareAndSwap(streamScheduled, streamIdle) {
				break
			}
			rs.state.Store(streamScheduled) // it was pending: go again
		}
		// Yield between streams. With a long run queue the writers never block, and without
		// this they would keep both cores for whole time slices while publish handlers and
		// the dispatch loop wait behind them: updates would trickle into the queues and leave
		// one write each. Yielding lets them in at once, so under load each stream's queue
		// holds many events and they leave in one write (in scenario B of docs/performance.md,
		// from 1.7 to about 60 events per write).
		runtime.Gosched()
	}
}

// service does whatever rs needs: write queued events or a heartbeat, or end the stream.
func (p *pool) service(rs *rawStream) {
	if !rs.attached.Load() {
		return // already ended
	}
	if rs.hangup.Load() {
		p.end(rs, "client", nil)
		return
	}
	rs.evs = rs.sub.Drain(rs.evs)
	closed := rs.sub.Err()
	beat := rs.beat.Swap(false) && len(rs.evs) == 0
	if len(rs.evs) > 0 || beat {
		if err := p.write(rs, rs.evs, beat); err != nil {
			p.end(rs, "", err)
			return
		}
	}
	clear(rs.evs)
	rs.evs = rs.evs[:0]
	if cap(rs.evs) > 64 {
		rs.evs = nil
	}
	switch {
	case closed != nil:
		p.end(rs, "", closed)
	case rs.expired.Load():
		p.end(rs, "lifetime", nil)
	}
}

// write sends evs (and a heartbeat comment) as one chunk, under the dispatch deadline.
func (p *pool) write(rs *rawStream, evs []*hub.Event, beat bool) error {
	n := 0
	var oldest time.Time
	for _, e := range evs {
		n += len(e.Frame)
		if oldest.IsZero() {
			oldest = e.Dispatched
		}
	}
	if beat {
		n += len(sse.Comment)
	}
	bp := p.bufs.Get().(*[]byte)
	buf := appendChunkHeader((*bp)[:0], n)
	if beat {
		buf = append(buf, sse.Comment...)
	}
	for _, e := range evs {
		buf = append(buf, e.Frame...)
	}
	buf = append(buf, "\r\n"...)
	err := p.writeRaw(rs, buf)
	if cap(buf) <= 64<<10 {
		*bp = buf[:0]
		p.bufs.Put(bp)
	}
	if err != nil {
		return err
	}
	p.s.cfg.Metrics.Written(len(evs), n, oldest)
	return nil
}

// writeRaw writes b under the dispatch deadline.
func (p *pool) writeRaw(rs *rawStream, b []byte) error {
	if t := p.s.cfg.DispatchTimeout; t > 0 {
		if err := rs.conn.SetWriteDeadline(time.Now().Add(t)); err != nil {
			return err
		}
	}
	if _, err := rs.conn.Write(b); err != nil {
		return err
	}
	rs.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// appendChunkHeader appends the chunk-size line of an HTTP/1.1 chunk of n bytes.
func appendChunkHeader(b []byte, n int) []byte {
	b = strconv.AppendInt(b, int64(n), 16)
	return append(b, "\r\n"...)
}

// end finishes rs: the last chunk when the stream ends cleanly, then the connection is closed
// and the subscriber removed. reason is for metrics; when empty, it is derived from err.
func (p *pool) end(rs *rawStream, reason string, err error) {
	if !rs.attached.CompareAndSwap(true, false) {
		return
	}
	clean := reason == "lifetime" || errors.Is(err, hub.ErrShutdown)
	if clean {
		_ = p.writeRaw(rs, []byte("0\r\n\r\n"))
	}
	p.detach(rs)
	_ = rs.conn.Close()
	switch {
	case reason != "":
		p.s.cfg.Metrics.Disconnected(reason)
		p.s.log.Debug("stream ended", "subscriber", rs.sub.ID, "reason", reason)
	default:
		p.s.endStream(rs.sub, err)
	}
	p.s.hub.Unsubscribe(rs.sub)
}

// detach forgets rs: the ticker and the watcher stop looking at it.
func (p *pool) detach(rs *rawStream) {
	if p.watcher != nil && rs.fd >= 0 {
		p.watcher.remove(rs.fd)
	}
	p.mu.Lock()
	delete(p.streams, rs)
	p.mu.Unlock()
}

// hangup is the watcher's callback for a client that closed or reset its connection.
func (p *pool) hangup(rs *rawStream) {
	rs.hangup.Store(true)
	p.schedule(rs)
}

// ticker asks idle streams for heartbeats and ends streams whose lifetime is over.
func (p *pool) ticker() {
	defer p.wg.Done()
	t := time.NewTicker(p.tick)
	defer t.Stop()
	var due []*rawStream
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			due = due[:0]
			nowNano := now.UnixNano()
			beatAfter := int64(p.s.cfg.Heartbeat)
			p.mu.Lock()
			for rs := range p.streams {
				switch {
				case rs.end > 0 && nowNano >= rs.end:
					rs.expired.Store(true)
					due = append(due, rs)
				case beatAfter > 0 && nowNano-rs.lastWrite.Load() >= beatAfter:
					rs.beat.Store(true)
					due = append(due, rs)
				}
			}
			p.mu.Unlock()
			for _, rs := range due {
				p.schedule(rs)
			}
			clear(due)
		}
	}
}

// count returns the number of attached streams.
func (p *pool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// close stops the pool's goroutines. Streams should have ended already (the hub's Shutdown
// closes their subscribers and the workers end them cleanly); it waits up to grace for that,
// then cuts the connections that remain.
func (p *pool) close(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for p.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.mu.Lock()
	left := make([]*rawStream, 0, len(p.streams))
	for rs := range p.streams {
		left = append(left, rs)
	}
	p.mu.Unlock()
	for _, rs := range left {
		_ = rs.conn.Close() // unblocks a worker stuck writing; the worker then ends it
		p.hangup(rs)
	}
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.cond.Broadcast()
	close(p.stop)
	p.wg.Wait()
	if p.watcher != nil {
		p.watcher.close()
	}
}
