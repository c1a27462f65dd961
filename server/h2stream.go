package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/sse"
)

// h2Stream is one stream of an h2Conn: a request served by a handler goroutine, then, for a
// subscription, an SSE stream the pool writes. Its fields are guarded by the connection's mu.
type h2Stream struct {
	c      *h2Conn
	id     uint32
	cancel context.CancelFunc

	window     int64  // what may still be sent on the stream
	recvWindow int64  // what the client may still send
	body       []byte // received, not yet read by the handler
	length     int64  // the request's content-length; -1 if none
	received   int64  // request body bytes received
	recvEnd    bool   // the client ended its side
	reset      bool   // reset, or the connection ended: the handler's reads and writes fail
	bodyClosed bool
	expect     bool // the client waits for 100 Continue before it sends the body
	responded  bool // the response's HEADERS went out
	done       bool // the handler returned: its body reads fail

	readDeadline  time.Time
	writeDeadline time.Time

	// SSE streams, once handed over (sseOn).
	sseOn      bool
	attached   atomic.Bool // Notify schedules the connection
	queued     atomic.Bool // on the connection's ready list
	sub        *hub.Subscriber
	releaseIP  func()
	end        int64  // when the lifetime ends, unix nanoseconds; 0: never
	lastWrite  int64  // unix nanoseconds
	pending    []byte // SSE bytes waiting for the window
	winBlocked int64  // unix nanoseconds since pending has waited for the window; 0 if not
	beat       bool
	expired    bool
	stalled    bool
	evs        []*hub.Event
}

// Notify is the subscriber's hub.Notifier: it puts the stream on its connection's ready list.
func (st *h2Stream) Notify() {
	if !st.attached.Load() {
		return
	}
	c := st.c
	if st.queued.CompareAndSwap(false, true) {
		c.rmu.Lock()
		c.ready = append(c.ready, st)
		c.rmu.Unlock()
	}
	c.p.schedule(c)
}

// onHeaders starts a stream from a request's header block, or ends the request body of a
// stream with trailers.
func (c *h2Conn) onHeaders(id uint32, flags byte, block []byte) error {
	// Decoded whatever becomes of the stream: the client's table must stay in step. Fields
	// beyond the header list size are decoded but not kept.
	var fields []hpack.HeaderField
	size, max := 0, maxHeaderBytes(c.hs)
	c.dec.SetEmitFunc(func(f hpack.HeaderField) {
		if size += len(f.Name) + len(f.Value) + 32; size <= max {
			fields = append(fields, f)
		}
	})
	// A copy: the decoder keeps a slice of what it was given, which would keep the read
	// buffer it lies in.
	_, err := c.dec.Write(bytes.Clone(block))
	if err == nil {
		err = c.dec.Close()
	}
	c.dec.SetEmitFunc(discardField)
	if err != nil {
		return connError(h2CompressionError, err.Error())
	}
	if size > max {
		if c.streams[id] == nil && id > c.lastID {
			c.lastID = id
		}
		return streamError(id, h2ProtocolError, "header list too large")
	}
	if st := c.streams[id]; st != nil {
		if st.recvEnd || flags&h2FlagEndStream == 0 {
			return streamError(id, h2ProtocolError, "HEADERS after the request's headers without ending it")
		}
		if st.length >= 0 && st.received != st.length {
			return streamError(id, h2ProtocolError, "DATA does not add up to content-length")
		}
		st.recvEnd = true // trailers, ignored
		c.cond.Broadcast()
		return nil
	}
	if id <= c.lastID {
		if c.endedRecently(id) {
			return nil // trailers sent before the client heard that the stream ended
		}
		return streamError(id, h2StreamClosed, "HEADERS on a closed stream")
	}
	c.lastID = id
	if c.goingAway || len(c.streams) >= h2MaxStreams || c.handlers >= h2MaxStreams {
		if err := c.countRefused(); err != nil {
			return err
		}
		return streamError(id, h2RefusedStream, "no new streams now")
	}
	req, err := c.request(fields, flags&h2FlagEndStream != 0)
	if err != nil {
		return streamError(id, h2ProtocolError, err.Error())
	}
	ctx, cancel := context.WithCancel(c.ctx)
	st := &h2Stream{c: c, id: id, cancel: cancel, window: c.peerWindow, recvWindow: h2StreamWindow,
		recvEnd: flags&h2FlagEndStream != 0, length: -1}
	if !st.recvEnd {
		st.length = req.ContentLength
		st.expect = strings.EqualFold(req.Header.Get("Expect"), "100-continue")
	}
	if !st.recvEnd {
		req.Body = &h2Body{st: st}
	}
	c.streams[id] = st
	c.handlers++
	go c.runHandler(st, req.WithContext(ctx))
	return nil
}

