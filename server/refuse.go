package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// Reason categories of refused requests: the reason label of herald_requests_refused_total
// and the key of the refusals' log limiting. They form a small fixed set on purpose; the
// reason text, which may quote the request, goes only to the client and to the sampled log
// line.
const (
	reasonMissingToken      = "missing_token"      // 401: no JWT anywhere
	reasonInvalidToken      = "invalid_token"      // 401: a JWT that does not verify, or no key for it
	reasonForbiddenOrigin   = "forbidden_origin"   // 403: cookie publish or CORS from an origin not allowed
	reasonForbiddenTopic    = "forbidden_topic"    // 403: the JWT's claims do not cover the topics or path
	reasonCORS              = "cors"               // 403: a preflight asking for a method or header not allowed
	reasonBadRequest        = "bad_request"        // 400: a malformed body, topic or selector
	reasonUnsupportedMedia  = "unsupported_media"  // 415: a body neither a form nor JSON
	reasonBodyTooLarge      = "body_too_large"     // 413: over max_body_bytes
	reasonBodyTimeout       = "body_timeout"       // 408: the body did not arrive within read_timeout
	reasonBusy              = "busy"               // 503: max_inflight_body_bytes is spent
	reasonMaxConnections    = "max_connections"    // 503: a subscription past max_connections
	reasonSubscriptionsBusy = "subscriptions_busy" // 503: subscription_events_rate is spent
	reasonPerIP             = "per_ip"             // 429: past max_connections_per_ip
	reasonDuplicateID       = "duplicate_id"       // 409: an update with this id is retained
	reasonNotFound          = "not_found"          // 404: no such active subscription
	reasonMethod            = "method_not_allowed"
)

// requestError is a refusal: its status code, its reason category and the short plain reason
// the client gets. Parse and validation errors are requestErrors.
type requestError struct {
	code     int
	category string
	reason   string
	// challenge makes refuse add an RFC 6750 challenge, as draft-08 requests get for token
	// failures: WWW-Authenticate: Bearer with the resource_metadata parameter, and bearer as
	// its error parameter unless bearer is "" (no token was presented).
	challenge bool
	bearer    string
}

func (e *requestError) Error() string { return e.reason }

// RFC 6750 error codes of a Bearer challenge.
const (
	bearerInvalidRequest    = "invalid_request"
	bearerInvalidToken      = "invalid_token"
	bearerInsufficientScope = "insufficient_scope"
)

// asBearer turns e into the RFC 6750 answer of a draft-08 request: a token that fails (401,
// 400 for its presentation) or falls short (403) gets a challenge with the error code of its
// status; a missing token (401 with category missing_token) gets a bare challenge.
func (e *requestError) asBearer() *requestError {
	e.challenge = true
	switch {
	case e.code == http.StatusUnauthorized && e.category == reasonMissingToken:
		e.bearer = ""
	case e.code == http.StatusUnauthorized:
		e.bearer = bearerInvalidToken
	case e.code == http.StatusForbidden:
		e.bearer = bearerInsufficientScope
	default:
		e.code, e.bearer = http.StatusBadRequest, bearerInvalidRequest
	}
	return e
}

// badMatchRequest is the 400 refusal of a malformed draft-08 subscribe parameter (match=,
// match_<type>=, last_event_id): it carries an invalid_request Bearer challenge.
func badMatchRequest(format string, args ...any) *requestError {
	e := badRequest(format, args...)
	e.challenge, e.bearer = true, bearerInvalidRequest
	return e
}

// badRequest is a 400 refusal whose reason is formatted.
func badRequest(format string, args ...any) *requestError {
	return &requestError{code: http.StatusBadRequest, category: reasonBadRequest, reason: fmt.Sprintf(format, args...)}
}

// refuse answers a refused request with its reason, counts it by status and category, and
// logs it at info level, at most once a second per category (the line says how many were
// left out since the previous one), so that a flood of bad requests cannot flood the log.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *requestError) {
	s.cfg.Metrics.Refused(e.code, e.category)
	s.refusals.Log(r.Context(), slog.LevelInfo, e.category, "request refused",
		"category", e.category, "method", r.Method, "path", r.URL.Path, "status", e.code, "reason", e.reason, "remote", r.RemoteAddr)
	if e.challenge {
		s.challenge(w, r, e.bearer)
	}
	httpError(w, e.code, e.reason)
}

// challenge sets the RFC 6750 WWW-Authenticate header of a draft-08 refusal, with the error
// code (none when code is "") and the URL of the protected resource metadata (RFC 9728), and
// lets cross-origin scripts read it.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, code string) {
	var b strings.Builder
	b.WriteString("Bearer ")
	if code != "" {
		b.WriteString(`error="` + code + `", `)
	}
	b.WriteString(`resource_metadata=` + quote(s.metadataURL(r)))
	h := w.Header()
	h.Set("WWW-Authenticate", b.String())
	if exp := h.Get("Access-Control-Expose-Headers"); exp != "" {
		h.Set("Access-Control-Expose-Headers", exp+", WWW-Authenticate")
	}
}

// quote makes s an HTTP quoted-string; CR and LF, which no header value may hold, are dropped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "").Replace(s) + `"`
}
