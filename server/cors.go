package server

import (
	"net/http"
	"slices"
	"strings"
)

// corsAllowedHeaders are the request headers Mercure clients send cross-origin.
var corsAllowedHeaders = []string{"authorization", "cache-control", "content-type", "last-event-id"}

// cors answers preflight requests and adds CORS headers for the origins in Config.CORSOrigins.
// Credentials (cookies, Authorization) are allowed only for explicitly listed origins: with
// "*" the hub answers a literal "*" without credentials, which browsers accept for anonymous
// use. Without CORSOrigins, OPTIONS is refused with 405 as on the reference hub.
func (s *Server) cors(next http.Handler) http.Handler {
	if len(s.cfg.CORSOrigins) == 0 {
		return next
	}
	wildcard := slices.Contains(s.cfg.CORSOrigins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		h.Add("Vary", "Origin")
		allowed := origin != "" && (wildcard || slices.Contains(s.cfg.CORSOrigins, origin))
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		if allowed {
			if slices.Contains(s.cfg.CORSOrigins, origin) {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Credentials", "true")
			} else {
				h.Set("Access-Control-Allow-Origin", "*")
			}
		}
		if !preflight {
			if allowed {
				h.Set("Access-Control-Expose-Headers", "Last-Event-ID, Mercure-Last-Event-ID, Link")
			}
			next.ServeHTTP(w, r)
			return
		}
		if !allowed {
			s.refuse(w, r, &requestError{code: http.StatusForbidden, category: reasonForbiddenOrigin, reason: "origin not allowed by cors_origins"})
			return
		}
		method := r.Header.Get("Access-Control-Request-Method")
		if method != http.MethodGet && method != http.MethodPost && method != http.MethodHead && method != MethodQuery {
			s.refuse(w, r, &requestError{code: http.StatusForbidden, category: reasonCORS, reason: "method " + method + " not allowed by CORS"})
			return
		}
		for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "" && !slices.Contains(corsAllowedHeaders, name) {
				s.refuse(w, r, &requestError{code: http.StatusForbidden, category: reasonCORS, reason: "header " + name + " not allowed by CORS"})
				return
			}
		}
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, QUERY")
		h.Set("Access-Control-Allow-Headers", "Authorization, Cache-Control, Content-Type, Last-Event-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}
