package server

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/sse"
)

// subscribe handles GET, HEAD and QUERY /.well-known/mercure: authorise, read the topic= (0.x)
// and match= (draft-08) parameters, register with the hub, replay history when a last event id
// was given, then stream live updates until the client leaves,
// the stream's lifetime ends or the hub closes the subscriber.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	if s.atCapacity() {
		s.refuse(w, r, s.capacityRefusal(w))
		return
	}
	releaseIP, ok := s.ips.acquire(r.RemoteAddr)
	if !ok {
		s.refuse(w, r, s.perIPRefusal(w))
		return
	}
	handedOver := false // to the pool, which then releases what the stream holds
	defer func() {
		if !handedOver {
			releaseIP()
		}
	}()
	claims, rerr := s.authorize(r, s.cfg.Subscriber, false)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	req, rerr := s.readSubscription(w, r)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	sels, rerr := s.compile(req)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	opts := hub.SubscribeOptions{Selectors: sels}
	if claims != nil {
		if opts.Allowed, rerr = s.compileGrants(r, claims, claims.Subscribe); rerr != nil {
			s.refuse(w, r, rerr)
			return
		}
		opts.Payload = claims.Payload
		opts.Payloads = s.subscriptionPayloads(claims, opts.Allowed, opts.Selectors)
	}
	lastEventID := req.lastEventID
	opts.Replay = lastEventID != ""

	// Plain HTTP/1.1 streams are hijacked and served by the pool (pool.go); HTTP/2, HTTP/1.0
	// and HEAD stay on this goroutine.
	// So are the streams of the hub's own HTTP/2 server, on their connection (h2.go).
	var rs *rawStream
	h2 := h2Subscription(w)
	switch {
	case r.Method != http.MethodGet && r.Method != MethodQuery:
		h2 = nil
	case h2 != nil:
		opts.Notify = h2
	case s.cfg.DisableHijack || r.ProtoMajor != 1 || r.ProtoMinor != 1:
	default:
		if _, ok := w.(http.Hijacker); ok {
			rs = &rawStream{p: s.pool()}
			opts.Notify = rs
		}
	}
	sub, err := s.hub.Subscribe(r.Context(), opts)
	var busy *hub.BusyError
	if errors.As(err, &busy) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(busy.RetryAfter.Seconds()))))
		s.refuse(w, r, &requestError{code: http.StatusServiceUnavailable, category: reasonSubscriptionsBusy, reason: "too many subscriptions are starting; retry later"})
		return
	}
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "the hub is shutting down")
		return
	}
	defer func() {
		if !handedOver {
			s.hub.Unsubscribe(sub)
		}
	}()
	var after uint64
	var header string
	if opts.Replay {
		after, header, err = s.hub.Resolve(r.Context(), lastEventID)
		if err != nil {
			s.log.Error("resolving Last-Event-ID failed", "err", err)
			httpError(w, http.StatusServiceUnavailable, "history is unavailable")
			return
		}
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "private, no-cache, no-store, must-revalidate, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	h.Set("X-Accel-Buffering", "no")
	if header != "" {
		// The draft's response field; 0.x clients read Last-Event-ID, which the draft leaves
		// to requests.
		h.Set("Mercure-Last-Event-ID", header)
		if !req.draft {
			h.Set("Last-Event-ID", header)
		}
	}
	discovery(w)
	if rs != nil {
		rs.sub = sub
		handedOver = s.hijack(w, r, rs, opts.Replay, after, claims, releaseIP)
		return
	}
	if h2 != nil {
		h2.sub = sub
		handedOver = s.attachH2(w, r, h2, opts.Replay, after, claims, releaseIP)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}

	s.cfg.Metrics.Connected()
	st := &stream{w: w, rc: http.NewResponseController(w), timeout: s.cfg.DispatchTimeout, metrics: s.cfg.Metrics}
	if err := st.write(nil, true); err != nil {
		s.endStream(sub, err)
		return
	}
	if opts.Replay {
		err := s.hub.Replay(r.Context(), sub, after, func(evs []*hub.Event) error { return st.write(evs, false) })
		if err != nil {
			s.endStream(sub, err)
			return
		}
	}
	s.log.Debug("subscriber connected", "subscriber", sub.ID, "selectors", req.specs, "last_event_id", lastEventID)
	s.stream(r, st, sub, s.lifetime(claims))
}

