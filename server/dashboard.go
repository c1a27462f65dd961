package server

import (
	"net/http"

	"github.com/heraldhub/herald/auth"
)

// StatsTopic is the private topic of the live stats on the hub's address, and the path that
// serves them: a token may read them when a selector of its mercure.subscribe claim matches
// it (as "*" does). The operator's dashboard (ui) and `herald top --hub` read it.
//
// It is served by the hub's node itself, not carried by the log: each node's figures are its
// own (the cluster's nodes appear through their heartbeats), nothing is stored, and nothing is
// sampled while nobody reads it. Its events are not counted as deliveries.
const StatsTopic = Path + "/stats"

// stats serves StatsTopic: the same document and stream as /stats on the operations address,
// for a JWT allowed to subscribe to StatsTopic. A stream ends at the token's expiry or after
// write_timeout, as subscriptions do.
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	claims := s.mayRead(w, r, StatsTopic, "the live stats need a JWT allowed to subscribe to "+StatsTopic, false)
	if claims == nil {
		return
	}
	s.cfg.Stats.serve(w, r, s.lifetime(claims))
}

// mayRead returns the claims of the request's JWT when they may read the private path (a
// selector of their subscribe grants matches it, as for a private update of that topic).
// Otherwise it answers the refusal and returns nil: 401 without a valid JWT (with reason
// missing when there is none, even if anonymous subscribers are allowed), 403 when no selector
// matches; a draft-08 request or token (or draft08, for a draft-08 path) gets the Bearer
// challenge with it.
func (s *Server) mayRead(w http.ResponseWriter, r *http.Request, path, missing string, draft08 bool) *auth.Claims {
	claims, rerr := s.authorize(r, s.cfg.Subscriber, false)
	if rerr == nil && claims == nil {
		rerr = &requestError{code: http.StatusUnauthorized, category: reasonMissingToken, reason: missing}
		if draft08 || draft08Request(r) {
			rerr.asBearer()
		}
	}
	if rerr != nil {
		s.refuse(w, r, rerr)
		return nil
	}
	allowed, rerr := s.compileGrants(r, claims, claims.Subscribe)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return nil
	}
	if !s.hub.Matcher().MatchAny(allowed, []string{path}) {
		reason := "token's mercure.subscribe claim does not match " + path
		if claims.Dialect == auth.DialectDraft08 {
			reason = "token grants no subscribe on " + path
		}
		s.refuse(w, r, forbidden(r, claims, reason))
		return nil
	}
	return claims
}
