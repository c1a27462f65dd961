package auth

import (
	"fmt"
	"net/http"
	"strings"
)

// DefaultCookieName is the cookie FromRequest reads when given "".
const DefaultCookieName = "mercureAuthorization"

// AccessTokenCookie is the cookie draft-08 clients carry their access token in. FromRequest
// reads it before the 0.x cookie.
const AccessTokenCookie = "__Secure-mercure_access_token"

// Source says where FromRequest found a token. It matters to the caller
// because a cookie is sent by the browser on its own: a publish authorised
// by a cookie must pass CheckOrigin first.
type Source int

// The places a token can come from, in the order FromRequest looks.
const (
	SourceNone              Source = iota // no token: an anonymous request
	SourceHeader                          // Authorization: Bearer header
	SourceQuery                           // authorization query parameter
	SourceCookie                          // the 0.x authorization cookie
	SourceAccessTokenCookie               // the draft-08 cookie, AccessTokenCookie
)

// String returns a lower-case name for logs.
func (s Source) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceHeader:
		return "header"
	case SourceQuery:
		return "query"
	case SourceCookie:
		return "cookie"
	case SourceAccessTokenCookie:
		return "access token cookie"
	default:
		return fmt.Sprintf("Source(%d)", int(s))
	}
}

const bearerPrefix = "Bearer "

// FromRequest finds the request's token, looking at the Authorization
// header, then the authorization query parameter, then the AccessTokenCookie,
// then the cookie named cookieName ("" means DefaultCookieName). The first
// place that is present
// decides, even if its token is bad: a malformed header is an error, not a
// reason to try the cookie, so a client cannot be silently authorised by
// something it did not mean to send.
//
// The header must appear once and start with "Bearer " (case-sensitive for
// 0.x tokens as ever; any case for draft-08 access tokens, as RFC 9110 says); the
// query parameter must appear once and be non-empty; several non-empty
// cookies of that name are refused as ambiguous, and an empty one counts as
// absent (that is how a cleared cookie looks). With nothing present it
// returns "", SourceNone, nil. Errors wrap ErrInvalidToken.
//
// It does not verify the token: pass it to Verifier.Verify.
func FromRequest(r *http.Request, cookieName string) (string, Source, error) {
	if values := r.Header.Values("Authorization"); len(values) > 0 {
		if len(values) > 1 {
			return "", SourceHeader, invalidf("several Authorization headers")
		}
		token, ok := strings.CutPrefix(values[0], bearerPrefix)
		if !ok && len(values[0]) >= len(bearerPrefix) && strings.EqualFold(values[0][:len(bearerPrefix)], bearerPrefix) && IsAccessToken(values[0][len(bearerPrefix):]) {
			token, ok = values[0][len(bearerPrefix):], true
		}
		if !ok {
			return "", SourceHeader, invalidf(`Authorization header must use the "Bearer" scheme`)
		}
		if token == "" {
			return "", SourceHeader, invalidf("empty bearer token")
		}
		return token, SourceHeader, nil
	}

	if r.URL != nil {
		if values, ok := r.URL.Query()["authorization"]; ok {
			if len(values) > 1 {
				return "", SourceQuery, invalidf("several authorization query parameters")
			}
			if values[0] == "" {
				return "", SourceQuery, invalidf("empty authorization query parameter")
			}
			return values[0], SourceQuery, nil
		}
	}

	if token, found := cookie(r, AccessTokenCookie); found > 0 {
		if found > 1 {
			return "", SourceAccessTokenCookie, invalidf("several %s cookies", AccessTokenCookie)
		}
		return token, SourceAccessTokenCookie, nil
	}
	if cookieName == "" {
		cookieName = DefaultCookieName
	}
	switch token, found := cookie(r, cookieName); found {
	case 0:
		return "", SourceNone, nil
	case 1:
		return token, SourceCookie, nil
	default:
		return "", SourceCookie, invalidf("several %s cookies", cookieName)
	}
}

// cookie returns the value of the non-empty cookies named name and how many there are (an
// empty one is how a cleared cookie looks).
func cookie(r *http.Request, name string) (string, int) {
	var token string
	found := 0
	for _, c := range r.CookiesNamed(name) {
		if c.Value == "" {
			continue
		}
		token = c.Value
		found++
	}
	return token, found
}
