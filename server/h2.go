package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"

	"github.com/heraldhub/herald/hub"
)

// The hub's own HTTP/2 server. Served by Go's, an HTTP/2 connection keeps two goroutines, its
// tls.Conn with the record buffers the handshake grew, frame buffers and, per stream, a
// goroutine and a write buffer: 70 KiB for a browser tab with one EventSource, 28 KiB for each
// more. Yet an SSE stream is idle most of its life, and a connection that carries only SSE
// streams has nothing to read but the client's rare control frames.
//
// So a TLS 1.3 connection that negotiated "h2" is taken over after the handshake, as a TLS 1.3
// HTTP/1.1 stream is after its response head (tlsstream.go): the tap gave both traffic
// secrets and kept the bytes read, the server's SETTINGS is the last record the tls.Conn
// writes, and from then on the connection seals and opens its own records on a descriptor of
// its own, out of Go's poller. It is a task of the writer pool: the watcher reports its
// socket readable, writable or hung up, and a writer reads what arrived (frames, decoded
// headers), writes what its SSE streams have queued and answers control frames, then lets
// it go. An idle connection holds no goroutine and no buffer.
//
// Every request starts a goroutine that runs the hub's handler with a ResponseWriter of this
// server (h2stream.go). A subscription hands its stream to the connection once its head,
// opening comment and history are out, and the goroutine ends, as a hijacked HTTP/1.1 stream
// does; any other request (a publish, the UI, the subscriptions API) is served on its
// goroutine to the end, its writes flow-controlled and sealed under the connection's lock.
// Events are written by the pool, as for every other stream.
//
// Connections that negotiated TLS 1.2, or where a step of the takeover fails before the
// server's SETTINGS went out, are served by golang.org/x/net/http2; a later failure closes
// the connection. A client that sends a TLS KeyUpdate is disconnected and reconnects.

// Settings of the hub's HTTP/2 server.
const (
	h2MaxFrame     = 1 << 14  // SETTINGS_MAX_FRAME_SIZE: the default, the largest frame read
	h2StreamWindow = 64 << 10 // SETTINGS_INITIAL_WINDOW_SIZE: a request body in flight per stream
	h2ConnWindow   = 1 << 20  // the connection's receive window: request bodies in flight per connection
	h2MaxStreams   = 250      // SETTINGS_MAX_CONCURRENT_STREAMS
	// SETTINGS_HEADER_TABLE_SIZE: none. A table of the client's request headers would be
	// kept for the connection's life, and a connection of SSE streams makes few requests.
	h2HeaderTable = 0
	h2MaxOut      = 1 << 20 // bytes a full socket refused that a connection may keep
	// h2MaxBlock bounds a header block (HEADERS and its CONTINUATION frames), beyond the
	// header list size it announces, against a flood of CONTINUATION frames.
	h2MaxBlock = 128 << 10
	// h2MaxRefused ends a connection after this many streams it was refused or reset in a
	// row, against streams opened and reset at once.
	h2MaxRefused = 1000
	// h2ReadBudget bounds what one service reads, so that a client cannot keep a writer (and
	// the connection's lock) to itself; the rest is read at its next turn, from the back of
	// the pool's run queue.
	h2ReadBudget = 64 << 10
)

// h2Events are the events a connection's socket is watched for, edge-triggered.
const h2Events = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET

