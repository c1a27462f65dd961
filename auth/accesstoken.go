package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/topic"
)

// AuthorizationDetailType is the type of the authorization_details entries (RFC 9396) that
// carry Mercure grants in a draft-08 access token. Entries of other types are ignored.
const AuthorizationDetailType = "https://mercure.rocks/authorization-detail"

// MaxMatcherLength bounds the match value of a topic matcher in a draft-08 token, in bytes, as
// the hub bounds topics and selectors.
const MaxMatcherLength = 4096

// Detail is one Mercure authorization detail of a draft-08 token that grants something the hub
// knows (publish, subscribe or both), with its topic matchers and its payload.
type Detail struct {
	Publish   bool
	Subscribe bool
	// Topics are the detail's matchers; match_type defaults to exact.
	Topics []topic.Spec
	// Payload is the detail's payload member, raw; nil when absent.
	Payload json.RawMessage
}

// IsAccessToken reports whether token's protected header says it is an RFC 9068 JWT access
// token: a typ of "at+jwt" or "application/at+jwt", compared without regard to case. It does
// not verify anything; it tells which verification (and which dialect) applies. A token whose
// header cannot be read is not one, and fails the 0.x verification instead.
func IsAccessToken(token string) bool {
	head, _, ok := strings.Cut(token, ".")
	if !ok || len(head) > MaxTokenLength {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	// A map, as jwt reads the header that VerifyAccessToken then checks: the name "typ" is
	// matched exactly (a struct field would also take "Typ" or "TYP"), so that routing and
	// verification read the same member.
	var h map[string]any
	if json.Unmarshal(b, &h) != nil {
		return false
	}
	typ, ok := h["typ"].(string)
	return ok && isAccessTokenType(typ)
}

// isAccessTokenType compares a typ header with at+jwt as RFC 7515 section 4.1.9 says: without
// the "application/" prefix and without regard to case.
func isAccessTokenType(typ string) bool {
	if len(typ) > len("application/") && strings.EqualFold(typ[:len("application/")], "application/") {
		typ = typ[len("application/"):]
	}
	return strings.EqualFold(typ, "at+jwt")
}

// VerifyAccessToken checks a draft-08 access token (RFC 9068): the typ header, the pinned
// algorithm and the signature, a required exp, nbf, a string iss, an aud of one string or an
// array of strings, then reads authorization_details. The caller checks that iss is the issuer
// whose key this Verifier holds and that aud names the hub: Issuers.Verify does both. Errors
// wrap ErrInvalidToken; the returned Claims are shared and must not be modified.
func (v *Verifier) VerifyAccessToken(token string) (*Claims, error) {
	return v.verifyCached(token, DialectDraft08, v.verifyAccessToken)
}

func (v *Verifier) verifyAccessToken(token string) (*Claims, error) {
	tc := &tokenClaims{}
	tok, err := v.parser.ParseWithClaims(token, tc, v.keyFunc)
	if err != nil {
		return nil, v.classify(tok, err)
	}
	if !tok.Valid || tc.raw == nil {
		return nil, invalidf("malformed token")
	}
	if typ, _ := tok.Header["typ"].(string); !isAccessTokenType(typ) {
		return nil, invalidf(`token is not a JWT access token (typ must be "at+jwt")`)
	}
	return tc.toAccessClaims()
}

// toAccessClaims interprets the verified claim set of a draft-08 access token.
func (c *tokenClaims) toAccessClaims() (*Claims, error) {
	out := &Claims{Dialect: DialectDraft08}
	exp, err := c.numericDate(claimExp)
	if err != nil {
		return nil, err
	}
	if exp == nil {
		return nil, invalidf("token has no exp claim")
	}
	out.ExpiresAt = exp.Time
	if out.Subject, err = c.subject(); err != nil {
		return nil, err
	}
	iss, ok := c.raw[claimIss]
	if !ok || json.Unmarshal(iss, &out.Issuer) != nil || out.Issuer == "" {
		return nil, invalidf("token has no iss claim, or not a string")
	}
	if out.Audience, err = audience(c.raw[claimAud]); err != nil {
		return nil, err
	}
	details, err := parseDetails(c.raw[claimDetails])
	if err != nil {
		return nil, err
	}
	for _, d := range details {
		if d.Publish {
			out.Publish = append(out.Publish, d.Topics...)
			out.HasPublish = true
		}
		if d.Subscribe {
			out.Subscribe = append(out.Subscribe, d.Topics...)
			out.HasSubscribe = true
			out.SubscribeDetails = append(out.SubscribeDetails, d)
		}
	}
	return out, nil
}

// audience reads aud: one string or an array of strings (RFC 7519). Absent is an error, since
// the hub must find its resource identifier in it.
func audience(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, invalidf("token has no aud claim")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []json.RawMessage
	if json.Unmarshal(raw, &many) != nil {
		return nil, invalidf("aud claim must be a string or an array of strings")
	}
	out := make([]string, 0, len(many))
	for _, item := range many {
		var s string
		if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &s) != nil {
			return nil, invalidf("aud claim must be a string or an array of strings")
		}
		out = append(out, s)
	}
	return out, nil
}

