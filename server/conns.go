package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhub/herald/internal/loglimit"
	"github.com/heraldhub/herald/metrics"
)

// Connection caps. Every connection is a file descriptor, and a process that runs out of them
// stops accepting anything: new connections wait in the kernel's backlog with no answer,
// publishes and health checks included. Listener therefore counts the hub's connections and
// keeps three bands:
//
//   - up to MaxConnections, anything may be served, subscriptions included;
//   - beyond it, up to MaxConnections+ConnectionReserve, connections are still accepted, but a
//     subscription gets 503 with Retry-After at once: publishes and the subscriptions API go on
//     being served from the reserve;
//   - beyond that, a connection is answered with a canned 503 and closed as it is accepted.
//
// A hijacked stream (pool.go) keeps its connection counted until the pool ends it, although
// net/http has forgotten the connection and the pool may have closed the net.Conn and kept
// only a duplicate descriptor. MaxConnectionsPerIP is separate: it counts requests in
// progress (streams and publishes) by remote address.

// DefaultConnectionReserve is Config.ConnectionReserve's default.
const DefaultConnectionReserve = 64

// RetryAfter is the Retry-After, in seconds, of a subscription or publish refused by a cap:
// long enough for some streams to end, short enough that a client does not stay away long.
const RetryAfter = "5"

// Listener wraps ln, the hub's listener, so that its connections are counted and capped as
// Config says (see MaxConnections and ConnectionReserve), and failed accepts are logged at
// warn level at most once a second. When the process runs out of descriptors anyway, a
// spare one is given up to accept and close the waiting connection rather than leave it in
// the backlog. tls says that ln's connections will carry TLS: a connection refused at accept
// is then closed without the canned 503, which it could not read.
func (s *Server) Listener(ln net.Listener, tls bool) net.Listener {
	l := newListener(ln, "hub", s.accepts, s.cfg.Metrics)
	l.open, l.full = &s.open, "reserve_exhausted"
	if s.cfg.MaxConnections > 0 {
		l.hardCap = int64(s.cfg.MaxConnections + s.cfg.ConnectionReserve)
	}
	if !tls {
		l.canned = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Retry-After: " + RetryAfter + "\r\nConnection: close\r\nContent-Length: 23\r\n\r\nthe hub is at capacity\n")
	}
	return l
}

// OpenConnections returns the number of connections open on listeners made by Listener,
// hijacked streams included.
func (s *Server) OpenConnections() int { return int(s.open.Load()) }

// OpsListener wraps the operations endpoint's listener, which is served out of the
// descriptors the hub's listener leaves: past maxConns open connections (0 = no cap), a new
// one is closed as it is accepted, so that a flood of it cannot take the descriptors of the
// store; its failed accepts are logged at warn level at most once a second, and when the
// process runs out of descriptors the waiting connection is closed at once (see Listener).
func OpsListener(ln net.Listener, maxConns int, log *slog.Logger, m *metrics.Metrics) net.Listener {
	l := newListener(ln, "operations", loglimit.New(loglimit.Config{Logger: log, Every: time.Second}), m)
	l.hardCap, l.full = int64(maxConns), "operations_full"
	return l
}

// listener counts, caps and refuses the connections it accepts.
type listener struct {
	net.Listener
	name    string            // for logs: "hub" or "operations"
	open    *atomic.Int64     // connections open; shared with the Server for the hub listener
	hardCap int64             // most connections open; past it they are refused at accept; 0 = no cap
	full    string            // the metrics reason of a refusal by hardCap
	canned  []byte            // the answer of a connection refused at accept; nil closes it only
	log     *loglimit.Limiter // failed accepts and refusals, once a second each
	metrics *metrics.Metrics

	spareMu sync.Mutex
	spare   *os.File // a descriptor kept to be given up when the process runs out; nil if none
}

func newListener(ln net.Listener, name string, log *loglimit.Limiter, m *metrics.Metrics) *listener {
	l := &listener{Listener: ln, name: name, open: new(atomic.Int64), log: log, metrics: m}
	l.spare, _ = os.Open(os.DevNull) // without it, shedding is not possible: accepts back off
	return l
}

// Accept returns the next connection under the cap. Connections past it, and those shed when
// the process is out of descriptors, are answered and closed here.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			l.metrics.AcceptError()
			l.log.Log(context.Background(), slog.LevelWarn, "accept_error", "accepting a connection failed", "listener", l.name, "err", err)
			if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && l.shed() {
				continue
			}
			return nil, err // http.Server backs off and tries again
		}
		if n := l.open.Add(1); l.hardCap > 0 && n > l.hardCap {
			l.open.Add(-1)
			l.refuse(c, l.full)
			continue
		}
		return &trackedConn{Conn: c, open: l.open}, nil
	}
}

// shed gives up the spare descriptor to accept a connection waiting in the backlog, refuses
// it, and takes the spare back. It reports whether a connection was shed. The kernel reports
// running out of descriptors whether or not a connection waits, so shed waits for one only
// briefly: otherwise it would refuse the next client even if descriptors were free by then.
func (l *listener) shed() bool {
	dl, ok := l.Listener.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return false
	}
	l.spareMu.Lock()
	defer l.spareMu.Unlock()
	if l.spare == nil {
		return false
	}
	_ = l.spare.Close()
	_ = dl.SetDeadline(time.Now().Add(5 * time.Millisecond))
	c, err := l.Listener.Accept()
	_ = dl.SetDeadline(time.Time{})
	if err == nil {
		l.refuse(c, "file_limit")
	}
	l.spare, _ = os.Open(os.DevNull) // once c's descriptor is free again
	return err == nil
}