// h2Conn is an HTTP/2 connection served by the hub's own server.
type h2Conn struct {
	s     *Server
	p     *pool
	hs    *http.Server
	state atomic.Int32 // scheduling: see pool.schedule

	fd       int    // the connection's own descriptor
	token    uint64 // its name in the watcher
	counted  bool   // the connection is in Server.open until closed
	remote   string
	tlsState *tls.ConnectionState
	ctx      context.Context // of every request: the server's values

	hangup   atomic.Bool // the watcher saw the client close or reset the connection
	more     atomic.Bool // the read budget ran out: see requeue
	readable atomic.Bool // the watcher saw bytes arrive
	writable atomic.Bool // the watcher saw the socket take more

	// rmu guards ready, the SSE streams that have events queued: Notify, called by the
	// hub's loops, must never wait for mu.
	rmu   sync.Mutex
	ready []*h2Stream

	// Reading: owned by the servicing writer.
	open    *recordOpener
	inRaw   []byte // the start of a record not whole yet
	frag    []byte // the start of a frame not whole yet
	preface bool   // the client preface was read
	dec     *hpack.Decoder
	block   []byte // a header block waiting for its CONTINUATION frames
	blockID uint32 // its stream; 0 when none is waiting
	blockFl byte   // its HEADERS frame's flags
	acked   bool   // the client acknowledged the server's SETTINGS
	// ended remembers the last streams the server ended while the client could still send on
	// them: what the client sent before it heard is ignored (RFC 9113, 5.1).
	ended  [16]uint32
	endedN int

	mu         sync.Mutex
	cond       sync.Cond // handlers waiting for a window, for the socket, or for a body
	seal       *recordSealer
	wbuf       []byte // frames to seal at the next flush; nil between services
	out        []byte // sealed bytes the socket did not take yet
	blocked    int64  // unix nanoseconds since the socket has been full; 0 if not
	enc        *hpack.Encoder
	encBuf     *sliceWriter
	sendWindow int64 // the client's connection window: what may still be sent
	recvWindow int64 // what the client may still send on the connection
	peerWindow int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame  int   // the client's SETTINGS_MAX_FRAME_SIZE
	streams    map[uint32]*h2Stream
	lastID     uint32 // the highest stream the client opened
	handlers   int    // request goroutines running
	sse        int    // SSE streams served by the pool
	refused    int    // streams refused or reset by the client in a row
	idleSince  int64  // unix nanoseconds since the connection has had no stream
	active     int64  // unix nanoseconds of the last service
	goingAway  bool   // GOAWAY sent: no new streams, close once the last one ends
	closed     bool
	walk       bool              // look at every SSE stream at the next service (windows opened, ticks)
	gone       []*hub.Subscriber // to unsubscribe once mu is released
}

// sliceWriter is the io.Writer the HPACK encoder writes header blocks to.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (c *h2Conn) sched() *atomic.Int32 { return &c.state }
func (c *h2Conn) requeue() bool        { return c.more.Swap(false) }

// wake is the watcher's report of the connection's socket.
func (c *h2Conn) wake(events uint32) {
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.hangup.Store(true)
	}
	if events&unix.EPOLLIN != 0 {
		c.readable.Store(true)
	}
	if events&unix.EPOLLOUT != 0 {
		c.writable.Store(true)
	}
	c.p.schedule(c)
}

// EnableHTTP2 makes hs serve its HTTP/2 connections with the hub's own server (see above),
// and say GOAWAY to them when hs shuts down. hs must serve TLS with Server.TLSConfig.
// Without hijacking, hs keeps net/http's HTTP/2 server.
func (s *Server) EnableHTTP2(hs *http.Server) {
	if s.cfg.DisableHijack {
		return
	}
	if hs.TLSNextProto == nil {
		hs.TLSNextProto = make(map[string]func(*http.Server, *tls.Conn, http.Handler))
	}
	hs.TLSNextProto["h2"] = s.serveH2
	hs.RegisterOnShutdown(func() {
		if p := s.pool(); p != nil { // nil once Close has run
			p.goAway()
		}
	})
}

// h2Fallback serves the HTTP/2 connections that keep their tls.Conn.
var h2Fallback = &http2.Server{}

// serveH2 takes over an HTTP/2 connection, or has golang.org/x/net/http2 serve it. net/http
// closes tc when it returns: a connection taken over keeps its socket through its own
// descriptor, and tc can no longer write (trackedConn.shed).
func (s *Server) serveH2(hs *http.Server, tc *tls.Conn, h http.Handler) {
	fallback, err := s.takeOverH2(hs, tc)
	switch {
	case err == nil:
	case fallback:
		s.log.Debug("an HTTP/2 connection is served by golang.org/x/net/http2", "err", err)
		h2Fallback.ServeConn(tc, &http2.ServeConnOpts{BaseConfig: hs, Handler: h})
	default:
		s.log.Debug("an HTTP/2 connection could not be taken over and is closed", "err", err)
	}
}