// parseDetails reads authorization_details (RFC 9396): an array of objects, each with a string
// type. Mercure entries are validated whole, and one bad entry invalidates the token (the draft
// forbids acting on the rest); entries of other types are skipped. The number of Mercure
// entries, and of their topics summed, are bounded by MaxSelectors. Absent or null grants
// nothing.
func parseDetails(raw json.RawMessage) ([]Detail, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, invalid("authorization_details claim must be an array", err)
	}
	var out []Detail
	topics := 0
	for i, entry := range entries {
		var head map[string]json.RawMessage
		if len(bytes.TrimSpace(entry)) == 0 || bytes.TrimSpace(entry)[0] != '{' || json.Unmarshal(entry, &head) != nil {
			return nil, invalidf("authorization_details[%d] must be an object", i)
		}
		var typ string
		if t, ok := head["type"]; !ok || json.Unmarshal(t, &typ) != nil || !isString(t) {
			return nil, invalidf("authorization_details[%d] has no string type", i)
		}
		if typ != AuthorizationDetailType {
			continue
		}
		if len(out) == MaxSelectors {
			return nil, invalidf("too many Mercure authorization details (at most %d)", MaxSelectors)
		}
		d, err := parseDetail(i, head)
		if err != nil {
			return nil, err
		}
		topics += len(d.Topics)
		if topics > MaxSelectors {
			return nil, invalidf("too many topics in Mercure authorization details (at most %d)", MaxSelectors)
		}
		if d.Publish || d.Subscribe {
			out = append(out, d)
		}
	}
	return out, nil
}

// parseDetail validates one Mercure authorization detail: a non-empty array of string actions
// (unknown ones grant nothing), a non-empty array of topic matchers, an optional payload object.
func parseDetail(i int, m map[string]json.RawMessage) (Detail, error) {
	var d Detail
	var actions []json.RawMessage
	if json.Unmarshal(m["actions"], &actions) != nil || len(actions) == 0 {
		return d, invalidf("authorization_details[%d].actions must be a non-empty array of strings", i)
	}
	for _, a := range actions {
		var s string
		if !isString(a) || json.Unmarshal(a, &s) != nil {
			return d, invalidf("authorization_details[%d].actions must be a non-empty array of strings", i)
		}
		switch s {
		case "publish":
			d.Publish = true
		case "subscribe":
			d.Subscribe = true
		}
	}
	var topics []json.RawMessage
	if json.Unmarshal(m["topics"], &topics) != nil || len(topics) == 0 {
		return d, invalidf("authorization_details[%d].topics must be a non-empty array of matchers", i)
	}
	if len(topics) > MaxSelectors {
		return d, invalidf("too many topics in Mercure authorization details (at most %d)", MaxSelectors)
	}
	d.Topics = make([]topic.Spec, 0, len(topics))
	for j, t := range topics {
		spec, err := parseMatcher(t)
		if err != nil {
			return d, invalidf("authorization_details[%d].topics[%d]: %s", i, j, err)
		}
		d.Topics = append(d.Topics, spec)
	}
	if p, ok := m["payload"]; ok && !isNull(p) {
		if t := bytes.TrimSpace(p); len(t) == 0 || t[0] != '{' {
			return d, invalidf("authorization_details[%d].payload must be an object", i)
		}
		d.Payload = bytes.Clone(p)
	}
	return d, nil
}

// parseMatcher reads a topic matcher object {"match": "...", "match_type": "..."}.
func parseMatcher(raw json.RawMessage) (topic.Spec, error) {
	var m map[string]json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return topic.Spec{}, invalidf("a topic matcher must be an object")
	}
	spec := topic.Spec{Type: topic.MatchExact}
	match, ok := m["match"]
	if !ok || !isString(match) || json.Unmarshal(match, &spec.Value) != nil {
		return spec, invalidf("match must be a string")
	}
	if err := checkMatcher(spec.Value); err != nil {
		return spec, err
	}
	if mt, ok := m["match_type"]; ok {
		var name string
		if !isString(mt) || json.Unmarshal(mt, &name) != nil {
			return spec, invalidf("match_type must be a string")
		}
		t, known := topic.ParseMatchType(name)
		if !known {
			return spec, invalidf("unsupported match_type")
		}
		spec.Type = t
	}
	return spec, nil
}

// checkMatcher refuses a match value the hub would refuse as a topic: empty, too long, not
// UTF-8, or holding a control character.
func checkMatcher(s string) error {
	switch {
	case s == "":
		return invalidf("match is empty")
	case len(s) > MaxMatcherLength:
		return invalidf("match is longer than %d bytes", MaxMatcherLength)
	case !utf8.ValidString(s):
		return invalidf("match is not valid UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return invalidf("match contains a control character")
		}
	}
	return nil
}

