package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/topic"
)

// MaxSelectors is the largest number of entries accepted in
// mercure.publish or mercure.subscribe. A larger list is refused rather than
// truncated: it is either a mistake or an attempt to make every topic match
// expensive.
const MaxSelectors = 1000

// Claim names read from a token.
const (
	claimMercure      = "mercure"
	claimMercureRocks = "https://mercure.rocks/" // overrides "mercure" when present
	claimExp          = "exp"
	claimNbf          = "nbf"
	claimSub          = "sub"
	claimIss          = "iss"
	claimAud          = "aud"
	claimDetails      = "authorization_details"
)

// Dialect says which version of the protocol a token speaks.
type Dialect uint8

const (
	// Dialect0x is a Mercure 0.x token: any signed JWT, its grants in the mercure claim.
	Dialect0x Dialect = iota
	// DialectDraft08 is a draft-08 access token: an RFC 9068 JWT access token (typ at+jwt)
	// from a trusted issuer, its grants in authorization_details.
	DialectDraft08
)

// String returns "0.x" or "draft-08", for logs.
func (d Dialect) String() string {
	if d == DialectDraft08 {
		return "draft-08"
	}
	return "0.x"
}

// Claims is what a verified token grants. It is only ever returned for a
// token whose signature, exp and nbf have been checked.
type Claims struct {
	// Dialect says which kind of token this was; the HTTP layer answers a
	// draft-08 token's refusals as RFC 6750 errors.
	Dialect Dialect
	// Publish holds the selectors of the topics the bearer may publish to:
	// mercure.publish (as topic.MatchTopic specs) for a 0.x token, the topics
	// of every authorization detail granting publish for a draft-08 one.
	Publish []topic.Spec
	// HasPublish is true when the token has a publish claim, even an empty
	// one, so callers can tell "may publish nowhere" from "said nothing".
	HasPublish bool
	// Subscribe holds the selectors of the private updates the bearer may
	// receive: mercure.subscribe, or the topics of every authorization
	// detail granting subscribe.
	Subscribe []topic.Spec
	// HasSubscribe is true when the token has a subscribe claim, even an
	// empty one.
	HasSubscribe bool
	// Payload is mercure.payload as it appears in the token (any JSON
	// value, JSON null included), published with the subscriber's
	// subscription events; nil when the claim is absent. Always nil for a
	// draft-08 token, whose payloads are per subscription (SubscribeDetails).
	Payload json.RawMessage
	// SubscribeDetails are a draft-08 token's authorization details that
	// grant subscribe, in the token's order: the payload of a subscription
	// is that of the first one whose topics match the subscription's own
	// matcher. Their topics, in order, are Subscribe. Nil for a 0.x token.
	SubscribeDetails []Detail
	// Issuer is a draft-08 token's iss claim, one of the trusted issuers.
	Issuer string
	// Audience is a draft-08 token's aud claim, one string or several.
	Audience []string
	// Subject is the sub claim, "" when absent.
	Subject string
	// ExpiresAt is the exp claim; the zero time when the token has none.
	// A subscriber's stream can be closed when it passes.
	ExpiresAt time.Time
}

// tokenClaims receives a token's claim set. It keeps every claim raw and
// looks names up exactly (encoding/json would match them case-insensitively),
// so nothing is interpreted before the signature has been checked except exp
// and nbf, which jwt's validator asks for after that check.
type tokenClaims struct {
	raw map[string]json.RawMessage
}

var _ jwt.Claims = (*tokenClaims)(nil)

// UnmarshalJSON implements json.Unmarshaler: the claim set must be a JSON
// object.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	c.raw = m // a "null" claim set never gets here; Verify refuses it
	return nil
}

// GetExpirationTime implements jwt.Claims.
func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return c.numericDate(claimExp)
}

// GetNotBefore implements jwt.Claims.
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) {
	return c.numericDate(claimNbf)
}

// GetIssuedAt implements jwt.Claims; iat is deliberately ignored.
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error) { return nil, nil }

// GetIssuer implements jwt.Claims; iss is deliberately ignored.
func (c *tokenClaims) GetIssuer() (string, error) { return "", nil }

// GetSubject implements jwt.Claims. The validator only asks for it when a
// subject is required, which the hub never does.
func (c *tokenClaims) GetSubject() (string, error) { return c.subject() }

// GetAudience implements jwt.Claims; aud is deliberately ignored.
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) { return nil, nil }

// maxNumericDate bounds exp and nbf to values a float64 holds exactly and
// time.Unix converts without overflow (about 285 million years).
const maxNumericDate = 1 << 53

// numericDate reads a NumericDate claim: absent or null is nil; anything but
// a JSON number is an error (jwt's own NumericDate would also accept a
// numeric string such as "123").
func (c *tokenClaims) numericDate(name string) (*jwt.NumericDate, error) {
	raw, ok := c.raw[name]
	if !ok || isNull(raw) {
		return nil, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, invalidf("%s claim must be a number", name)
	}
	if math.IsNaN(f) || math.Abs(f) > maxNumericDate {
		return nil, invalidf("%s claim is out of range", name)
	}
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
}

func (c *tokenClaims) subject() (string, error) {
	raw, ok := c.raw[claimSub]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("sub claim must be a string", err)
	}
	return s, nil
}

// toClaims interprets a verified claim set.
func (c *tokenClaims) toClaims() (*Claims, error) {
	out := &Claims{}

	sub, err := c.subject()
	if err != nil {
		return nil, err
	}
	out.Subject = sub

	exp, err := c.numericDate(claimExp)
	if err != nil {
		return nil, err
	}
	if exp != nil {
		out.ExpiresAt = exp.Time
	}

	// The namespaced claim wins when present; a null one counts as absent.
	name := claimMercureRocks
	raw, ok := c.raw[claimMercureRocks]
	if !ok || isNull(raw) {
		name = claimMercure
		raw, ok = c.raw[claimMercure]
	}
	if !ok || isNull(raw) {
		return out, nil
	}

	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid(name+" claim must be a JSON object", err)
	}

	out.Publish, out.HasPublish, err = selectors(m, name, "publish")
	if err != nil {
		return nil, err
	}
	out.Subscribe, out.HasSubscribe, err = selectors(m, name, "subscribe")
	if err != nil {
		return nil, err
	}
	if p, ok := m["payload"]; ok {
		out.Payload = bytes.Clone(p)
	}
	return out, nil
}

// selectors reads one array of topic selectors from the mercure claim
// object. An absent or null field is (nil, false); an empty array is a
// non-nil empty slice and true.
func selectors(m map[string]json.RawMessage, claim, field string) ([]topic.Spec, bool, error) {
	raw, ok := m[field]
	if !ok || isNull(raw) {
		return nil, false, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, false, invalid(fmt.Sprintf("%s.%s claim must be an array of strings", claim, field), err)
	}
	if len(items) > MaxSelectors {
		return nil, false, invalidf("%s.%s claim has %d entries; at most %d are allowed", claim, field, len(items), MaxSelectors)
	}
	out := make([]topic.Spec, 0, len(items))
	for _, item := range items {
		var s string
		if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &s) != nil {
			return nil, false, invalidf("%s.%s claim must be an array of strings", claim, field)
		}
		out = append(out, topic.Spec{Type: topic.MatchTopic, Value: s})
	}
	return out, true, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
