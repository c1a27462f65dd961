package server

import (
	"errors"
	"fmt"
	"net"
	"os"
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
//
// On Linux a plain TCP stream also leaves Go's poller once attached ("raw" streams): the pool
// writes its descriptor directly and never blocks on it. What a full socket does not take
// waits in the stream's out buffer until the watcher reports the socket writable; meanwhile
// new events wait in the subscriber's bounded queue, and a stream blocked for longer than
// dispatch_timeout is dropped as slow. Go's poller keeps its per-connection state for the
// life of the process, so this is also what lets memory go back down after a peak of
// connections. A TLS 1.3 stream seals its own records once set up (tlsstream.go) and is then
// raw as well; other TLS streams are written through their net.Conn, with a write deadline.

// rawStream is one hijacked HTTP/1.1 stream, written with chunked transfer encoding.
type rawStream struct {
	p    *pool
	conn net.Conn // nil once raw
	// tls, when set, seals what the stream writes in TLS 1.3 records, and conn (until raw)
	// is the plain connection under the TLS one (tlsstream.go).
	tls *recordSealer
	sub *hub.Subscriber
	// end is when the stream's lifetime ends, in unix nanoseconds; 0 means never.
	end int64
	// counted says that the stream's connection is in Server.open, which the stream leaves
	// when it ends (conns.go); releaseIP gives back its place in the per-address count.
	counted   bool
	releaseIP func()

	state     atomic.Int32 // idle, scheduled or pending: see pool.schedule
	attached  atomic.Bool  // the pool owns the connection: notifications schedule it
	lastWrite atomic.Int64 // unix nanoseconds of the last write
	beat      atomic.Bool  // the ticker asks for a heartbeat
	expired   atomic.Bool  // the ticker found the lifetime over
	hangup    atomic.Bool  // the watcher saw the client close or reset the connection
	fd        int          // the socket's descriptor, for the watcher; -1 when not watched
	token     uint64       // the watcher's name for the stream
	raw       bool         // fd is the pool's own descriptor, written directly; set by attach
	blocked   atomic.Int64 // unix nanoseconds since a raw stream's socket has been full; 0 if not
	stalled   atomic.Int64 // the value of blocked that the ticker found older than dispatch_timeout

	evs []*hub.Event // drained events, reused; owned by the servicing worker
	out []byte       // bytes a full socket did not take yet (raw streams); owned likewise
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
	workers int // writer goroutines started; guarded by mu after newPool

	mu       sync.Mutex
	cond     *sync.Cond
	runq     []task                  // streams and connections with work, each at most once
	streams  map[*rawStream]struct{} // every attached stream, for the ticker and Close
	peak     int                     // most entries streams has held since it was made
	conns    map[*h2Conn]struct{}    // every HTTP/2 connection of the hub's own server (h2.go)
	connPeak int                     // most entries conns has held since it was made
	sealed   bool                    // close is ending the streams: attach ends new ones at once
	closing  bool                    // close is done with the streams: workers exit when runq is empty
	wg       sync.WaitGroup          // workers and the ticker
	stop     chan struct{}           // closed by Close: stops the ticker
	watcher  *hangupWatcher          // nil where hang-ups are found by writes only
	bufs     sync.Pool               // *[]byte write buffers
	rbufs    sync.Pool               // *[]byte read buffers of HTTP/2 connections
	tick     time.Duration           // ticker period
}

// newPool starts the pool's goroutines.
func newPool(s *Server) *pool {
	p := &pool{
		s:       s,
		workers: rawWorkers(),
		streams: make(map[*rawStream]struct{}),
		conns:   make(map[*h2Conn]struct{}),
		stop:    make(chan struct{}),
		tick:    tickFor(s.cfg.Heartbeat, s.cfg.WriteTimeout, s.cfg.DispatchTimeout),
	}
	p.cond = sync.NewCond(&p.mu)
	p.bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	p.rbufs.New = func() any { b := make([]byte, readBufSize); return &b }
	w, err := newHangupWatcher()
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

// Writers of the pool. A raw stream's writes never block, so a few writers per core keep up
// with them; a stream written through its net.Conn (TLS, or where raw streams do not exist)
// can hold a writer for up to dispatch_timeout, so the pool grows to blockingWorkers with the
// first such stream, and a few stuck clients cannot stall everyone else.
const blockingWorkers = 64

func rawWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// growForBlocking starts the writers that streams written through a net.Conn need.
func (p *pool) growForBlocking() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing || p.workers >= blockingWorkers {
		return
	}
	n := blockingWorkers - p.workers
	p.workers = blockingWorkers
	p.wg.Add(n)
	for range n {
		go p.work()
	}
}

// tickFor picks the ticker's period: a quarter of the shortest timer, within [10ms, 1s].
func tickFor(timers ...time.Duration) time.Duration {
	d := time.Second
	for _, t := range timers {
		if t > 0 && t/4 < d {
			d = t / 4
		}
	}
	return max(d, 10*time.Millisecond)
}

// attach hands rs to the pool, which from now on is the only writer of its connection.
// A stream that arrives once close has started ending streams is ended here.
func (p *pool) attach(rs *rawStream) {
	rs.fd = -1
	if rs.tls != nil {
		rs.tls.idle() // most streams wait a while for their first event
	}
	// Under mu, so that close sees either no trace of rs or all of it (conn, raw), and the
	// watcher is not closed meanwhile.
	p.mu.Lock()
	if p.sealed {
		p.mu.Unlock()
		rs.attached.Store(true)
		p.end(rs, "", hub.ErrShutdown)
		return
	}
	if p.watcher != nil {
		if fd, raw, err := p.watcher.add(rs); err == nil {
			rs.fd, rs.raw = fd, raw
			if raw {
				_ = rs.conn.Close() // the socket stays open through fd
				rs.conn = nil
			}
		} else {
			p.s.log.Debug("not watching a connection for hang-ups", "err", err)
		}
	}
	p.streams[rs] = struct{}{}
	p.peak = max(p.peak, len(p.streams))
	p.mu.Unlock()
	if !rs.raw {
		p.growForBlocking()
	}
	rs.attached.Store(true)
	p.schedule(rs) // send what was queued while the stream was being set up
}

// Notify is the subscriber's hub.Notifier: it schedules rs once the pool owns it.
func (rs *rawStream) Notify() {
	if rs.attached.Load() {
		rs.p.schedule(rs)
	}
}

// task is what the pool's writers service: a hijacked HTTP/1.1 stream, or an HTTP/2
// connection of the hub's own HTTP/2 server (h2.go).
type task interface {
	// sched is the task's scheduling state: streamIdle, streamScheduled or streamPending.
	sched() *atomic.Int32
	// service does what the task needs; one writer at a time calls it.
	service()
	// requeue reports, once, that the task has more to do than its turn allowed: it goes to
	// the back of the run queue.
	requeue() bool
}

func (rs *rawStream) sched() *atomic.Int32 { return &rs.state }
func (rs *rawStream) service()             { rs.p.service(rs) }
func (rs *rawStream) requeue() bool        { return false }

// schedule queues t for a worker unless it is queued already; if a worker is servicing it,
// the worker services it again when done. It never blocks.
func (p *pool) schedule(t task) {
	state := t.sched()
	for {
		switch state.Load() {
		case streamIdle:
			if state.CompareAndSwap(streamIdle, streamScheduled) {
				p.mu.Lock()
				p.runq = append(p.runq, t)
				p.mu.Unlock()
				p.cond.Signal()
				return
			}
		case streamScheduled:
			if state.CompareAndSwap(streamScheduled, streamPending) {
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
		t := p.runq[0]
		p.runq[0] = nil
		p.runq = p.runq[1:]
		if len(p.runq) == 0 {
			p.runq = nil // let a burst's backing array go
		}
		p.mu.Unlock()
		state := t.sched()
		for {
			t.service()
			if state.CompareAndSwap(streamScheduled, streamIdle) {
				break
			}
			state.Store(streamScheduled) // it was pending: go again
		}
		if t.requeue() {
			p.schedule(t)
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
	if len(rs.out) > 0 {
		blocked, err := p.flush(rs)
		switch {
		case err != nil:
			p.end(rs, "", err)
		case !blocked:
		case errors.Is(rs.sub.Err(), hub.ErrSlow):
			p.end(rs, "", hub.ErrSlow)
		case rs.stalled.Load() == rs.blocked.Load():
			p.end(rs, "", fmt.Errorf("socket full for longer than %v: %w", p.s.cfg.DispatchTimeout, os.ErrDeadlineExceeded))
		}
		// Otherwise events wait in the subscriber's queue until the socket takes more; a
		// stream that is shutting down or whose lifetime is over ends once it has (cleanly),
		// or when dispatch_timeout says it is stalled.
		if err != nil || blocked {
			return
		}
	}
	rs.evs = rs.sub.Drain(rs.evs)
	closed := rs.sub.Err()
	beat := rs.beat.Swap(false) && len(rs.evs) == 0
	if len(rs.evs) > 0 || beat {
		if err := p.write(rs, rs.evs, beat); err != nil {
			p.end(rs, "", err)
			return
		}
		if beat && rs.tls != nil {
			rs.tls.idle() // a heartbeat means nothing else was sent for a while
		}
	}
	rs.evs = recycle(rs.evs)
	switch {
	case len(rs.out) > 0 && !errors.Is(closed, hub.ErrSlow):
		// The socket did not take everything: end once it has (see above).
	case closed != nil:
		p.end(rs, "", closed)
	case rs.expired.Load():
		p.end(rs, "lifetime", nil)
	}
}

// recycle empties a stream's slice of drained events for the next drain: it keeps no event
// alive, and no large array after a burst.
func recycle(evs []*hub.Event) []*hub.Event {
	clear(evs)
	if cap(evs) > 64 {
		return nil
	}
	return evs[:0]
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

// writeRaw writes b, sealed in TLS records when the stream seals its own (tlsstream.go): to
// a raw stream without blocking (see writeFD), otherwise under the dispatch deadline.
func (p *pool) writeRaw(rs *rawStream, b []byte) error {
	if rs.tls != nil {
		return p.writeSealed(rs, b, recordApplicationData)
	}
	return p.writeBytes(rs, b)
}

// writeSealed writes b as records of type typ.
func (p *pool) writeSealed(rs *rawStream, b []byte, typ byte) error {
	bp, out, err := p.seal(rs, b, typ)
	if err == nil {
		err = p.writeBytes(rs, out)
	}
	p.putBuf(bp, out)
	return err
}

// writeBytes writes b as it is: see writeRaw.
func (p *pool) writeBytes(rs *rawStream, b []byte) error {
	if rs.raw {
		return p.writeFD(rs, b)
	}
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

// writeFD writes b to a raw stream's socket without blocking. What the socket does not take
// now is copied to rs.out, and the watcher is asked to report when it can take more.
func (p *pool) writeFD(rs *rawStream, b []byte) error {
	if len(rs.out) > 0 { // blocked already: keep the order
		rs.out = append(rs.out, b...)
		return nil
	}
	n, err := writeFull(rs.fd, b)
	if errors.Is(err, errWouldBlock) {
		rs.out = append(rs.out[:0], b[n:]...)
		rs.blocked.Store(time.Now().UnixNano())
		return p.watcher.wantWrite(rs, true)
	}
	if err != nil {
		return err
	}
	rs.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// flush writes what a raw stream's socket did not take before. blocked says that some of it
// is still waiting.
func (p *pool) flush(rs *rawStream) (blocked bool, err error) {
	n, err := writeFull(rs.fd, rs.out)
	if errors.Is(err, errWouldBlock) {
		rs.out = rs.out[:copy(rs.out, rs.out[n:])]
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if cap(rs.out) > 64<<10 {
		rs.out = nil
	} else {
		rs.out = rs.out[:0]
	}
	rs.blocked.Store(0)
	rs.lastWrite.Store(time.Now().UnixNano())
	return false, p.watcher.wantWrite(rs, false)
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
	if clean && len(rs.out) == 0 {
		if p.writeRaw(rs, []byte("0\r\n\r\n")) == nil {
			p.closeNotify(rs)
		}
	}
	p.detach(rs)
	if rs.raw {
		_ = closeFD(rs.fd) // only the servicing worker gets here: nobody else uses fd
		rs.out = nil
	} else {
		_ = rs.conn.Close()
	}
	rs.release()
	switch {
	case reason != "":
		p.s.cfg.Metrics.Disconnected(reason)
		p.s.log.Debug("stream ended", "subscriber", rs.sub.ID, "reason", reason)
	default:
		p.s.endStream(rs.sub, err)
	}
	p.s.hub.Unsubscribe(rs.sub)
}

// release gives back the stream's places in the connection counts, once its connection is
// closed. Called once: by end, or by hijack when the stream never reached the pool.
func (rs *rawStream) release() {
	if rs.counted {
		rs.counted = false
		rs.p.s.open.Add(-1)
	}
	if rs.releaseIP != nil {
		rs.releaseIP()
	}
}

// detach forgets rs: the ticker and the watcher stop looking at it.
func (p *pool) detach(rs *rawStream) {
	if p.watcher != nil && rs.fd >= 0 {
		p.watcher.remove(rs)
	}
	p.mu.Lock()
	delete(p.streams, rs)
	p.streams = shrink(p.streams, &p.peak)
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
	var conns []*h2Conn
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			due = due[:0]
			nowNano := now.UnixNano()
			beatAfter := int64(p.s.cfg.Heartbeat)
			stallAfter := int64(p.s.cfg.DispatchTimeout)
			p.mu.Lock()
			conns = conns[:0]
			for c := range p.conns {
				conns = append(conns, c)
			}
			for rs := range p.streams {
				blocked := rs.blocked.Load()
				switch {
				case blocked > 0 && stallAfter > 0 && nowNano-blocked >= stallAfter:
					rs.stalled.Store(blocked)
					due = append(due, rs)
				case rs.end > 0 && nowNano >= rs.end:
					rs.expired.Store(true)
					due = append(due, rs)
				case blocked > 0:
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
			// Out of p.mu: a connection's lock is taken before p.mu, never after.
			for _, c := range conns {
				c.tick(nowNano, beatAfter, stallAfter, int64(c.hs.IdleTimeout))
			}
			clear(conns)
		}
	}
}

// count returns the number of attached streams and HTTP/2 connections.
func (p *pool) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams) + len(p.conns)
}

// close stops the pool's goroutines. Streams should have ended already (the hub's Shutdown
// closes their subscribers and the workers end them cleanly); it waits up to grace for that,
// then cuts the connections that remain.
func (p *pool) close(grace time.Duration) {
	deadline := time.Now().Add(grace)
	p.goAway() // HTTP/2 connections close once their streams have ended
	for p.count() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	p.mu.Lock()
	p.sealed = true
	left := make([]*rawStream, 0, len(p.streams))
	for rs := range p.streams {
		left = append(left, rs)
	}
	p.mu.Unlock()
	conns := p.connList()
	if len(left)+len(conns) > 0 {
		p.s.log.Warn("grace period over: hanging up the streams still open", "streams", len(left), "http2_connections", len(conns))
	}
	for _, c := range conns {
		c.hangup.Store(true)
		p.schedule(c)
	}
	for _, rs := range left {
		if !rs.raw {
			// Unblocks a worker stuck writing, which then ends the stream. Not Close: the
			// worker must take the descriptor out of epoll before it is closed and reused.
			_ = rs.conn.SetWriteDeadline(time.Now())
		}
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

// shrink returns m, or a copy of it once it holds less than a quarter of the peak number of
// entries it had (at least 1024), resetting peak. A Go map never gives back the memory of its
// largest size; without this, the maps of the pool would keep a past peak of connections.
func shrink[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if *peak < 1024 || len(m) >= *peak/4 {
		return m
	}
	c := make(map[K]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	*peak = len(c)
	return c
}
