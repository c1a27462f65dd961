package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CheckOrigin protects publishes authorised by a cookie against cross-site
// request forgery: a browser attaches the cookie to any site's request, so
// the request must also come from a page the operator allows.
//
// The request's Origin header, or when it has none its Referer reduced to
// scheme://host[:port], must match an entry of allowed. Matching ignores
// case, a trailing "/" and a default port (":443" for https, ":80" for
// http). An entry "*" allows every origin; an entry may contain one "*"
// standing for one or more characters of a host name or port, e.g.
// "https://*.example.com" (which does not match "https://example.com").
// An empty allowed list, or a request with neither header, is refused.
// Errors wrap ErrOriginNotAllowed.
func CheckOrigin(r *http.Request, allowed []string) error {
	if len(allowed) == 0 {
		return fmt.Errorf("%w: no publish origin is allowed for cookie authorisation", ErrOriginNotAllowed)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		ref := r.Header.Get("Referer")
		if ref == "" {
			return fmt.Errorf("%w: request has neither Origin nor Referer", ErrOriginNotAllowed)
		}
		u, err := url.Parse(ref)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("%w: unusable Referer", ErrOriginNotAllowed)
		}
		origin = u.Scheme + "://" + u.Host
	}
	got := normalizeOrigin(origin)
	for _, entry := range allowed {
		if entry == "*" || originMatches(normalizeOrigin(entry), got) {
			return nil
		}
	}
	return fmt.Errorf("%w: origin %q", ErrOriginNotAllowed, origin)
}

// normalizeOrigin lower-cases an origin and drops a trailing slash and a
// default port, so equal origins compare equal.
func normalizeOrigin(s string) string {
	s = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "/"))
	switch {
	case strings.HasPrefix(s, "https://"):
		s = strings.TrimSuffix(s, ":443")
	case strings.HasPrefix(s, "http://"):
		s = strings.TrimSuffix(s, ":80")
	}
	return s
}

// originMatches compares a normalized origin with a normalized allowed
// entry holding at most one "*". The wildcard must match at least one
// character, and only characters of a host name or port, so it can never
// swallow a scheme separator, a path or userinfo.
func originMatches(pattern, origin string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == origin
	}
	prefix, suffix := pattern[:star], pattern[star+1:]
	if strings.Contains(suffix, "*") {
		return false // more than one wildcard: not a supported pattern
	}
	if len(origin) <= len(prefix)+len(suffix) || !strings.HasPrefix(origin, prefix) || !strings.HasSuffix(origin, suffix) {
		return false
	}
	for _, c := range origin[len(prefix) : len(origin)-len(suffix)] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
