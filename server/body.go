package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// bodyBudget bounds the bytes held by publish bodies being read, summed over every request,
// so that many slow or stalled publishers cannot grow memory without bound. It is lock-free.
type bodyBudget struct {
	limit int64        // most bytes reserved at once: Config.MaxInflightBodyBytes
	used  atomic.Int64 // bytes reserved now
}

// reserve takes n bytes of the budget and reports whether they fitted.
func (b *bodyBudget) reserve(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// release gives back n bytes reserved earlier.
func (b *bodyBudget) release(n int64) { b.used.Add(-n) }

// InflightBodyBytes returns the bytes reserved now by publish bodies being read or parsed, for
// the herald_publish_body_bytes_inflight gauge.
func (s *Server) InflightBodyBytes() int64 { return s.bodies.used.Load() }

// bodyDeadline gives every request that may carry a body ReadTimeout from its start to send
// it, except GET and HEAD: those are subscriptions, whose streams last for minutes. The
// publish handler answers a late body with 408; for the others it bounds the time net/http
// spends discarding a body nobody reads.
//
// This is per request rather than http.Server.ReadTimeout on purpose: net/http keeps that
// deadline on the connection for the whole request, and its background read, which notices
// a client going away, then fails on every stream older than ReadTimeout and cancels it.
func (s *Server) bodyDeadline(next http.Handler) http.Handler {
	if s.cfg.ReadTimeout <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.ReadTimeout))
			if err != nil && !errors.Is(err, http.ErrNotSupported) {
				s.log.Debug("setting the body's read deadline failed", "err", err)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// readBody reads a publish body within the request's read deadline (see bodyDeadline) and the
// in-flight budget, before anything is parsed. A Content-Length over MaxBodyBytes is refused
// without reading; otherwise the budget is reserved, by Content-Length when it is given and
// by MaxBodyBytes for a chunked body, and a request that does not fit is refused with 503 and
// Retry-After before its body is read. On success the caller calls release once it no longer
// needs the body or what was parsed from it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), rerr *requestError) {
	n := r.ContentLength
	if n > s.cfg.MaxBodyBytes {
		closeAfter(w, r)
		return nil, nil, s.tooLarge()
	}
	reserved := n
	if n < 0 {
		reserved = s.cfg.MaxBodyBytes
	}
	if !s.bodies.reserve(reserved) {
		closeAfter(w, r)
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		return nil, nil, &requestError{code: http.StatusServiceUnavailable, category: reasonBusy, reason: "too many publish bodies are being received; retry later"}
	}
	var err error
	if n >= 0 {
		// Exactly the announced size: no growing and copying, and the budget is what is held.
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err == nil {
			s.bodies.release(reserved - int64(len(body)))
			reserved = int64(len(body))
		}
	}
	if err != nil {
		s.bodies.release(reserved)
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return nil, nil, s.tooLarge()
		case errors.Is(err, os.ErrDeadlineExceeded):
			closeAfter(w, r)
			return nil, nil, &requestError{code: http.StatusRequestTimeout, category: reasonBodyTimeout, reason: fmt.Sprintf("the body did not arrive within %s", s.cfg.ReadTimeout)}
		}
		return nil, nil, badRequest("reading the body: %v", err)
	}
	// The body is in: lift the deadline, so that storing the update may take longer. Left in
	// place, it would also make net/http's background read of the connection fail and cancel
	// the request's context.
	if s.cfg.ReadTimeout > 0 {
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	}
	return body, func() { s.bodies.release(reserved) }, nil
}

// closeAfter makes an HTTP/1.x connection close after the answer, for a body refused unread
// or cut by its deadline: the connection is then somewhere in the body and cannot carry another
// request, and net/http would otherwise read the rest of the body before answering. An HTTP/2
// stream is reset on its own, without the connection's other streams.
func closeAfter(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// retryAfterSeconds is the Retry-After of a publish refused because the budget is spent:
// bodies are read within ReadTimeout, so room comes back quickly.
const retryAfterSeconds = 1

// tooLarge is the refusal of a body over MaxBodyBytes.
func (s *Server) tooLarge() *requestError {
	return &requestError{code: http.StatusRequestEntityTooLarge, category: reasonBodyTooLarge, reason: fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBodyBytes)}
}
