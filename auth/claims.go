package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
)

// Claims is what a verified token grants. It is only ever returned for a
// token whose signature, exp and nbf have been checked.
type Claims struct {
	// Publish holds the mercure.publish topic selectors: the topics the
	// bearer may publish to.
	Publish []string
	// HasPublish is true when the token has a publish claim, even an empty
	// one, so callers can tell "may publish nowhere" from "said nothing".
	HasPublish bool
	// Subscribe holds the mercure.subscribe topic selectors: the private
	// updates the bearer may receive.
	Subscribe []string
	// HasSubscribe is true when the token has a subscribe claim, even an
	// empty one.
	HasSubscribe bool
	// Payload is mercure.payload as it appears in the token (any JSON
	// value, JSON null included), published with the subscriber's
	// subscription events; nil when the claim is absent.
	Payload json.RawMessage
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
func selectors(m map[string]json.RawMessage, claim, field string) ([]string, bool, error) {
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
	out := make([]string, 0, len(items))
	for _, item := range items {
		var s string
		if len(item) == 0 || item[0] != '"' || json.Unmarshal(item, &s) != nil {
			return nil, false, invalidf("%s.%s claim must be an array of strings", claim, field)
		}
		out = append(out, s)
	}
	return out, true, nil
}

func isNull(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "null"
}
