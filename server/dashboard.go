package server

import (
	"net/http"
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
	claims, rerr := s.authorize(r, s.cfg.Subscriber, false)
	if rerr == nil && claims == nil {
		rerr = &requestError{code: http.StatusUnauthorized, category: reasonMissingToken, reason: "the live stats need a JWT allowed to subscribe to " + StatsTopic}
	}
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	m := s.hub.Matcher()
	allowed := false
	for _, sel := range claims.Subscribe {
		if m.Match(m.Compile(sel), StatsTopic) {
			allowed = true
			break
		}
	}
	if !allowed {
		s.refuse(w, r, &requestError{code: http.StatusForbidden, category: reasonForbiddenTopic, reason: "token's mercure.subscribe claim does not match " + StatsTopic})
		return
	}
	s.cfg.Stats.serve(w, r, s.lifetime(claims))
}