// lifetime is how long a stream may last: a random 80–100 % of WriteTimeout (so that many
// clients do not reconnect at once), cut at the JWT's expiry. Zero means unbounded.
func (s *Server) lifetime(claims *auth.Claims) time.Duration {
	var d time.Duration
	if s.cfg.WriteTimeout > 0 {
		d = time.Duration(float64(s.cfg.WriteTimeout) * (0.8 + 0.2*rand.Float64()))
	}
	if claims != nil && !claims.ExpiresAt.IsZero() {
		if left := time.Until(claims.ExpiresAt); d == 0 || left < d {
			d = max(left, time.Millisecond)
		}
	}
	return d
}

// stream is the writer loop of one subscriber: it drains the queue, writes everything in one
// go and flushes once, and sends a heartbeat comment only when the stream has been idle.
func (s *Server) stream(r *http.Request, st *stream, sub *hub.Subscriber, lifetime time.Duration) {
	var end <-chan time.Time
	if lifetime > 0 {
		t := time.NewTimer(lifetime)
		defer t.Stop()
		end = t.C
	}
	var beat <-chan time.Time
	var beatTimer *time.Timer
	if s.cfg.Heartbeat > 0 {
		beatTimer = time.NewTimer(s.cfg.Heartbeat)
		defer beatTimer.Stop()
		beat = beatTimer.C
	}
	var evs []*hub.Event
	for {
		select {
		case <-sub.Ready():
			evs = sub.Drain(evs)
			if err := st.write(evs, false); err != nil {
				s.endStream(sub, err)
				return
			}
		case <-sub.Done():
			// Flush what was queued before the hub closed the subscriber, then end.
			evs = sub.Drain(evs)
			err := st.write(evs, false)
			if err == nil {
				err = sub.Err()
			}
			s.endStream(sub, err)
			return
		case <-beat:
			idle := time.Since(st.lastWrite)
			if idle >= s.cfg.Heartbeat {
				if err := st.write(nil, true); err != nil {
					s.endStream(sub, err)
					return
				}
				idle = 0
			}
			beatTimer.Reset(s.cfg.Heartbeat - idle)
		case <-end:
			s.cfg.Metrics.Disconnected("lifetime")
			s.log.Debug("stream lifetime reached; the client will reconnect", "subscriber", sub.ID)
			return
		case <-r.Context().Done():
			s.cfg.Metrics.Disconnected("client")
			s.log.Debug("subscriber went away", "subscriber", sub.ID)
			return
		}
	}
}

// endStream logs why a stream ended at the level it deserves: a slow consumer is worth an
// info line, a client that went away or a shutdown is normal.
func (s *Server) endStream(sub *hub.Subscriber, err error) {
	switch {
	case errors.Is(err, hub.ErrSlow), errors.Is(err, os.ErrDeadlineExceeded):
		s.cfg.Metrics.Disconnected("slow")
		s.log.Info("subscriber disconnected: too slow", "subscriber", sub.ID, "err", err)
	case errors.Is(err, hub.ErrShutdown):
		s.cfg.Metrics.Disconnected("shutdown")
		s.log.Debug("stream ended: shutting down", "subscriber", sub.ID)
	default:
		s.cfg.Metrics.Disconnected("client")
		s.log.Debug("stream ended", "subscriber", sub.ID, "err", err)
	}
}

// stream writes SSE frames to one response.
type stream struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration
	lastWrite time.Time
	metrics   *metrics.Metrics
}

