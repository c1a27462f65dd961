package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/heraldhub/herald/hub"
)

// subscriptionsCollection is the JSON-LD collection of subscriptions.
type subscriptionsCollection struct {
	Context       string             `json:"@context"`
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	LastEventID   string             `json:"lastEventID"`
	Subscriptions []hub.Subscription `json:"subscriptions"`
}

// subscriptions serves the draft's active subscriptions API:
//
//	GET /.well-known/mercure/subscriptions                        every subscription
//	GET /.well-known/mercure/subscriptions/{topic}                those of one selector
//	GET /.well-known/mercure/subscriptions/{topic}/{subscriber}   one subscription
//
// A JWT is required, even with anonymous subscribers allowed, and a selector of its
// mercure.subscribe claim must match the requested path, as subscription events' topics do.
func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request) {
	discovery(w)
	path := r.URL.EscapedPath()
	if s.mayRead(w, r, path, "the subscriptions API needs a JWT") == nil {
		return
	}
	selector, subscriber := r.PathValue("topic"), r.PathValue("subscriber")
	subs, lastEventID := s.hub.SubscriptionsSnapshot(selector, subscriber)

	h := w.Header()
	etag := `"` + strings.ReplaceAll(lastEventID, `"`, "") + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "must-revalidate")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == lastEventID || inm == "W/"+etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var doc any
	if subscriber != "" {
		if len(subs) == 0 {
			s.refuse(w, r, &requestError{code: http.StatusNotFound, category: reasonNotFound, reason: "no such active subscription"})
			return
		}
		one := subs[0]
		one.Context = hub.JSONLDContext
		one.LastEventID = lastEventID
		doc = one
	} else {
		if subs == nil {
			subs = []hub.Subscription{}
		}
		doc = subscriptionsCollection{
			Context:       hub.JSONLDContext,
			ID:            path,
			Type:          "Subscriptions",
			LastEventID:   lastEventID,
			Subscriptions: subs,
		}
	}
	h.Set("Content-Type", "application/ld+json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}