// refuse answers c with the canned 503 if there is one, without waiting for it, and closes it.
func (l *listener) refuse(c net.Conn, reason string) {
	l.metrics.ConnectionRefused(reason)
	l.log.Log(context.Background(), slog.LevelWarn, "refused", "connection closed as it was accepted", "listener", l.name, "reason", reason)
	if l.canned != nil {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond)) // a new socket's buffer takes it at once
		_, _ = c.Write(l.canned)
	}
	_ = c.Close()
}

// Close closes the listener and gives up the spare descriptor.
func (l *listener) Close() error {
	err := l.Listener.Close()
	l.spareMu.Lock()
	if l.spare != nil {
		_ = l.spare.Close()
		l.spare = nil
	}
	l.spareMu.Unlock()
	return err
}

// trackedConn is a counted connection: it leaves the count when closed, unless a hijacked
// stream has taken its place (see hold).
type trackedConn struct {
	net.Conn
	open     *atomic.Int64
	released atomic.Bool // out of the count, or the count is a hijacked stream's
	// tap, on a TLS 1.3 connection being set up, sees what the tls.Conn over it writes
	// (tlsstream.go). Set by the handshake, cleared by the stream's handler.
	tap *tlsTap
	// shed says that the tls.Conn over c was shed by a stream that seals its own records,
	// which writes to Conn: c refuses every write, so the tls.Conn can never seal another
	// record (an alert, a close_notify) under a sequence number the stream uses.
	shed atomic.Bool
}

// errShed is what a shed tls.Conn gets when it tries to write.
var errShed = errors.New("the TLS connection was handed to a stream that seals its own records")

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.shed.Load() {
		return 0, errShed
	}
	n, err := c.Conn.Write(b)
	if c.tap != nil {
		c.tap.sent(b[:n])
	}
	return n, err
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.tap != nil && n > 0 {
		c.tap.received(b[:n])
	}
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.open.Add(-1)
	}
	return err
}

// SyscallConn exposes the socket, for the pool's hang-up watcher.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("the connection exposes no descriptor")
	}
	return sc.SyscallConn()
}

// CloseWrite lets net/http end a response with a half-close where the socket allows it.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// hold makes a hijacked stream the owner of conn's place in the count: closing conn no
// longer releases it, and the stream calls rawStream.release when it ends. It reports whether
// conn is counted at all (it came from Listener).
func hold(conn net.Conn) bool {
	tc, ok := conn.(*trackedConn)
	if !ok {
		if nc, isTLS := conn.(interface{ NetConn() net.Conn }); isTLS {
			tc, ok = nc.NetConn().(*trackedConn)
		}
	}
	// Marked released, tc leaves the count alone when closed; the stream gives the place back
	// instead, keeping no reference to the connection once it has only the descriptor.
	return ok && tc.released.CompareAndSwap(false, true)
}

// atCapacity reports whether a new subscription must be refused: more connections are open
// than MaxConnections, its own counted.
func (s *Server) atCapacity() bool {
	return s.cfg.MaxConnections > 0 && s.open.Load() > int64(s.cfg.MaxConnections)
}

// capacityRefusal is the answer to a subscription past MaxConnections.
func (s *Server) capacityRefusal(w http.ResponseWriter) *requestError {
	w.Header().Set("Retry-After", RetryAfter)
	return &requestError{code: http.StatusServiceUnavailable, category: reasonMaxConnections, reason: "the hub is at capacity"}
}

// perIPRefusal is the answer to a subscription or publish past MaxConnectionsPerIP.
func (s *Server) perIPRefusal(w http.ResponseWriter) *requestError {
	w.Header().Set("Retry-After", RetryAfter)
	return &requestError{code: http.StatusTooManyRequests, category: reasonPerIP, reason: "too many connections from this address"}
}

// perIP counts the requests in progress (streams and publishes) of each remote address.
type perIP struct {
	max  int // 0 = no cap
	mu   sync.Mutex
	n    map[netip.Addr]int
	peak int // most entries n has held since it was made (see shrink)
}

// acquire counts a request from remote (an http.Request's RemoteAddr). It reports false when
// the address has max requests in progress already; otherwise release must be called when the
// request ends (more than once is harmless).
func (p *perIP) acquire(remote string) (release func(), ok bool) {
	if p.max <= 0 {
		return func() {}, true
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return func() {}, true // not an IP address (a Unix socket): nothing to count by
	}
	addr := ap.Addr().Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[addr] >= p.max {
		return nil, false
	}
	if p.n == nil {
		p.n = make(map[netip.Addr]int)
	}
	p.n[addr]++
	p.peak = max(p.peak, len(p.n))
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.n[addr]--; p.n[addr] <= 0 {
				delete(p.n, addr)
				p.n = shrink(p.n, &p.peak)
			}
		})
	}, true
}
