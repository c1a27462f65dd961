package server

import (
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/heraldhub/herald/topic"
)

// MethodQuery is the safe HTTP method whose body carries what GET carries in its query: draft-08
// subscribers may send their matchers in a form-encoded body when they would not fit in a URL.
const MethodQuery = "QUERY"

// matcherParams maps the draft-08 subscribe parameters to their matcher types, in the order
// their values are compiled.
var matcherParams = []struct {
	name string
	typ  topic.MatchType
}{
	{"match", topic.MatchExact},
	{"match_exact", topic.MatchExact},
	{"match_urlpattern", topic.MatchURLPattern},
}

// subscription is what a subscribe request asks for, read from its query and, for QUERY, its
// body.
type subscription struct {
	// specs are the selectors: the topic= values (0.x selectors) first, then the matchers.
	specs []topic.Spec
	// draft is set when the request uses a match parameter: it speaks draft-08, whatever else
	// it carries. A request with both topic= and match= is a draft-08 request whose topic=
	// values are 0.x selectors (a URI template there is still a template).
	draft bool
	// lastEventID is the cursor the request carries, "" if none: the Last-Event-ID header, else
	// last_event_id (the query's before the body's), else the 0.x lastEventID and
	// Last-Event-ID query parameters.
	lastEventID string
}

// isMatchName reports whether name is in the draft's reserved "match" namespace: it begins with
// "match" under an ASCII case-insensitive comparison.
func isMatchName(name string) bool {
	return len(name) >= 5 && strings.EqualFold(name[:5], "match")
}

// readSubscription reads the subscribe parameters of r. A QUERY request's body, form-encoded and
// bounded as a publish body is, adds its parameters to the query's. Every refusal is a 4xx.
func (s *Server) readSubscription(w http.ResponseWriter, r *http.Request) (*subscription, *requestError) {
	q := r.URL.Query()
	if r.Method == MethodQuery {
		body, rerr := s.queryBody(w, r)
		if rerr != nil {
			return nil, rerr
		}
		for name, vs := range body {
			q[name] = append(q[name], vs...)
		}
	}
	sub := &subscription{lastEventID: r.Header.Get("Last-Event-ID")}
	for _, name := range []string{"last_event_id", "lastEventID", "Last-Event-ID"} {
		if sub.lastEventID == "" {
			sub.lastEventID = q.Get(name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !isMatchName(name) {
			continue
		}
		sub.draft = true
		if !validMatcherName(name) {
			return nil, badMatchRequest("unsupported matcher parameter %q: use match, match_exact or match_urlpattern", name)
		}
	}
	topics := q["topic"]
	n := len(topics)
	for _, p := range matcherParams {
		n += len(q[p.name])
	}
	switch {
	case n == 0:
		return nil, badRequest(`Missing "topic" parameter`)
	case n > s.cfg.MaxSelectors && sub.draft:
		return nil, badMatchRequest("too many topic matchers: %d, at most %d", n, s.cfg.MaxSelectors)
	case n > s.cfg.MaxSelectors:
		return nil, badRequest("too many topic selectors: %d, at most %d", n, s.cfg.MaxSelectors)
	}
	sub.specs = make([]topic.Spec, 0, n)
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			if sub.draft {
				return nil, badMatchRequest("invalid topic selector: %s", err.reason)
			}
			return nil, badRequest("invalid topic selector: %s", err.reason)
		}
		sub.specs = append(sub.specs, topic.Spec{Type: topic.MatchTopic, Value: t})
	}
	for _, p := range matcherParams {
		for _, v := range q[p.name] {
			sub.specs = append(sub.specs, topic.Spec{Type: p.typ, Value: v})
		}
	}
	return sub, nil
}

// validMatcherName reports whether name is one of the matcher parameters Herald supports.
func validMatcherName(name string) bool {
	for _, p := range matcherParams {
		if name == p.name {
			return true
		}
	}
	return false
}

// compile compiles the specs with the hub's matcher; a matcher the draft refuses (forbidden
// characters, too long, not a URL pattern) is a 400.
func (s *Server) compile(sub *subscription) ([]*topic.Selector, *requestError) {
	m := s.hub.Matcher()
	sels := make([]*topic.Selector, len(sub.specs))
	for i, spec := range sub.specs {
		sel, err := m.CompileSpec(spec)
		if err != nil {
			return nil, badMatchRequest("invalid %s matcher: %v", spec.Type, err)
		}
		sels[i] = sel
	}
	return sels, nil
}

// queryBody reads and parses the form-encoded body of a QUERY subscribe request within the
// publish bounds (size, time, and the in-flight budget). Its values are copied out of the body,
// which a long-lived subscription must not keep.
func (s *Server) queryBody(w http.ResponseWriter, r *http.Request) (url.Values, *requestError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &requestError{code: http.StatusUnsupportedMediaType, category: reasonUnsupportedMedia, reason: "the body of a QUERY subscription must be application/x-www-form-urlencoded"}
	}
	body, release, rerr := s.readBody(w, r)
	if rerr != nil {
		return nil, rerr
	}
	defer release()
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body: %v", err)
	}
	out := make(url.Values, len(form))
	for name, vs := range form {
		cp := make([]string, len(vs))
		for i, v := range vs {
			cp[i] = strings.Clone(v)
		}
		out[strings.Clone(name)] = cp
	}
	return out, nil
}
