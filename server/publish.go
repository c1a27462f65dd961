package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/transport"
)

// publish handles POST /.well-known/mercure: authorise, parse, validate, then append to the log.
// Nothing is stored unless every check passes.
func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	discovery(w)
	refuse := func(e *requestError) {
		s.cfg.Metrics.PublishRefused(e.code)
		s.refuse(w, r, e)
	}
	release, ok := s.ips.acquire(r.RemoteAddr)
	if !ok {
		refuse(s.perIPRefusal(w))
		return
	}
	defer release()
	claims, rerr := s.authorize(r, s.cfg.Publisher, true)
	if rerr != nil {
		refuse(rerr)
		return
	}
	if !claims.HasPublish {
		reason := "token has no mercure.publish claim"
		if claims.Dialect == auth.DialectDraft08 {
			reason = "token has no authorization detail granting publish"
		}
		refuse(forbidden(r, claims, reason))
		return
	}
	mt, rerr := mediaType(r)
	if rerr != nil {
		refuse(rerr)
		return
	}
	body, release, rerr := s.readBody(w, r)
	if rerr != nil {
		refuse(rerr)
		return
	}
	defer release()
	u, rerr := s.parseUpdate(mt, body)
	if rerr != nil {
		refuse(rerr)
		return
	}
	allowed, rerr := s.compileGrants(r, claims, claims.Publish)
	if rerr != nil {
		refuse(rerr)
		return
	}
	m := s.hub.Matcher()
	for _, t := range u.Topics {
		if !m.MatchAny(allowed, []string{t}) {
			refuse(forbidden(r, claims, fmt.Sprintf("token may not publish to topic %q", t)))
			return
		}
	}
	if err := s.hub.Publish(r.Context(), u); err != nil {
		switch {
		case errors.Is(err, transport.ErrDuplicateID):
			refuse(&requestError{code: http.StatusConflict, category: reasonDuplicateID, reason: fmt.Sprintf("an update with id %q already exists", u.ID)})
		case r.Context().Err() != nil:
			s.log.Debug("publisher went away before the update was stored", "id", u.ID, "err", err)
		default:
			s.log.Error("publish failed", "id", u.ID, "err", err)
			s.cfg.Metrics.PublishRefused(http.StatusServiceUnavailable)
			httpError(w, http.StatusServiceUnavailable, "the update could not be stored")
		}
		return
	}
	s.cfg.Metrics.Published(u.Private, time.Since(start))
	s.log.Debug("published", "id", u.ID, "topics", len(u.Topics), "private", u.Private, "bytes", len(u.Data))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, u.ID)
}

// authorize extracts and verifies the request's JWT. It returns a nil refusal on success; claims is
// nil for an anonymous request (no token) when anonymous requests are allowed. For publishes
// (publish true) a token is always required and a cookie-borne one must come from an allowed
// origin. A draft-08 access token (typ at+jwt) is verified against the trusted issuers instead
// of v; refusals of a draft-08 token or request (see draft08Request) are RFC 6750 answers.
func (s *Server) authorize(r *http.Request, v *auth.Verifier, publish bool) (*auth.Claims, *requestError) {
	d08 := draft08Request(r)
	unauthorized := func(category, reason string) *requestError {
		e := &requestError{code: http.StatusUnauthorized, category: category, reason: reason}
		if d08 {
			e.asBearer()
		}
		return e
	}
	token, src, err := auth.FromRequest(r, s.cfg.CookieName)
	if err != nil {
		e := unauthorized(reasonInvalidToken, err.Error())
		if d08 {
			e.code, e.bearer = http.StatusBadRequest, bearerInvalidRequest // the token's presentation
		}
		return nil, e
	}
	if src == auth.SourceNone {
		if publish || !s.cfg.Anonymous {
			if d08 {
				return nil, unauthorized(reasonMissingToken, "missing access token: send it in the Authorization header or the "+auth.AccessTokenCookie+" cookie")
			}
			return nil, unauthorized(reasonMissingToken, "missing JWT: send it in the Authorization header, the authorization query parameter or the "+s.cfg.CookieName+" cookie")
		}
		return nil, nil
	}
	if auth.IsAccessToken(token) {
		return s.authorizeAccessToken(r, token, src, publish)
	}
	if v == nil {
		return nil, unauthorized(reasonInvalidToken, "no key is configured to verify this JWT")
	}
	if publish && (src == auth.SourceCookie || src == auth.SourceAccessTokenCookie) {
		if err := auth.CheckOrigin(r, s.cfg.PublishOrigins); err != nil {
			e := &requestError{code: http.StatusForbidden, category: reasonForbiddenOrigin, reason: err.Error()}
			if d08 {
				e.code = http.StatusBadRequest
				e.asBearer()
			}
			return nil, e
		}
	}
	claims, err := v.Verify(token)
	if err != nil {
		return nil, unauthorized(reasonInvalidToken, err.Error())
	}
	return claims, nil
}

// jsonUpdate is the JSON publish body. Topic takes a string or an array of strings.
type jsonUpdate struct {
	Topic   json.RawMessage `json:"topic"`
	Data    string          `json:"data"`
	Private bool            `json:"private"`
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Retry   *uint64         `json:"retry"`
}

// mediaType returns the publish body's media type: a form, as the draft requires, or JSON.
func mediaType(r *http.Request) (string, *requestError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/x-www-form-urlencoded" && mt != "application/json") {
		return "", &requestError{code: http.StatusUnsupportedMediaType, category: reasonUnsupportedMedia, reason: "the body must be application/x-www-form-urlencoded or application/json"}
	}
	return mt, nil
}