func isString(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '"'
}

// Role says which endpoint a token is presented to, and so which of an issuer's keys applies.
type Role uint8

const (
	// RolePublisher is a publish.
	RolePublisher Role = iota
	// RoleSubscriber is a subscription or the subscriptions API.
	RoleSubscriber
)

// Issuer is a trusted issuer of draft-08 access tokens: its identifier (the exact iss of its
// tokens) and the verifiers of its publisher and subscriber keys. A nil verifier means the
// issuer's tokens are not accepted in that role.
type Issuer struct {
	ID string
	// AuthorizationServer advertises the issuer in the protected resource metadata; leave it
	// false for a self-issuing publisher.
	AuthorizationServer bool
	Publisher           *Verifier
	Subscriber          *Verifier
}

// Issuers are the issuers a hub trusts, looked up by iss, so that a token is only ever
// checked with the keys of the issuer it names, never with a pool spanning issuers.
type Issuers struct {
	list []Issuer
	byID map[string]int
	// seen remembers the issuer of tokens that verified, so that a token presented again skips
	// reading its claims before the signature check; its verifier's own cache then answers.
	seen verifiedCache
}

// NewIssuers indexes list. Identifiers must be non-empty and distinct.
func NewIssuers(list []Issuer) (*Issuers, error) {
	is := &Issuers{list: slices.Clone(list), byID: make(map[string]int, len(list))}
	for i, iss := range list {
		if iss.ID == "" {
			return nil, errors.New("auth: an issuer needs an identifier")
		}
		if _, dup := is.byID[iss.ID]; dup {
			return nil, fmt.Errorf("auth: issuer %q is configured twice", iss.ID)
		}
		is.byID[iss.ID] = i
	}
	return is, nil
}

// Len returns the number of trusted issuers; a nil *Issuers has none.
func (is *Issuers) Len() int {
	if is == nil {
		return 0
	}
	return len(is.list)
}

// IDs lists the trusted issuers' identifiers, in configuration order.
func (is *Issuers) IDs() []string {
	var out []string
	if is != nil {
		for _, iss := range is.list {
			out = append(out, iss.ID)
		}
	}
	return out
}

// AuthorizationServers lists the identifiers of the issuers marked as authorization servers,
// in configuration order.
func (is *Issuers) AuthorizationServers() []string {
	var out []string
	if is != nil {
		for _, iss := range is.list {
			if iss.AuthorizationServer {
				out = append(out, iss.ID)
			}
		}
	}
	return out
}

// Verify checks a draft-08 access token presented in role to the hub whose resource
// identifier is resource: its iss must name a trusted issuer with a key for role, the token
// must verify with that key alone (VerifyAccessToken), and resource must be its aud or one of
// them. Errors wrap ErrInvalidToken.
func (is *Issuers) Verify(token string, role Role, resource string) (*Claims, error) {
	var iss string
	if c, ok := is.seenIssuer(token); ok {
		iss = c.Issuer
	} else {
		var err error
		if iss, err = peekIssuer(token); err != nil {
			return nil, err
		}
	}
	i, ok := 0, false
	if is != nil {
		i, ok = is.byID[iss]
	}
	if !ok {
		return nil, invalidf("the token's issuer is not trusted")
	}
	v := is.list[i].Publisher
	if role == RoleSubscriber {
		v = is.list[i].Subscriber
	}
	if v == nil {
		return nil, invalidf("the token's issuer is not trusted for this role")
	}
	c, err := v.VerifyAccessToken(token)
	if err != nil {
		return nil, err
	}
	if c.Issuer != iss {
		return nil, invalidf("the token's issuer is not trusted")
	}
	if resource == "" || !slices.Contains(c.Audience, resource) {
		return nil, invalidf("the token's aud does not name this hub (%s)", resource)
	}
	is.seen.put(token, c, 0)
	return c, nil
}

// seenIssuer returns the claims of a token that verified lately, to read its issuer from.
func (is *Issuers) seenIssuer(token string) (*Claims, bool) {
	if is == nil {
		return nil, false
	}
	return is.seen.get(token, 0)
}

// peekIssuer reads iss from a token before its signature is checked, only to choose which
// issuer's keys to check it with; the claim is read again from the verified token.
func peekIssuer(token string) (string, error) {
	if len(token) > MaxTokenLength {
		return "", invalidf("token is too long (at most %d bytes)", MaxTokenLength)
	}
	tc := &tokenClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, tc); err != nil || tc.raw == nil {
		return "", invalidf("malformed token")
	}
	var iss string
	raw, ok := tc.raw[claimIss]
	if !ok || !isString(raw) || json.Unmarshal(raw, &iss) != nil || iss == "" {
		return "", invalidf("token has no iss claim, or not a string")
	}
	return iss, nil
}