// request makes the http.Request of a header list (RFC 9113, 8.3).
func (c *h2Conn) request(fields []hpack.HeaderField, endStream bool) (*http.Request, error) {
	var method, scheme, authority, path string
	h := make(http.Header, len(fields))
	size := 0
	regular := false
	for _, f := range fields {
		size += len(f.Name) + len(f.Value) + 32
		if strings.HasPrefix(f.Name, ":") {
			if regular {
				return nil, errors.New("a pseudo-header after a regular one")
			}
			var dst *string
			switch f.Name {
			case ":method":
				dst = &method
			case ":scheme":
				dst = &scheme
			case ":authority":
				dst = &authority
			case ":path":
				dst = &path
			default:
				return nil, fmt.Errorf("pseudo-header %q", f.Name)
			}
			if *dst != "" {
				return nil, fmt.Errorf("pseudo-header %q twice", f.Name)
			}
			*dst = f.Value
			continue
		}
		regular = true
		if !validHeaderName(f.Name) {
			return nil, fmt.Errorf("header name %q", f.Name)
		}
		if !httpguts.ValidHeaderFieldValue(f.Value) {
			return nil, fmt.Errorf("the value of header %q", f.Name)
		}
		switch f.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, fmt.Errorf("connection-specific header %q", f.Name)
		case "te":
			if f.Value != "trailers" {
				return nil, errors.New("te other than trailers")
			}
		}
		key := http.CanonicalHeaderKey(f.Name)
		h[key] = append(h[key], f.Value)
	}
	if size > maxHeaderBytes(c.hs) {
		return nil, errors.New("header list too large")
	}
	if method == "" || scheme == "" || path == "" || method == http.MethodConnect {
		return nil, errors.New("missing :method, :scheme or :path, or CONNECT")
	}
	if !httpguts.ValidHeaderFieldName(method) {
		return nil, errors.New("invalid :method")
	}
	if path[0] != '/' && !(path == "*" && method == http.MethodOptions) {
		return nil, errors.New(":path is not an origin form")
	}
	if !httpguts.ValidHeaderFieldValue(authority) {
		return nil, errors.New("invalid :authority")
	}
	if cookies := h["Cookie"]; len(cookies) > 1 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if hosts := h["Host"]; len(hosts) > 1 || len(hosts) == 1 && authority != "" && hosts[0] != authority {
		return nil, errors.New("a Host header that differs from :authority")
	}
	if authority == "" {
		authority = h.Get("Host")
	}
	h.Del("Host")
	if len(h["Content-Length"]) > 1 {
		return nil, errors.New("several content-length headers")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, fmt.Errorf(":path: %w", err)
	}
	r := &http.Request{
		Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, Host: authority,
		RemoteAddr: c.remote, RequestURI: path, TLS: c.tlsState, Body: http.NoBody, ContentLength: -1,
	}
	if endStream {
		r.ContentLength = 0
	} else if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 || cl[0] == '+' {
			return nil, errors.New("invalid content-length")
		}
		r.ContentLength = n
	}
	return r, nil
}

// discardField is the HPACK decoder's emit function between header blocks.
func discardField(hpack.HeaderField) {}

// validHeaderName reports whether a field name is a lowercase token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b >= 'A' && b <= 'Z' || b <= ' ' || b >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", b) >= 0 {
			return false
		}
	}
	return true
}

// runHandler is a request's goroutine.
func (c *h2Conn) runHandler(st *h2Stream, r *http.Request) {
	w := &h2Writer{st: st, head: r.Method == http.MethodHead, header: make(http.Header)}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.s.log.Error("panic serving an HTTP/2 request", "remote", c.remote, "path", r.URL.Path, "panic", v)
			}
			w.finish(h2InternalError) // the answer is not whole: never END_STREAM
			return
		}
		if w.failed {
			w.finish(h2Cancel)
			return
		}
		w.finish(h2NoError)
	}()
	h := c.hs.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, r)
}