// write sends the frames of evs (and a comment line when comment is set) and flushes once,
// under the dispatch deadline.
func (st *stream) write(evs []*hub.Event, comment bool) error {
	if len(evs) == 0 && !comment {
		return nil
	}
	if st.timeout > 0 {
		if err := st.rc.SetWriteDeadline(time.Now().Add(st.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	n := 0
	if comment {
		if _, err := st.w.Write([]byte(sse.Comment)); err != nil {
			return err
		}
		n += len(sse.Comment)
	}
	var oldest time.Time
	for _, e := range evs {
		if _, err := st.w.Write(e.Frame); err != nil {
			return err
		}
		n += len(e.Frame)
		if oldest.IsZero() {
			oldest = e.Dispatched
		}
	}
	if err := st.rc.Flush(); err != nil {
		return err
	}
	if st.timeout > 0 {
		if err := st.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
	}
	st.lastWrite = time.Now()
	st.metrics.Written(len(evs), n, oldest)
	return nil
}

// hijack takes the connection of an HTTP/1.1 stream from net/http, writes the response head,
// the opening comment and any history itself, then hands the stream to the pool. It reports
// whether the pool took it; otherwise the caller unsubscribes.
// releaseIP gives back the stream's place in the per-address count; the pool calls it, with
// the connection's release, when the stream ends.
func (s *Server) hijack(w http.ResponseWriter, r *http.Request, rs *rawStream, replay bool, after uint64, claims *auth.Claims, releaseIP func()) bool {
	head := make([]byte, 0, 512)
	head = append(head, "HTTP/1.1 200 OK\r\n"...)
	h := w.Header()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Transfer-Encoding", "chunked")
	var hb bytes.Buffer
	_ = h.Write(&hb)
	head = append(head, hb.Bytes()...)
	head = append(head, "\r\n"...)
	head = appendChunkHeader(head, len(sse.Comment))
	head = append(head, sse.Comment+"\r\n"...)

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.log.Error("hijacking a stream failed", "err", err)
		httpError(w, http.StatusInternalServerError, "the stream could not be set up")
		return false
	}
	_ = brw // its buffers are dropped with it: an idle stream keeps none
	rs.conn = conn
	rs.counted, rs.releaseIP = hold(conn), releaseIP
	p := s.pool()
	s.cfg.Metrics.Connected()
	if err := p.writeHead(rs, head); err != nil {
		_ = rs.conn.Close()
		rs.release()
		s.endStream(rs.sub, err)
		return false
	}
	if replay {
		err := s.hub.Replay(r.Context(), rs.sub, after, func(evs []*hub.Event) error { return p.write(rs, evs, false) })
		if err != nil {
			// rs.conn, not conn: a stream that seals its own records has shed the tls.Conn,
			// whose Close would send close_notify under a sequence number already used.
			_ = rs.conn.Close()
			rs.release()
			s.endStream(rs.sub, err)
			return false
		}
	}
	if d := s.lifetime(claims); d > 0 {
		rs.end = time.Now().Add(d).UnixNano()
	}
	s.log.Debug("subscriber connected", "subscriber", rs.sub.ID, "selectors", len(rs.sub.Selectors), "hijacked", true)
	p.attach(rs)
	return true
}

// pool returns the writer pool of hijacked streams, starting it on first use.
func (s *Server) pool() *pool {
	s.poolOnce.Do(func() { s.streams = newPool(s) })
	return s.streams
}

// Close ends the hijacked streams that remain, waiting up to grace for them to end on their
// own (after the hub's Shutdown), and stops the pool's goroutines. Streams served by net/http
// end with http.Server.Shutdown.
func (s *Server) Close(grace time.Duration) {
	s.poolOnce.Do(func() {}) // no pool may start after Close
	if s.streams != nil {
		s.streams.close(grace)
	}
}
