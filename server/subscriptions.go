package server

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/topic"
)

// subscriptionsCollection is the JSON-LD collection of subscriptions (Mercure 0.x).
type subscriptionsCollection struct {
	Context       string             `json:"@context"`
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	LastEventID   string             `json:"lastEventID"`
	Subscriptions []hub.Subscription `json:"subscriptions"`
}

// subscriptionsCollection08 is the plain JSON collection of subscriptions (draft-08); the
// reconciliation cursor travels in the Link header.
type subscriptionsCollection08 struct {
	ID            string             `json:"id"`
	Type          string             `json:"type"`
	Subscriptions []hub.Subscription `json:"subscriptions"`
}

// subscriptions serves the active subscriptions API in both dialects:
//
//	GET /.well-known/mercure/subscriptions                                   every subscription
//	GET /.well-known/mercure/subscriptions/{topic}                           those of a 0.x selector
//	GET /.well-known/mercure/subscriptions/{topic}/{subscriber}              one 0.x subscription
//	GET /.well-known/mercure/subscriptions/{match_type}/{match}              those of a draft-08 matcher
//	GET /.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber} one draft-08 subscription
//
// Two segments are a draft-08 matcher when the first names a matcher type ("exact",
// "urlpattern"), a 0.x subscription otherwise. A draft-08 path, or a draft-08 token on the
// collection, gets draft-08 documents: plain JSON, the cursor in the Link header; the rest gets
// the JSON-LD documents of 0.x. A JWT is required, even with anonymous subscribers allowed, and
// one of its subscribe selectors must match the requested path, as subscription events' topics
// do.
func (s *Server) subscriptions(w http.ResponseWriter, r *http.Request) {
	f, draft08, rerr := subscriptionsFilter(r)
	if rerr != nil {
		s.refuse(w, r, rerr)
		return
	}
	discovery(w)
	path := r.URL.EscapedPath()
	claims := s.mayRead(w, r, path, "the subscriptions API needs a JWT", draft08)
	if claims == nil {
		return
	}
	subs, lastEventID := s.hub.SubscriptionsSnapshot(f)

	draft08 = draft08 || claims.Dialect == auth.DialectDraft08
	h := w.Header()
	if draft08 {
		h.Set("Link", "<"+Path+`>; rel="mercure"; last-event-id=`+quote(lastEventID)+`; type="mercure"; content-type="application/json"`)
	}
	etag := `"` + strings.ReplaceAll(lastEventID, `"`, "") + `"`
	h.Set("ETag", etag)
	h.Set("Cache-Control", "must-revalidate")
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == etag || inm == lastEventID || inm == "W/"+etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	var doc any
	switch {
	case f.Subscriber != "":
		if len(subs) == 0 {
			s.refuse(w, r, &requestError{code: http.StatusNotFound, category: reasonNotFound, reason: "no such active subscription"})
			return
		}
		one := subs[0]
		if !draft08 {
			one.Context = hub.JSONLDContext
			one.LastEventID = lastEventID
		}
		doc = one
	case draft08:
		doc = subscriptionsCollection08{ID: path, Type: "subscriptions", Subscriptions: nonNil(subs)}
	default:
		doc = subscriptionsCollection{
			Context:       hub.JSONLDContext,
			ID:            path,
			Type:          "Subscriptions",
			LastEventID:   lastEventID,
			Subscriptions: nonNil(subs),
		}
	}
	if draft08 {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/ld+json")
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}

// subscriptionsFilter reads the request's path: which subscriptions it asks for, and whether
// it is a draft-08 path. A draft-08 path naming a matcher type the hub does not know is a 400.
func subscriptionsFilter(r *http.Request) (f hub.SubscriptionFilter, draft08 bool, rerr *requestError) {
	a, b, c := r.PathValue("a"), r.PathValue("b"), r.PathValue("subscriber")
	switch {
	case c != "":
		if _, ok := topic.ParseMatchType(a); !ok {
			return f, true, badMatchRequest("unsupported matcher type %q", a)
		}
		return hub.SubscriptionFilter{MatchType: a, Match: b, Subscriber: c}, true, nil
	case b != "":
		if _, ok := topic.ParseMatchType(a); ok {
			return hub.SubscriptionFilter{MatchType: a, Match: b}, true, nil
		}
		return hub.SubscriptionFilter{Topic: a, Subscriber: b}, false, nil
	case a != "":
		return hub.SubscriptionFilter{Topic: a}, false, nil
	}
	return f, false, nil
}

// nonNil returns subs, or an empty list for nil, so that the JSON says [] rather than null.
func nonNil(subs []hub.Subscription) []hub.Subscription {
	if subs == nil {
		return []hub.Subscription{}
	}
	return subs
}
