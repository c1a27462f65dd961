package server

import (
	"fmt"
	"log/slog"
	"net/http"
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
}

func (e *requestError) Error() string { return e.reason }

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
	httpError(w, e.code, e.reason)
}