// h2Writer is the http.ResponseWriter of a request on an h2Conn. It writes through the
// connection at once: every Write is sent, as far as the windows allow, before it returns.
type h2Writer struct {
	st          *h2Stream
	head        bool // HEAD: the body is not sent
	header      http.Header
	sent        http.Header // the header as WriteHeader saw it
	code        int
	headersSent bool
	handedOver  bool // an SSE stream the pool serves now
	failed      bool // a write failed: the answer is not whole
}

func (w *h2Writer) Header() http.Header { return w.header }

func (w *h2Writer) WriteHeader(code int) {
	if w.code != 0 || code < 200 || code > 999 {
		return // informational answers are not sent
	}
	w.code = code
	w.sent = w.header.Clone()
}

func (w *h2Writer) Write(b []byte) (int, error) {
	if w.code == 0 {
		if _, ok := w.header["Content-Type"]; !ok && len(b) > 0 {
			w.header.Set("Content-Type", http.DetectContentType(b))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.head {
		return len(b), nil
	}
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := w.sendHeaders(false); err != nil {
		w.failed = true
		return 0, err
	}
	def := time.Now().Add(defaultWriteWait(c.s.cfg.DispatchTimeout))
	n := 0
	for n < len(b) {
		if err := w.waitToSend(def); err != nil {
			w.failed = true
			return n, err
		}
		st := w.st
		k := int(min(int64(len(b)-n), int64(c.peerFrame), st.window, c.sendWindow))
		c.wbuf = appendFrameHeader(c.frames(), k, h2Data, 0, st.id)
		c.wbuf = append(c.wbuf, b[n:n+k]...)
		st.window -= int64(k)
		c.sendWindow -= int64(k)
		n += k
		if err := c.flush(); err != nil {
			c.closeLocked(err)
			return n, err
		}
	}
	return n, nil
}

// defaultWriteWait is how long a Write without a deadline may wait for the client's windows
// and socket, in all.
func defaultWriteWait(dispatch time.Duration) time.Duration {
	if dispatch > 0 {
		return dispatch
	}
	return 30 * time.Second
}

// errStreamGone is what a handler's reads and writes get once its stream was reset or its
// connection ended.
var errStreamGone = errors.New("the HTTP/2 stream was reset or its connection closed")

// waitToSend waits, under mu, until the stream may send at least a byte and the socket is
// not full, or until the write deadline; without one, until def (the default of the Write: a
// client that never opens its window must not keep a handler forever).
func (w *h2Writer) waitToSend(def time.Time) error {
	st, c := w.st, w.st.c
	var wake deadlineWake
	defer wake.stop()
	for {
		deadline := st.writeDeadline
		if deadline.IsZero() {
			deadline = def
		}
		switch {
		case st.reset || c.closed:
			return errStreamGone
		case st.window > 0 && c.sendWindow > 0 && len(c.out) == 0:
			return nil
		case !time.Now().Before(deadline):
			return os.ErrDeadlineExceeded
		}
		wake.at(c, deadline)
		c.cond.Wait()
	}
}

// deadlineWake wakes the waiters of a connection at a deadline, so that one waiting for a
// window, the socket or a body sees its deadline pass. It follows the deadline as it moves.
type deadlineWake struct {
	timer *time.Timer
	when  time.Time
}

// at makes sure the waiters are woken at t (never, when t is zero), under mu.
func (d *deadlineWake) at(c *h2Conn, t time.Time) {
	if t.Equal(d.when) {
		return
	}
	d.stop()
	d.when = t
	if !t.IsZero() {
		d.timer = time.AfterFunc(time.Until(t), func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}
}

func (d *deadlineWake) stop() {
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// sendHeaders sends the response's HEADERS frame if it has not been sent, under mu.
func (w *h2Writer) sendHeaders(endStream bool) error {
	if w.headersSent {
		return nil
	}
	st, c := w.st, w.st.c
	if st.reset || c.closed {
		return errStreamGone
	}
	w.headersSent = true
	st.responded = true
	c.wbuf = appendHeaderBlock(c.frames(), st.id, c.encodeHeaders(w.code, w.sent), endStream, c.peerFrame)
	w.sent = nil
	if err := c.flush(); err != nil {
		c.closeLocked(err)
		return err
	}
	return nil
}

// encodeHeaders returns the header block of a response (a 1xx one: the status only), under mu.
func (c *h2Conn) encodeHeaders(code int, h http.Header) []byte {
	if c.enc == nil {
		c.encBuf = &sliceWriter{}
		c.enc = hpack.NewEncoder(c.encBuf)
		c.enc.SetMaxDynamicTableSizeLimit(0) // no table: nothing to keep per connection
	}
	_ = c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(code)})
	if code < 200 {
		return c.takeBlock()
	}
	if _, ok := h["Date"]; !ok {
		_ = c.enc.WriteField(hpack.HeaderField{Name: "date", Value: time.Now().UTC().Format(http.TimeFormat)})
	}
	for k, vs := range h {
		name := strings.ToLower(k)
		switch name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			continue
		}
		for _, v := range vs {
			_ = c.enc.WriteField(hpack.HeaderField{Name: name, Value: strings.Map(dropCRLF, v)})
		}
	}
	return c.takeBlock()
}

// takeBlock returns the header block encoded, which the connection no longer keeps.
func (c *h2Conn) takeBlock() []byte {
	b := c.encBuf.b
	c.encBuf.b = nil
	return b
}

// dropCRLF removes CR and LF from header values.
func dropCRLF(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}

// Flush sends the headers if they have not been: what was written is sent already.
func (w *h2Writer) Flush() { _ = w.FlushError() }

// FlushError is Flush, with the error of a stream that is gone.
func (w *h2Writer) FlushError() error {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	c := w.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	return w.sendHeaders(false)
}

// SetReadDeadline bounds the reads of the request body, for http.ResponseController.
func (w *h2Writer) SetReadDeadline(t time.Time) error { return w.setDeadline(&w.st.readDeadline, t) }

// SetWriteDeadline bounds the writes, for http.ResponseController.
func (w *h2Writer) SetWriteDeadline(t time.Time) error { return w.setDeadline(&w.st.writeDeadline, t) }

// setDeadline sets one of the stream's deadlines and wakes its waiters to look at it.
func (w *h2Writer) setDeadline(d *time.Time, t time.Time) error {
	c := w.st.c
	c.mu.Lock()
	*d = t
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

// EnableFullDuplex: HTTP/2 streams are always full duplex.
func (w *h2Writer) EnableFullDuplex() error { return nil }

// finish ends the response once the handler returned: END_STREAM, or RST_STREAM with code
// after a panic; a request body not read to its end is refused with RST_STREAM NO_ERROR.
func (w *h2Writer) finish(code uint32) {
	st, c := w.st, w.st.c
	c.mu.Lock()
	c.handlers--
	st.done = true
	c.cond.Broadcast() // a goroutine of the handler's still reading the body
	switch {
	case w.handedOver:
	case st.reset || c.closed:
	case code != h2NoError:
		c.resetStream(st.id, code)
	default:
		if w.code == 0 {
			w.WriteHeader(http.StatusOK)
		}
		if !w.headersSent {
			_ = w.sendHeaders(true)
		} else {
			c.wbuf = appendFrameHeader(c.frames(), 0, h2Data, h2FlagEndStream, st.id)
		}
		if !st.recvEnd {
			c.wbuf = appendRSTStream(c.frames(), st.id, h2NoError)
			c.endedEarly(st.id)
		}
		c.refused = 0
		delete(c.streams, st.id)
		c.streamsChanged()
		st.cancel()
	}
	if !w.handedOver {
		c.dropBody(st)
	}
	if !c.closed {
		if err := c.flush(); err != nil {
			c.closeLocked(err)
		} else if c.goingAway && len(c.streams) == 0 && c.handlers == 0 {
			c.closeLocked(nil)
		}
	}
	c.mu.Unlock()
	c.unsubscribeGone()
}

// h2Body is a request body on an h2Conn: what DATA frames brought, read under the stream
// window, which is opened again as the handler reads.
type h2Body struct{ st *h2Stream }

func (b *h2Body) Read(p []byte) (int, error) {
	st, c := b.st, b.st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if st.done || st.bodyClosed {
		return 0, http.ErrBodyReadAfterClose
	}
	if len(p) == 0 {
		return 0, nil
	}
	var wake deadlineWake
	defer wake.stop()
	if st.expect && !st.responded && !c.closed && !st.reset {
		// The handler wants the body: tell the client to send it.
		st.expect = false
		c.wbuf = appendHeaderBlock(c.frames(), st.id, c.encodeHeaders(100, nil), false, c.peerFrame)
		if err := c.flush(); err != nil {
			c.closeLocked(err)
		}
	}
	for len(st.body) == 0 {
		switch {
		case st.done || st.bodyClosed:
			return 0, http.ErrBodyReadAfterClose
		case st.recvEnd:
			return 0, io.EOF
		case st.reset || c.closed:
			return 0, errStreamGone
		case !st.readDeadline.IsZero() && !time.Now().Before(st.readDeadline):
			return 0, os.ErrDeadlineExceeded
		}
		wake.at(c, st.readDeadline)
		c.cond.Wait()
	}
	n := copy(p, st.body)
	st.body = st.body[n:]
	if len(st.body) == 0 {
		st.body = nil
	}
	// Open both windows by what was read.
	if !st.recvEnd && !st.reset && !c.closed {
		st.recvWindow += int64(n)
		c.recvWindow += int64(n)
		c.wbuf = appendWindowUpdate(c.frames(), st.id, uint32(n))
		c.wbuf = appendWindowUpdate(c.wbuf, 0, uint32(n))
		if err := c.flush(); err != nil {
			c.closeLocked(err)
		}
	} else if !c.closed {
		c.recvWindow += int64(n)
		c.wbuf = appendWindowUpdate(c.frames(), 0, uint32(n))
		if err := c.flush(); err != nil {
			c.closeLocked(err)
		}
	}
	return n, nil
}

func (b *h2Body) Close() error {
	c := b.st.c
	c.mu.Lock()
	b.st.bodyClosed = true
	c.dropBody(b.st)
	if err := c.flush(); err != nil {
		c.closeLocked(err)
	}
	c.mu.Unlock()
	return nil
}

// h2Subscription returns the stream of w when the hub's own HTTP/2 server serves it, so that
// the subscription may be handed to the connection.
func h2Subscription(w http.ResponseWriter) *h2Stream {
	if hw, ok := w.(*h2Writer); ok {
		return hw.st
	}
	return nil
}

// attachH2 writes an SSE stream's head, opening comment and any history on the handler's
// goroutine, then hands the stream to its connection, which the pool serves. It reports
// whether the connection took it; otherwise the caller unsubscribes.
func (s *Server) attachH2(w http.ResponseWriter, r *http.Request, st *h2Stream, replay bool, after uint64, claims *auth.Claims, releaseIP func()) bool {
	hw := w.(*h2Writer)
	w.WriteHeader(http.StatusOK)
	s.cfg.Metrics.Connected()
	if _, err := w.Write([]byte(sse.Comment)); err != nil {
		s.endStream(st.sub, err)
		return false
	}
	if replay {
		var buf []byte
		err := s.hub.Replay(r.Context(), st.sub, after, func(evs []*hub.Event) error {
			buf = buf[:0]
			n := 0
			var oldest time.Time
			for _, e := range evs {
				buf = append(buf, e.Frame...)
				n += len(e.Frame)
				if oldest.IsZero() {
					oldest = e.Dispatched
				}
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			s.cfg.Metrics.Written(len(evs), n, oldest)
			return nil
		})
		if err != nil {
			s.endStream(st.sub, err)
			return false
		}
	}
	c := st.c
	c.mu.Lock()
	if st.reset || c.closed {
		c.mu.Unlock()
		s.cfg.Metrics.Disconnected("client")
		return false
	}
	hw.handedOver = true
	st.sseOn = true
	c.refused = 0
	st.cancel() // the request is over: its context is not kept for the stream's life
	st.cancel = noCancel
	st.releaseIP = releaseIP
	st.lastWrite = time.Now().UnixNano()
	if d := s.lifetime(claims); d > 0 {
		st.end = time.Now().Add(d).UnixNano()
	}
	c.dropBody(st) // a body sent with a subscription is read by no one: its window goes back
	st.bodyClosed = true
	st.writeDeadline, st.readDeadline = time.Time{}, time.Time{}
	c.sse++
	if c.handlers == 1 { // this one: most streams wait a while for their first event
		c.seal.idle()
		c.open.idle()
	}
	c.mu.Unlock()
	s.log.Debug("subscriber connected", "subscriber", st.sub.ID, "selectors", len(st.sub.Selectors), "http2", true)
	st.attached.Store(true)
	st.Notify() // what was queued while the stream was set up
	return true
}

// serveStreams writes what the SSE streams have queued, under mu: those on the ready list,
// or all of them after a window opened, the socket drained or the ticker asked.
func (c *h2Conn) serveStreams() {
	if len(c.out) > 0 {
		return // the socket is full: events wait in the subscribers' queues
	}
	c.rmu.Lock()
	ready := c.ready
	c.ready = nil
	c.rmu.Unlock()
	for _, st := range ready {
		st.queued.Store(false)
		c.serveSSE(st)
	}
	if c.walk {
		c.walk = false
		for _, st := range c.streams {
			if st.sseOn {
				c.serveSSE(st)
			}
		}
	}
}

// serveSSE writes what one SSE stream has queued, as far as the windows allow, or ends it.
func (c *h2Conn) serveSSE(st *h2Stream) {
	if !st.attached.Load() || c.closed {
		return
	}
	if st.stalled {
		c.endSSE(st, "", fmt.Errorf("stream window closed for longer than %v: %w", c.s.cfg.DispatchTimeout, os.ErrDeadlineExceeded), false)
		return
	}
	if len(st.pending) > 0 {
		st.pending = c.sendData(st, st.pending)
		if len(st.pending) > 0 {
			if errors.Is(st.sub.Err(), hub.ErrSlow) {
				c.endSSE(st, "", hub.ErrSlow, false)
			}
			return
		}
		st.pending, st.winBlocked = nil, 0
	}
	st.evs = st.sub.Drain(st.evs)
	closed := st.sub.Err()
	beat := st.beat && len(st.evs) == 0
	st.beat = false
	if len(st.evs) > 0 || beat {
		bp := c.p.bufs.Get().(*[]byte)
		b := (*bp)[:0]
		if beat {
			b = append(b, sse.Comment...)
		}
		var oldest time.Time
		for _, e := range st.evs {
			b = append(b, e.Frame...)
			if oldest.IsZero() {
				oldest = e.Dispatched
			}
		}
		if rest := c.sendData(st, b); len(rest) > 0 {
			st.pending = append([]byte(nil), rest...)
			st.winBlocked = time.Now().UnixNano()
		}
		st.lastWrite = time.Now().UnixNano()
		c.s.cfg.Metrics.Written(len(st.evs), len(b)-len(sse.Comment)*b2i(beat), oldest)
		c.p.putBuf(bp, b)
	}
	st.evs = recycle(st.evs)
	switch {
	case len(st.pending) > 0 && !errors.Is(closed, hub.ErrSlow):
		// The window did not take everything: end once it has, or when stalled.
	case closed != nil:
		c.endSSE(st, "", closed, !errors.Is(closed, hub.ErrSlow))
	case st.expired:
		c.endSSE(st, "lifetime", nil, true)
	}
}

// noCancel replaces the cancel function of a request whose context is over.
func noCancel() {}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sendData frames data as DATA frames of st within the windows, and returns what they did
// not take.
func (c *h2Conn) sendData(st *h2Stream, data []byte) []byte {
	for len(data) > 0 {
		k := int(min(int64(len(data)), int64(c.peerFrame), st.window, c.sendWindow))
		if k <= 0 {
			break
		}
		c.wbuf = appendFrameHeader(c.frames(), k, h2Data, 0, st.id)
		c.wbuf = append(c.wbuf, data[:k]...)
		st.window -= int64(k)
		c.sendWindow -= int64(k)
		data = data[k:]
	}
	return data
}

// endSSE ends an SSE stream: with END_STREAM when clean (a lifetime over, a shutdown) and
// everything was sent, with RST_STREAM CANCEL when the server drops it (slow, stalled), and
// silently when the client reset it or the connection ended. reason is for metrics; when
// empty, it is derived from err.
func (c *h2Conn) endSSE(st *h2Stream, reason string, err error, clean bool) {
	if !st.attached.CompareAndSwap(true, false) {
		return
	}
	if !c.closed && reason != "client" && reason != "reset" {
		if clean && len(st.pending) == 0 {
			c.wbuf = appendFrameHeader(c.frames(), 0, h2Data, h2FlagEndStream, st.id)
		} else {
			c.wbuf = appendRSTStream(c.frames(), st.id, h2Cancel)
		}
	}
	st.pending = nil
	st.cancel()
	delete(c.streams, st.id)
	c.streamsChanged()
	c.sse--
	if st.releaseIP != nil {
		st.releaseIP()
	}
	switch {
	case reason == "reset":
		c.s.cfg.Metrics.Disconnected("client")
		c.s.log.Debug("stream ended", "subscriber", st.sub.ID, "reason", "reset by the server")
	case reason != "":
		c.s.cfg.Metrics.Disconnected(reason)
		c.s.log.Debug("stream ended", "subscriber", st.sub.ID, "reason", reason)
	default:
		c.s.endStream(st.sub, err)
	}
	c.gone = append(c.gone, st.sub)
}