// takeOverH2 makes tc a connection of the hub's own HTTP/2 server. When it cannot, it says
// why, and whether tc may still be served by another server: not once the server's SETTINGS
// went out, which another server would contradict.
func (s *Server) takeOverH2(hs *http.Server, tlsConn *tls.Conn) (fallback bool, err error) {
	p := s.pool()
	tc := tappedConn(tlsConn)
	if tc == nil || p == nil || p.watcher == nil {
		return true, errors.New("the connection is not tapped, or sockets are not watched here")
	}
	tap := tc.tap
	state := tlsConn.ConnectionState()
	if state.Version != tls.VersionTLS13 {
		tc.tap = nil
		return true, errors.New("not TLS 1.3")
	}
	opener, rest, err := tap.opener(state.CipherSuite)
	if err != nil {
		tc.tap = nil
		return true, err
	}
	// The server's connection preface goes through the tls.Conn: its last record tells the
	// sealer where to go on.
	tap.arm()
	preface := appendSettings(nil,
		h2Setting{h2SettingHeaderTableSize, h2HeaderTable},
		h2Setting{h2SettingMaxConcurrentStreams, h2MaxStreams},
		h2Setting{h2SettingInitialWindowSize, h2StreamWindow},
		h2Setting{h2SettingMaxHeaderListSize, uint32(maxHeaderBytes(hs))},
		h2Setting{h2SettingEnablePush, 0})
	preface = appendWindowUpdate(preface, 0, h2ConnWindow-65535)
	_, err = tlsConn.Write(preface)
	tc.tap = nil
	if err != nil {
		return false, err
	}
	sealer, err := tap.sealer(state.CipherSuite)
	if err != nil {
		return false, err
	}
	state.NegotiatedProtocol = "h2"
	ctx := context.WithValue(context.Background(), http.ServerContextKey, hs)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, tc.LocalAddr())
	c := &h2Conn{
		s: s, p: p, hs: hs, remote: tc.RemoteAddr().String(), tlsState: &state, ctx: ctx,
		open: opener, inRaw: rest, seal: sealer,
		// Until the client acknowledges the settings, it may use the default table.
		dec:        hpack.NewDecoder(4096, nil),
		sendWindow: 65535, recvWindow: h2ConnWindow, peerWindow: 65535, peerFrame: 1 << 14,
		streams:   make(map[uint32]*h2Stream),
		idleSince: time.Now().UnixNano(),
	}
	c.dec.SetMaxStringLength(maxHeaderBytes(hs))
	c.cond.L = &c.mu
	// Scheduled already: an event of the socket until it is set up only marks it pending.
	c.state.Store(streamScheduled)
	fd, _, tok, err := p.watcher.register(tc.Conn, c, h2Events)
	if err != nil {
		return false, err
	}
	c.fd, c.token = fd, tok
	tc.shed.Store(true)
	c.counted = hold(tlsConn)
	if !p.addConn(c) {
		c.mu.Lock()
		c.closeLocked(nil)
		c.mu.Unlock()
		c.unsubscribeGone()
		return false, nil
	}
	c.readable.Store(true)
	// Serve what the handshake read ahead, then go through the scheduler like any wake-up.
	for {
		c.service()
		if c.state.CompareAndSwap(streamScheduled, streamIdle) {
			break
		}
		c.state.Store(streamScheduled)
	}
	if c.requeue() {
		p.schedule(c)
	}
	return false, nil
}