// parseUpdate decodes and validates a publish body of media type mt.
func (s *Server) parseUpdate(mt string, body []byte) (*transport.Update, *requestError) {
	if mt == "application/json" {
		return s.parseJSON(body)
	}
	return s.parseForm(body)
}

// parseForm decodes an urlencoded publish body. Only the first value of data, id, type and
// retry counts; every topic counts; private counts by its presence alone.
func (s *Server) parseForm(body []byte) (*transport.Update, *requestError) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body: %v", err)
	}
	u := &transport.Update{Topics: form["topic"], Data: form.Get("data"), ID: form.Get("id"), Type: form.Get("type")}
	_, u.Private = form["private"]
	if rs, ok := form["retry"]; ok && rs[0] != "" {
		n, err := strconv.ParseUint(rs[0], 10, 64)
		if err != nil {
			return nil, badRequest(`Invalid "retry" parameter`)
		}
		u.Retry = n
	}
	return u, s.validate(u)
}

// parseJSON decodes a JSON publish body; unknown fields are refused so typos do not pass silently.
func (s *Server) parseJSON(body []byte) (*transport.Update, *requestError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var j jsonUpdate
	if err := dec.Decode(&j); err != nil {
		return nil, badRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return nil, badRequest("malformed JSON body: more than one value")
	}
	u := &transport.Update{Data: j.Data, Private: j.Private, ID: j.ID, Type: j.Type}
	if j.Retry != nil {
		u.Retry = *j.Retry
	}
	if len(j.Topic) > 0 && string(j.Topic) != "null" {
		var one string
		if err := json.Unmarshal(j.Topic, &one); err == nil {
			u.Topics = []string{one}
		} else if err := json.Unmarshal(j.Topic, &u.Topics); err != nil {
			return nil, badRequest(`malformed JSON body: "topic" must be a string or an array of strings`)
		}
	}
	return u, s.validate(u)
}

// validate applies the checks common to both body formats.
func (s *Server) validate(u *transport.Update) *requestError {
	if len(u.Topics) == 0 {
		return badRequest(`Missing "topic" parameter`)
	}
	if len(u.Topics) > s.cfg.MaxTopics {
		return badRequest("too many topics: %d, at most %d", len(u.Topics), s.cfg.MaxTopics)
	}
	m := s.hub.Matcher()
	for _, t := range u.Topics {
		if err := checkTopic(t); err != nil {
			return err
		}
		// Both dialects (draft "Publication", "Reserved Hub Namespace"): "*" is the wildcard of
		// every matcher type and would be unaddressable; the hub's namespace is tested on the
		// topic resolved against the hub's URL, so that no spelling of it gets through.
		if t == "*" {
			return badRequest(`topic "*" is reserved for the wildcard matcher`)
		}
		if m.Reserved(t) {
			return badRequest("topic %q is in the hub's reserved %s namespace", t, Path)
		}
	}
	if strings.ContainsAny(u.ID, "\r\n\x00") {
		return badRequest(`Invalid "id" parameter: it contains a line break or NUL`)
	}
	if hasControl(u.ID) {
		return badRequest(`Invalid "id" parameter: it contains a control or format character`)
	}
	if strings.HasPrefix(u.ID, "#") {
		return badRequest(`Invalid "id" parameter: it must not start with "#"`)
	}
	if u.ID == "earliest" {
		return badRequest(`Invalid "id" parameter: "earliest" is reserved`)
	}
	if strings.ContainsAny(u.Type, "\r\n\x00") {
		return badRequest(`Invalid "type" parameter: it contains a line break or NUL`)
	}
	if hasControl(u.Type) {
		return badRequest(`Invalid "type" parameter: it contains a control or format character`)
	}
	if u.Type == "mercure" {
		return badRequest(`Invalid "type" parameter: "mercure" is reserved for the hub's own events`)
	}
	if !utf8.ValidString(u.ID) || !utf8.ValidString(u.Type) || !utf8.ValidString(u.Data) {
		return badRequest("id, type and data must be valid UTF-8")
	}
	return nil
}

// MaxTopicLength bounds a topic or selector, in bytes: matching cost grows with it.
const MaxTopicLength = 4096

// checkTopic refuses topics that are empty, too long, not UTF-8, or hold control characters
// (the draft).
func checkTopic(t string) *requestError {
	if t == "" {
		return badRequest("empty topic")
	}
	if len(t) > MaxTopicLength {
		return badRequest("topic longer than %d bytes", MaxTopicLength)
	}
	if !utf8.ValidString(t) {
		return badRequest("topic %q is not valid UTF-8", t)
	}
	for _, c := range t {
		if c < 0x20 || (c >= 0x7f && c <= 0x9f) {
			return badRequest("topic %q contains a control character", t)
		}
		if unicode.Is(unicode.Cf, c) {
			return badRequest("topic %q contains a format character U+%04X", t, c)
		}
	}
	return nil
}

// hasControl reports whether v, valid UTF-8, holds a character the draft forbids in ids and
// event types: a C0 or C1 control, U+007F or a format character (category Cf).
func hasControl(v string) bool {
	for _, c := range v {
		if c < 0x20 || (c >= 0x7f && c <= 0x9f) || unicode.Is(unicode.Cf, c) {
			return true
		}
	}
	return false
}
