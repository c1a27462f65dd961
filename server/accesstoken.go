package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/topic"
)

// MetadataPath is where the hub serves its OAuth 2.0 protected resource metadata (RFC 9728):
// the well-known prefix followed by the hub's path.
const MetadataPath = "/.well-known/oauth-protected-resource" + Path

// draft08Request reports whether a request says, before its token is read, that it speaks
// draft-08: it carries the draft's access token cookie, or a subscription's match= or
// match_<type>= parameter. A draft-08 access token (typ at+jwt) says so too, wherever it is
// presented; anything else is answered as Mercure 0.x.
func draft08Request(r *http.Request) bool {
	for _, c := range r.CookiesNamed(auth.AccessTokenCookie) {
		if c.Value != "" {
			return true
		}
	}
	if r.Method == http.MethodPost || r.URL.RawQuery == "" {
		return false
	}
	for k := range r.URL.Query() {
		if k == "match" || strings.HasPrefix(k, "match_") {
			return true
		}
	}
	return false
}

// resource returns the hub's resource identifier for r, the aud draft-08 tokens must carry:
// resource_identifier when configured, else the URL the client reached the hub at (https when
// the request came over TLS).
func (s *Server) resource(r *http.Request) string {
	if s.cfg.ResourceIdentifier != "" {
		return s.cfg.ResourceIdentifier
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Path
}

// metadataURL returns the URL of the protected resource metadata derived from the resource
// identifier as RFC 9728 says: the well-known prefix inserted between its host and its path.
func (s *Server) metadataURL(r *http.Request) string {
	id := s.resource(r)
	u, err := url.Parse(id)
	if err != nil || u.Host == "" {
		return MetadataPath
	}
	return u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/")
}

// protectedResourceMetadata is the RFC 9728 document with the members the draft lists.
type protectedResourceMetadata struct {
	Resource                           string   `json:"resource"`
	AuthorizationServers               []string `json:"authorization_servers,omitempty"`
	AuthorizationDetailsTypesSupported []string `json:"authorization_details_types_supported"`
	BearerMethodsSupported             []string `json:"bearer_methods_supported"`
	MercureCookie                      string   `json:"mercure_cookie"`
	MercureMatcherTypesSupported       []string `json:"mercure_matcher_types_supported"`
	MercureSubscriptions               bool     `json:"mercure_subscriptions,omitempty"`
}

// metadata serves the protected resource metadata: what a draft-08 client needs to get a
// token for this hub (its resource identifier, the authorization servers it trusts) and to
// present it (the header, or the cookie named by mercure_cookie; never the query string).
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	doc := protectedResourceMetadata{
		Resource:                           s.resource(r),
		AuthorizationServers:               s.cfg.Issuers.AuthorizationServers(),
		AuthorizationDetailsTypesSupported: []string{auth.AuthorizationDetailType},
		BearerMethodsSupported:             []string{"header"},
		MercureCookie:                      auth.AccessTokenCookie,
		MercureMatcherTypesSupported:       []string{topic.MatchExact.String(), topic.MatchURLPattern.String()},
		MercureSubscriptions:               s.cfg.Subscriptions,
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "max-age=300")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}

// authorizeAccessToken verifies a draft-08 access token presented in role: never from the
// URL, from a cookie only for an allowed origin when publishing, and from a trusted issuer
// with this hub in its aud. Refusals carry RFC 6750 challenges.
func (s *Server) authorizeAccessToken(r *http.Request, token string, src auth.Source, publish bool) (*auth.Claims, *requestError) {
	if src == auth.SourceQuery {
		return nil, (&requestError{code: http.StatusBadRequest, category: reasonInvalidToken,
			reason: "access tokens must not be sent in the URL: use the Authorization header or the " + auth.AccessTokenCookie + " cookie"}).asBearer()
	}
	if publish && (src == auth.SourceCookie || src == auth.SourceAccessTokenCookie) {
		if err := auth.CheckOrigin(r, s.cfg.PublishOrigins); err != nil {
			return nil, (&requestError{code: http.StatusBadRequest, category: reasonForbiddenOrigin, reason: err.Error()}).asBearer()
		}
	}
	role := auth.RoleSubscriber
	if publish {
		role = auth.RolePublisher
	}
	claims, err := s.cfg.Issuers.Verify(token, role, s.resource(r))
	if err != nil {
		return nil, (&requestError{code: http.StatusUnauthorized, category: reasonInvalidToken, reason: err.Error()}).asBearer()
	}
	return claims, nil
}

// forbidden is the 403 of a valid token that does not grant what the request asks, with an
// insufficient_scope challenge for a draft-08 token or request.
func forbidden(r *http.Request, claims *auth.Claims, reason string) *requestError {
	e := &requestError{code: http.StatusForbidden, category: reasonForbiddenTopic, reason: reason}
	if claims.Dialect == auth.DialectDraft08 || draft08Request(r) {
		e.asBearer()
	}
	return e
}

// compileGrants compiles a token's selectors. A selector the hub cannot compile (a matcher
// type it does not support) makes the whole token invalid, as the draft requires: acting on
// the rest would change what the token grants.
func (s *Server) compileGrants(r *http.Request, claims *auth.Claims, specs []topic.Spec) ([]*topic.Selector, *requestError) {
	m := s.hub.Matcher()
	out := make([]*topic.Selector, len(specs))
	for i, sp := range specs {
		sel, err := m.CompileSpec(sp)
		if err != nil {
			e := &requestError{code: http.StatusUnauthorized, category: reasonInvalidToken, reason: "the token holds a matcher the hub cannot use: " + err.Error()}
			if claims.Dialect == auth.DialectDraft08 || draft08Request(r) {
				e.asBearer()
			}
			return nil, e
		}
		out[i] = sel
	}
	return out, nil
}

// subscriptionPayloads picks the payload of each of a subscription's selectors from a draft-08
// token: that of the first subscribe detail with a matcher matching the selector's own text.
// allowed are the token's subscribe selectors compiled (claims.Subscribe: the subscribe
// details' topics, in order). It returns nil when no detail carries a payload, and always for
// a 0.x token, whose payload is one for the whole token.
func (s *Server) subscriptionPayloads(claims *auth.Claims, allowed, selectors []*topic.Selector) []json.RawMessage {
	if claims == nil || claims.Dialect != auth.DialectDraft08 {
		return nil
	}
	has, n := false, 0
	for _, d := range claims.SubscribeDetails {
		has = has || d.Payload != nil
		n += len(d.Topics)
	}
	if !has || n != len(allowed) {
		return nil
	}
	m := s.hub.Matcher()
	out := make([]json.RawMessage, len(selectors))
	for i, sel := range selectors {
		at := 0
		for _, d := range claims.SubscribeDetails {
			own := allowed[at : at+len(d.Topics)]
			at += len(d.Topics)
			if m.MatchAny(own, []string{sel.Raw()}) {
				out[i] = d.Payload
				break
			}
		}
	}
	return out
}