// maxHeaderBytes is the header list size hs allows.
func maxHeaderBytes(hs *http.Server) int {
	if hs.MaxHeaderBytes > 0 {
		return hs.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

// service is the pool's turn of the connection: read what arrived, write what is queued.
func (c *h2Conn) service() {
	c.mu.Lock()
	func() {
		defer func() {
			if v := recover(); v != nil {
				c.s.log.Error("panic serving an HTTP/2 connection", "remote", c.remote, "panic", v)
				c.closeLocked(fmt.Errorf("panic: %v", v))
			}
		}()
		c.serviceLocked()
	}()
	c.mu.Unlock()
	c.unsubscribeGone()
}

func (c *h2Conn) serviceLocked() {
	if c.closed {
		return
	}
	c.active = time.Now().UnixNano()
	if c.hangup.Load() {
		c.closeLocked(nil)
		return
	}
	if c.writable.Swap(false) && len(c.out) > 0 {
		if err := c.flushOut(); err != nil {
			c.closeLocked(err)
			return
		}
		if len(c.out) == 0 {
			c.walk = true // streams that waited for the socket
			c.cond.Broadcast()
		}
	}
	if c.readable.Swap(false) {
		if err := c.readSocket(); err != nil {
			c.fail(err)
			return
		}
	}
	if c.closed {
		return
	}
	c.serveStreams()
	if err := c.flush(); err != nil {
		c.closeLocked(err)
		return
	}
	if c.goingAway && len(c.streams) == 0 && c.handlers == 0 {
		c.closeLocked(nil)
	}
}

// fail ends the connection for err: a connection error says GOAWAY with its code first.
func (c *h2Conn) fail(err error) {
	var he *h2Error
	switch {
	case errors.As(err, &he):
		c.s.log.Debug("HTTP/2 connection error", "remote", c.remote, "err", err)
		c.wbuf = appendGoAway(c.frames(), c.lastID, he.code)
		_ = c.flush()
		c.drain()
	case errors.Is(err, errClientClosing):
		err = nil
	default:
		c.s.log.Debug("HTTP/2 connection ended", "remote", c.remote, "err", err)
	}
	c.closeLocked(err)
}

// drain reads and drops what the client sent and the server will not read (up to a limit),
// so that closing the socket does not reset the connection before the client read the
// GOAWAY.
func (c *h2Conn) drain() {
	var b [4096]byte
	for range 16 {
		if n, err := unix.Read(c.fd, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

// readSocket reads everything the socket holds (the watcher is edge-triggered) and handles
// the frames it carries.
func (c *h2Conn) readSocket() error {
	bp := c.p.rbufs.Get().(*[]byte)
	defer c.p.rbufs.Put(bp)
	buf := *bp
	if len(c.inRaw)+maxRecord > len(buf) { // what the handshake read ahead may be more
		buf = make([]byte, len(c.inRaw)+maxRecord)
	}
	n := copy(buf, c.inRaw)
	c.inRaw = nil
	read := 0
	for {
		m, err := unix.Read(c.fd, buf[n:])
		if m > 0 {
			n += m
			read += m
		}
		done, perr := c.readRecords(buf[:n])
		if perr != nil {
			return perr
		}
		n = copy(buf, buf[done:n])
		// Answers (acknowledgements, window updates) leave as they are made: a client that
		// floods control frames without reading fills its own socket, then out, and is cut.
		if ferr := c.flush(); ferr != nil {
			return ferr
		}
		switch {
		case err == nil && m == 0:
			c.hangup.Store(true) // end of file
			return nil
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			if n > 0 {
				c.inRaw = bytes.Clone(buf[:n])
			}
			return nil
		case errors.Is(err, unix.EINTR):
		default:
			return err
		}
		if c.closed {
			return nil
		}
		if read >= h2ReadBudget {
			if n > 0 {
				c.inRaw = bytes.Clone(buf[:n])
			}
			c.readable.Store(true)
			c.more.Store(true) // the rest at the back of the run queue
			return nil
		}
	}
}

// readRecords opens the whole records at the start of b and handles their content. It
// returns how many bytes it consumed.
func (c *h2Conn) readRecords(b []byte) (int, error) {
	done := 0
	for {
		n, err := recordLen(b[done:])
		if err != nil {
			return done, err
		}
		if n == 0 || done+n > len(b) {
			return done, nil
		}
		plain, typ, err := c.open.open(b[done : done+n])
		if err != nil {
			return done, err
		}
		done += n
		switch typ {
		case recordApplicationData:
			if err := c.readFrames(plain); err != nil {
				return done, err
			}
		case recordAlert:
			if len(plain) != 2 {
				return done, errRecordType
			}
			if plain[1] == 0 { // close_notify
				return done, errClientClosing
			}
			return done, fmt.Errorf("TLS alert %d from the client", plain[1])
		case 22: // handshake: a KeyUpdate (a client sends nothing else after the handshake)
			return done, errKeyUpdate
		default:
			return done, errRecordType
		}
		if c.closed {
			return done, nil
		}
	}
}

// readFrames handles the whole frames of b, after what was left of the previous record.
func (c *h2Conn) readFrames(b []byte) error {
	if len(c.frag) > 0 {
		c.frag = append(c.frag, b...)
		b = c.frag
	}
	for !c.closed {
		if !c.preface {
			if len(b) < len(h2Preface) {
				if !bytes.HasPrefix([]byte(h2Preface), b) {
					return errPreface
				}
				break
			}
			if string(b[:len(h2Preface)]) != h2Preface {
				return errPreface
			}
			b = b[len(h2Preface):]
			c.preface = true
			continue
		}
		if len(b) < h2FrameHeaderLen {
			break
		}
		h := parseFrameHeader(b)
		if h.length > h2MaxFrame {
			return connError(h2FrameSizeError, "frame larger than SETTINGS_MAX_FRAME_SIZE")
		}
		if len(b) < h2FrameHeaderLen+h.length {
			break
		}
		if err := c.handleFrame(h, b[h2FrameHeaderLen:h2FrameHeaderLen+h.length]); err != nil {
			var he *h2Error
			if !errors.As(err, &he) || he.stream == 0 {
				return err
			}
			c.resetStream(he.stream, he.code)
		}
		b = b[h2FrameHeaderLen+h.length:]
	}
	if len(b) == 0 {
		c.frag = nil
	} else {
		c.frag = bytes.Clone(b)
	}
	return nil
}

// handleFrame handles one frame. A stream error resets the stream; any other error ends the
// connection.
func (c *h2Conn) handleFrame(h h2FrameHeader, p []byte) error {
	if c.blockID != 0 && (h.typ != h2Continuation || h.stream != c.blockID) {
		return connError(h2ProtocolError, "a header block was interrupted")
	}
	switch h.typ {
	case h2Data:
		return c.onData(h, p)
	case h2Headers:
		if h.stream == 0 || h.stream%2 == 0 {
			return connError(h2ProtocolError, "HEADERS on stream 0 or an even stream")
		}
		block, err := unpad(h, p)
		if err != nil {
			return err
		}
		if h.flags&h2FlagEndHeaders == 0 {
			c.block = append(c.block[:0], block...)
			c.blockID, c.blockFl = h.stream, h.flags
			return nil
		}
		return c.onHeaders(h.stream, h.flags, block)
	case h2Continuation:
		if c.blockID == 0 {
			return connError(h2ProtocolError, "CONTINUATION without HEADERS")
		}
		if len(c.block)+len(p) > h2MaxBlock {
			return connError(h2EnhanceYourCalm, "header block too large")
		}
		c.block = append(c.block, p...)
		if h.flags&h2FlagEndHeaders == 0 {
			return nil
		}
		id, fl, block := c.blockID, c.blockFl, c.block
		c.blockID, c.block = 0, nil
		return c.onHeaders(id, fl, block)
	case h2Priority:
		if h.stream == 0 {
			return connError(h2ProtocolError, "PRIORITY on stream 0")
		}
		if h.length != 5 {
			if h.stream > c.lastID { // no RST_STREAM for a stream never opened
				return connError(h2FrameSizeError, "PRIORITY of the wrong size")
			}
			return streamError(h.stream, h2FrameSizeError, "PRIORITY of the wrong size")
		}
		return nil
	case h2RSTStream:
		if h.stream == 0 || h.length != 4 {
			return connError(h2ProtocolError, "RST_STREAM on stream 0 or of the wrong size")
		}
		if h.stream > c.lastID {
			return connError(h2ProtocolError, "RST_STREAM of an idle stream")
		}
		st := c.streams[h.stream]
		if st == nil {
			return nil
		}
		served := st.sseOn
		c.streamGone(st, true)
		if served {
			return nil // an EventSource closed: normal
		}
		return c.countRefused() // a request reset before it was answered
	case h2Settings:
		return c.onSettings(h, p)
	case h2PushPromise:
		return connError(h2ProtocolError, "PUSH_PROMISE from a client")
	case h2Ping:
		if h.stream != 0 || h.length != 8 {
			return connError(h2ProtocolError, "PING on a stream or of the wrong size")
		}
		if h.flags&h2FlagAck == 0 {
			c.wbuf = appendFrameHeader(c.frames(), 8, h2Ping, h2FlagAck, 0)
			c.wbuf = append(c.wbuf, p...)
		}
		return nil
	case h2GoAway:
		if h.stream != 0 || h.length < 8 {
			return connError(h2ProtocolError, "GOAWAY on a stream or too short")
		}
		c.goingAway = true // the client opens no more streams
		return nil
	case h2WindowUpdate:
		return c.onWindowUpdate(h, p)
	}
	return nil // unknown frame types are ignored
}

// countRefused counts a stream refused or reset by the client before it was served; too many
// in a row is a client opening and resetting streams to make the server work for nothing.
func (c *h2Conn) countRefused() error {
	c.refused++
	if c.refused > h2MaxRefused {
		return connError(h2EnhanceYourCalm, "too many streams reset or refused")
	}
	return nil
}

func (c *h2Conn) onSettings(h h2FrameHeader, p []byte) error {
	if h.stream != 0 {
		return connError(h2ProtocolError, "SETTINGS on a stream")
	}
	if h.flags&h2FlagAck != 0 {
		if h.length != 0 {
			return connError(h2FrameSizeError, "SETTINGS ACK with a payload")
		}
		if !c.acked {
			c.acked = true
			c.dec.SetAllowedMaxDynamicTableSize(h2HeaderTable)
		}
		return nil
	}
	err := parseSettings(p, func(s h2Setting) error {
		switch s.id {
		case h2SettingInitialWindowSize:
			delta := int64(s.val) - c.peerWindow
			c.peerWindow = int64(s.val)
			for _, st := range c.streams {
				st.window += delta
				if st.window > h2MaxWindow {
					return connError(h2FlowControlError, "a stream window above 2^31-1")
				}
			}
			c.walk = true
			c.cond.Broadcast()
		case h2SettingMaxFrameSize:
			c.peerFrame = int(s.val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.wbuf = appendFrameHeader(c.frames(), 0, h2Settings, h2FlagAck, 0)
	return nil
}

func (c *h2Conn) onWindowUpdate(h h2FrameHeader, p []byte) error {
	if h.length != 4 {
		return connError(h2FrameSizeError, "WINDOW_UPDATE of the wrong size")
	}
	incr := int64(uint32(p[0])<<24|uint32(p[1])<<16|uint32(p[2])<<8|uint32(p[3])) & h2MaxWindow
	if h.stream == 0 {
		if incr == 0 {
			return connError(h2ProtocolError, "WINDOW_UPDATE of 0")
		}
		c.sendWindow += incr
		if c.sendWindow > h2MaxWindow {
			return connError(h2FlowControlError, "the connection window above 2^31-1")
		}
	} else {
		if incr == 0 {
			if h.stream > c.lastID { // no RST_STREAM for a stream never opened
				return connError(h2ProtocolError, "WINDOW_UPDATE of 0")
			}
			return streamError(h.stream, h2ProtocolError, "WINDOW_UPDATE of 0")
		}
		st := c.streams[h.stream]
		if st == nil {
			if h.stream > c.lastID {
				return connError(h2ProtocolError, "WINDOW_UPDATE of an idle stream")
			}
			return nil // a stream that ended
		}
		st.window += incr
		if st.window > h2MaxWindow {
			return streamError(h.stream, h2FlowControlError, "a stream window above 2^31-1")
		}
	}
	c.walk = true
	c.cond.Broadcast()
	return nil
}

func (c *h2Conn) onData(h h2FrameHeader, p []byte) error {
	if h.stream == 0 {
		return connError(h2ProtocolError, "DATA on stream 0")
	}
	data, err := unpad(h, p)
	if err != nil {
		return err
	}
	c.recvWindow -= int64(h.length)
	if c.recvWindow < 0 {
		return connError(h2FlowControlError, "DATA beyond the connection window")
	}
	// What is not given to a handler (padding, a stream that ended) is credited back now.
	credit := h.length - len(data)
	defer func() {
		if credit > 0 {
			c.recvWindow += int64(credit)
			c.wbuf = appendWindowUpdate(c.frames(), 0, uint32(credit))
		}
	}()
	st := c.streams[h.stream]
	if st == nil || st.recvEnd {
		credit = h.length
		switch {
		case h.stream > c.lastID:
			return connError(h2ProtocolError, "DATA on an idle stream")
		case c.endedRecently(h.stream):
			return nil // sent before the client heard that the stream ended
		}
		return streamError(h.stream, h2StreamClosed, "DATA on a closed stream")
	}
	st.recvWindow -= int64(h.length)
	if st.recvWindow < 0 {
		credit = h.length
		return streamError(h.stream, h2FlowControlError, "DATA beyond the stream window")
	}
	if pad := h.length - len(data); pad > 0 && h.flags&h2FlagEndStream == 0 {
		st.recvWindow += int64(pad) // padding is given back at once, on the stream too
		c.wbuf = appendWindowUpdate(c.frames(), st.id, uint32(pad))
	}
	st.received += int64(len(data))
	if st.length >= 0 && (st.received > st.length || h.flags&h2FlagEndStream != 0 && st.received != st.length) {
		credit += len(data)
		return streamError(h.stream, h2ProtocolError, "DATA does not add up to content-length")
	}
	if st.bodyClosed {
		credit += len(data) // nobody reads it
	} else if len(data) > 0 {
		st.body = append(st.body, data...)
	}
	if h.flags&h2FlagEndStream != 0 {
		st.recvEnd = true
	}
	c.cond.Broadcast()
	return nil
}

// dropBody gives the client back the connection window of what it sent on st that nobody
// will read.
func (c *h2Conn) dropBody(st *h2Stream) {
	if n := len(st.body); n > 0 && !c.closed {
		c.recvWindow += int64(n)
		c.wbuf = appendWindowUpdate(c.frames(), 0, uint32(n))
	}
	st.body = nil
}

// endedEarly remembers a stream the server ended while the client could still send on it.
func (c *h2Conn) endedEarly(id uint32) {
	c.ended[c.endedN%len(c.ended)] = id
	c.endedN++
}

// endedRecently reports whether the server ended stream id lately (see endedEarly).
func (c *h2Conn) endedRecently(id uint32) bool {
	for _, e := range c.ended {
		if e == id {
			return true
		}
	}
	return false
}

// resetStream says RST_STREAM with code and forgets the stream.
func (c *h2Conn) resetStream(id uint32, code uint32) {
	c.wbuf = appendRSTStream(c.frames(), id, code)
	c.endedEarly(id)
	if st := c.streams[id]; st != nil {
		c.streamGone(st, false)
	}
}

// streamGone ends a stream that was reset, by the client (byClient) or by the server: an SSE
// stream is unsubscribed, a request's handler sees its context cancelled and its reads and
// writes fail.
func (c *h2Conn) streamGone(st *h2Stream, byClient bool) {
	if st.sseOn {
		reason := "reset"
		if byClient {
			reason = "client"
		}
		c.endSSE(st, reason, nil, false)
		return
	}
	st.reset = true
	st.cancel()
	c.dropBody(st)
	delete(c.streams, st.id)
	c.streamsChanged()
	c.cond.Broadcast()
}

// streamsChanged notes when the connection's last stream went.
func (c *h2Conn) streamsChanged() {
	if len(c.streams) == 0 {
		c.idleSince = time.Now().UnixNano()
	}
}

// flush seals and writes the frames in wbuf.
func (c *h2Conn) flush() error {
	if len(c.wbuf) == 0 || c.closed {
		c.putWbuf()
		return nil
	}
	bp := c.p.bufs.Get().(*[]byte)
	out, err := c.seal.seal((*bp)[:0], c.wbuf, recordApplicationData)
	c.putWbuf()
	if err == nil {
		err = c.write(out)
	}
	c.p.putBuf(bp, out)
	return err
}

// putWbuf gives wbuf back to the pool's buffers: an idle connection keeps none.
func (c *h2Conn) putWbuf() {
	if c.wbuf != nil {
		b := c.wbuf[:0]
		c.wbuf = nil
		c.p.putBuf(&b, b)
	}
}

// frames returns wbuf, taking a buffer of the pool for it when it has none.
func (c *h2Conn) frames() []byte {
	if c.wbuf == nil {
		c.wbuf = (*c.p.bufs.Get().(*[]byte))[:0]
	}
	return c.wbuf
}

// write writes sealed bytes without blocking: what the socket refuses waits in out, up to
// h2MaxOut, until the watcher reports it writable.
func (c *h2Conn) write(b []byte) error {
	if len(c.out) > 0 {
		if len(c.out)+len(b) > h2MaxOut {
			return fmt.Errorf("the client does not read: %d bytes waiting", len(c.out))
		}
		c.out = append(c.out, b...)
		return nil
	}
	n, err := writeFull(c.fd, b)
	if errors.Is(err, errWouldBlock) {
		c.out = append(c.out[:0], b[n:]...)
		c.blocked = time.Now().UnixNano()
		return c.p.watcher.modify(c.fd, c.token, h2Events, true)
	}
	return err
}

// flushOut writes what the socket refused before.
func (c *h2Conn) flushOut() error {
	n, err := writeFull(c.fd, c.out)
	if errors.Is(err, errWouldBlock) {
		c.out = c.out[:copy(c.out, c.out[n:])]
		return nil
	}
	if err != nil {
		return err
	}
	c.out, c.blocked = nil, 0
	return c.p.watcher.modify(c.fd, c.token, h2Events, false)
}

// closeLocked ends the connection and every stream on it. err, when set, is why.
func (c *h2Conn) closeLocked(err error) {
	if c.closed {
		return
	}
	for _, st := range c.streams {
		if st.sseOn {
			c.endSSE(st, "client", err, false)
		} else {
			st.reset = true
			st.cancel()
		}
	}
	c.closed = true
	clear(c.streams)
	c.cond.Broadcast()
	c.p.watcher.unregister(c.fd, c.token)
	_ = closeFD(c.fd)
	c.out, c.inRaw, c.frag, c.block = nil, nil, nil, nil
	c.putWbuf()
	c.p.removeConn(c)
	if c.counted {
		c.counted = false
		c.s.open.Add(-1)
	}
}

// goAwayLocked says GOAWAY: the client opens no new stream on the connection, which closes
// once its streams have ended.
func (c *h2Conn) goAwayLocked() {
	if c.closed || c.goingAway {
		return
	}
	c.goingAway = true
	c.frames()
	c.wbuf = appendGoAway(c.frames(), c.lastID, h2NoError)
	if err := c.flush(); err != nil || (len(c.streams) == 0 && c.handlers == 0) {
		c.closeLocked(err)
	}
}

// unsubscribeGone removes from the hub the subscribers of the streams that ended, out of mu:
// announcing a departure may wait on the transport.
func (c *h2Conn) unsubscribeGone() {
	c.mu.Lock()
	gone := c.gone
	c.gone = nil
	c.mu.Unlock()
	for _, sub := range gone {
		c.s.hub.Unsubscribe(sub)
	}
}

// tick is the pool ticker's look at the connection: heartbeats and lifetimes of its SSE
// streams, streams and sockets stalled for longer than dispatch_timeout, and idleness.
func (c *h2Conn) tick(now, beatAfter, stallAfter, idleAfter int64) {
	c.mu.Lock()
	due := false
	switch {
	case c.closed:
	case c.blocked > 0 && stallAfter > 0 && now-c.blocked >= stallAfter:
		c.s.log.Debug("HTTP/2 connection dropped: its socket stayed full", "remote", c.remote)
		c.closeLocked(fmt.Errorf("socket full for longer than %v", time.Duration(stallAfter)))
	case len(c.streams) == 0 && c.handlers == 0 && idleAfter > 0 && now-c.idleSince >= idleAfter:
		c.goAwayLocked()
		if !c.closed {
			c.closeLocked(nil)
		}
	default:
		if now-c.active >= int64(time.Second) && c.handlers == 0 && len(c.out) == 0 {
			// Idle for a while: keep the keys, not the ciphers made of them.
			c.seal.idle()
			c.open.idle()
		}
		for _, st := range c.streams {
			if !st.sseOn {
				continue
			}
			switch {
			case st.winBlocked > 0 && stallAfter > 0 && now-st.winBlocked >= stallAfter:
				st.stalled = true
				due = true
			case st.end > 0 && now >= st.end:
				st.expired = true
				due = true
			case st.winBlocked > 0:
			case beatAfter > 0 && now-st.lastWrite >= beatAfter:
				st.beat = true
				due = true
			}
		}
		if due {
			c.walk = true
		}
	}
	c.mu.Unlock()
	c.unsubscribeGone()
	if due {
		c.p.schedule(c)
	}
}

// addConn registers c with the pool; false when the pool is closing.
func (p *pool) addConn(c *h2Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sealed {
		return false
	}
	p.conns[c] = struct{}{}
	p.connPeak = max(p.connPeak, len(p.conns))
	return true
}

func (p *pool) removeConn(c *h2Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.conns = shrink(p.conns, &p.connPeak)
	p.mu.Unlock()
}

// goAway says GOAWAY on every HTTP/2 connection: at shutdown.
func (p *pool) goAway() {
	for _, c := range p.connList() {
		c.mu.Lock()
		c.goAwayLocked()
		c.mu.Unlock()
		c.unsubscribeGone()
	}
}

// connList returns the HTTP/2 connections.
func (p *pool) connList() []*h2Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := make([]*h2Conn, 0, len(p.conns))
	for c := range p.conns {
		l = append(l, c)
	}
	return l
}

// readBufSize holds a whole TLS record, and more to read fewer times.
const readBufSize = 2 * maxRecord

var _ net.Conn = (*trackedConn)(nil)
