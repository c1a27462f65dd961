package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dunglas/go-urlpattern"
	whatwg "github.com/nlnwa/whatwg-url/url"
)

// MaxSpecLen is the longest draft-08 matcher value, in bytes. The draft asks hubs to bound the
// length of a matcher's pattern; 4 KiB holds any real URL pattern or topic.
const MaxSpecLen = 4096

// DefaultHubURL is the hub URL relative URL patterns and topics are resolved against when none
// is configured. The ".invalid" top-level domain (RFC 6761) can name no real host: relative
// patterns then match relative topics, and absolute ones absolute topics, which is all that can
// be decided without knowing the hub's public address.
const DefaultHubURL = "https://herald.invalid/.well-known/mercure"

// ValidateValue checks a draft-08 matcher value (or topic) against the draft's character rules:
// valid UTF-8, no C0 or C1 control characters, no U+007F, no Unicode format characters
// (category Cf), and at most MaxSpecLen bytes. The error is a short reason fit for a 400.
func ValidateValue(v string) error {
	if len(v) > MaxSpecLen {
		return fmt.Errorf("longer than %d bytes", MaxSpecLen)
	}
	if !utf8.ValidString(v) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range v {
		switch {
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f:
			return fmt.Errorf("control character U+%04X", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Errorf("format character U+%04X", r)
		}
	}
	return nil
}

// urlPatternInfo is what a URL pattern selector keeps between matches. Like a template's
// regular expression, the compiled pattern (eight regular expressions, tens of kilobytes) is not
// kept: the Matcher caches it by the pattern's text.
type urlPatternInfo struct {
	// key is the literal start of every URL the pattern matches, written as topicKey writes a
	// topic: protocol "://" hostname ":" port pathname, cut before the first wildcard or group
	// of the pathname. It is "" when the protocol, hostname or port is not a literal.
	key string
	// suffix is the literal end of the pattern's pathname, after its last wildcard or group:
	// every URL the pattern matches has a key ending with it.
	suffix string
	base   *hubBase // the hub URL the pattern was compiled against
}

// patternSpecials are the characters that start something other than literal text in a URL
// pattern's component pattern string (literal occurrences are escaped with a backslash).
const patternSpecials = `\:*(){}?+`

// newURLPatternInfo derives the index key of a compiled pattern.
func newURLPatternInfo(p *urlpattern.URLPattern, b *hubBase) *urlPatternInfo {
	proto, host, port, path := p.Protocol(), p.Hostname(), p.Port(), p.Pathname()
	info := &urlPatternInfo{base: b, suffix: literalSuffix(path)}
	if strings.ContainsAny(proto+host+port, patternSpecials) {
		return info
	}
	if i := strings.IndexAny(path, patternSpecials); i >= 0 {
		// A group after a "/" takes the "/" as its prefix: "/books/:id?" matches "/books".
		path = strings.TrimSuffix(path[:i], "/")
		info.key = joinKey(proto, host, port, path)
	} else {
		// All literal: the whole key, which is also its suffix.
		info.key = joinKey(proto, host, port, path)
		info.suffix = ""
	}
	return info
}

// literalSuffix returns the literal text at the end of a component pattern string: after its last
// special character and, when that one starts a named group (":id"), after the group's name.
func literalSuffix(p string) string {
	i := strings.LastIndexAny(p, patternSpecials)
	if i < 0 {
		return p
	}
	rest := p[i+1:]
	if p[i] == ':' {
		rest = strings.TrimLeftFunc(rest, nameChar)
	}
	return rest
}

// nameChar reports whether r may continue a URL pattern group's name (the standard's identifier
// code points: ID_Continue, "$", ZWNJ and ZWJ; a superset here, which only shortens a suffix).
func nameChar(r rune) bool {
	return r == '$' || r == '_' || r == '\u200c' || r == '\u200d' ||
		unicode.In(r, unicode.L, unicode.Nl, unicode.Mn, unicode.Mc, unicode.Nd, unicode.Pc, unicode.Other_ID_Continue)
}

// joinKey writes the parts of a URL the index knows about, so that a pattern's literal start is
// a prefix of the key of every topic it matches.
func joinKey(proto, host, port, path string) string {
	return proto + "://" + host + ":" + port + path
}

// hubBase is the hub URL patterns and topics are resolved against, parsed once.
type hubBase struct {
	raw  string
	path string // its pathname with dot segments removed and unreserved octets decoded
}

// parseHubURL checks that raw is an absolute URL with a host and returns it as a base.
func parseHubURL(raw string) (*hubBase, error) {
	u, err := whatwg.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("hub URL %q: %w", raw, err)
	}
	if u.Hostname() == "" || u.OpaquePath() {
		return nil, fmt.Errorf("hub URL %q: not an absolute URL with a host", raw)
	}
	return &hubBase{raw: raw, path: decodeUnreserved(u.Pathname())}, nil
}

// resolve parses topic as a URL reference against the hub URL; ok is false when it is not one.
// The base is parsed afresh each time: the parser clones its base, and a clone initialises
// state of the original lazily, so a parsed base shared between goroutines would race.
func (b *hubBase) resolve(topic string) (*whatwg.Url, bool) {
	u, err := whatwg.ParseRef(b.raw, topic)
	return u, err == nil
}

// topicKey returns the key under which the URL pattern index looks topic up (see
// urlPatternInfo.key), and false when topic is not a URL reference, which no pattern matches.
func (b *hubBase) topicKey(topic string) (string, bool) {
	u, ok := b.resolve(topic)
	if !ok {
		return "", false
	}
	return joinKey(u.Scheme(), u.Hostname(), u.Port(), u.Pathname()), true
}

// decodeUnreserved decodes the percent-encoded octets of RFC 3986's unreserved characters
// (ALPHA, DIGIT, "-", ".", "_", "~"), its percent-encoding normalisation.
func decodeUnreserved(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if c := hi<<4 | lo; ok1 && ok2 && unreserved(c) {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0
}

// compileURLPattern compiles raw against the hub URL. The library builds Go regular expressions
// (RE2: linear in the input), so no pattern can make matching backtrack.
func compileURLPattern(raw string, b *hubBase) (*urlpattern.URLPattern, error) {
	// Nil options: ignoreCase stays off, as the draft requires.
	p, err := urlpattern.New(raw, b.raw, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid URL pattern: %w", err)
	}
	return p, nil
}
