package topic

import (
	"errors"
	"fmt"
	"hash/maphash"
	"regexp"
	"strings"

	"github.com/dunglas/go-urlpattern"
)

// maxCachedTopicLen is the longest topic whose match results are cached. Longer topics are rare
// and would make each cache entry expensive to hold; they are matched without the cache.
const maxCachedTopicLen = 4096

// maxCachedRegexps bounds the compiled regular expressions a Matcher keeps, one per template
// shape in use. Each costs about 4 KiB; beyond the bound they are compiled again when needed.
const maxCachedRegexps = 4096

// maxCachedPatterns bounds the compiled URL patterns a Matcher keeps. One is eight regular
// expressions (those of "*" components shared), about 10 KiB for a typical pattern: the bound
// keeps them near 20 MiB, as the template regexps are kept near 16 MiB. Beyond it they are
// compiled again when needed.
const maxCachedPatterns = 2048

// Matcher matches topics against selectors with bounded caches: compiled selectors by their
// string, the regular expressions of template shapes, and the result of matching a template
// shape against a topic. Regular expressions are only run (and compiled) on a cache miss, and
// only for topics that have the template's literal text where it needs it, which matters
// because the hub matches every update against the templates of its subscribers. A Matcher is
// safe for concurrent use.
type Matcher struct {
	selectors *cache[string, *Selector]
	regexps   *cache[string, *regexp.Regexp]
	results   *cache[matchKey, bool]
	// base is the hub's URL, which relative URL patterns and topics are resolved against. One
	// per hub, so that compiled patterns and results can be cached by text alone.
	base     *hubBase
	patSels  *cache[string, *Selector]              // URL pattern selectors by their text
	patterns *cache[string, *urlpattern.URLPattern] // compiled URL patterns by their text
	keys     *cache[string, topicKey]               // TopicKey's answers by topic
}

// topicKey is a cached answer of TopicKey.
type topicKey struct {
	key string
	ok  bool
}

// matchKey is a cached result: the template's shape (or the URL pattern's text) and the topic.
type matchKey struct {
	pattern      bool // shape is a URL pattern's text
	shape, topic string
}

// NewMatcher returns a Matcher for a hub at DefaultHubURL whose caches of selectors, of topics'
// resolved URLs and of match results hold at most cacheSize entries each; a cacheSize of zero (or less) disables them: every call compiles or
// matches afresh. The cache of regular expressions always holds up to maxCachedRegexps: it
// bounds CPU (compiling one costs tens of microseconds), and its memory is bounded anyway.
func NewMatcher(cacheSize int) *Matcher {
	m, err := NewMatcherAt(cacheSize, DefaultHubURL)
	if err != nil {
		panic(err) // DefaultHubURL is a valid URL
	}
	return m
}

// NewMatcherAt returns a Matcher as NewMatcher does, for the hub whose public URL is hubURL:
// relative URL patterns and topics are resolved against it, and the path of its reserved
// namespace (see Reserved) is its path. It fails when hubURL is not an absolute URL with a host.
func NewMatcherAt(cacheSize int, hubURL string) (*Matcher, error) {
	b, err := parseHubURL(hubURL)
	if err != nil {
		return nil, err
	}
	return &Matcher{
		selectors: newCache[string, *Selector](cacheSize, maphash.String),
		regexps:   newCache[string, *regexp.Regexp](maxCachedRegexps, maphash.String),
		results:   newCache[matchKey, bool](cacheSize, hashMatchKey),
		base:      b,
		patSels:   newCache[string, *Selector](cacheSize, maphash.String),
		patterns:  newCache[string, *urlpattern.URLPattern](maxCachedPatterns, maphash.String),
		keys:      newCache[string, topicKey](cacheSize, maphash.String),
	}, nil
}

// HubURL returns the hub URL relative patterns and topics are resolved against.
func (m *Matcher) HubURL() string { return m.base.raw }

// CompileSpec compiles a selector given with its type. MatchTopic values are compiled as Compile
// does and never fail. MatchExact and MatchURLPattern values must pass ValidateValue; "*" is the
// wildcard for both; any other exact value matches only the identical topic (a "{" makes no
// template of it); a URL pattern must parse as one (relative patterns resolved against the
// hub's URL). The errors are short reasons fit for a 400.
func (m *Matcher) CompileSpec(s Spec) (*Selector, error) {
	switch s.Type {
	case MatchTopic:
		return m.Compile(s.Value), nil
	case MatchExact, MatchURLPattern:
	default:
		return nil, fmt.Errorf("unsupported matcher type %v", s.Type)
	}
	if err := ValidateValue(s.Value); err != nil {
		return nil, err
	}
	if s.Value == "*" {
		return &Selector{raw: "*", kind: KindAny, typ: s.Type}, nil
	}
	if s.Type == MatchExact {
		return &Selector{raw: s.Value, kind: KindExact, typ: MatchExact}, nil
	}
	if sel, ok := m.patSels.get(s.Value); ok {
		return sel, nil
	}
	raw := strings.Clone(s.Value)
	p, err := compileURLPattern(raw, m.base)
	if err != nil {
		return nil, err
	}
	m.patterns.put(raw, p)
	sel := &Selector{raw: raw, kind: KindURLPattern, typ: MatchURLPattern, pat: newURLPatternInfo(p, m.base)}
	return m.patSels.put(raw, sel), nil
}

// TopicKey returns the key under which an index of URL patterns looks topic up (see
// Selector.PatternKey), and false when topic does not parse as a URL reference against the hub's
// URL: no URL pattern matches it.
func (m *Matcher) TopicKey(topic string) (string, bool) {
	if len(topic) > maxCachedTopicLen {
		return m.base.topicKey(topic)
	}
	if k, ok := m.keys.get(topic); ok {
		return k.key, k.ok
	}
	key, ok := m.base.topicKey(topic)
	m.keys.put(strings.Clone(topic), topicKey{key: key, ok: ok})
	return key, ok
}

// Reserved reports whether topic addresses the hub's reserved namespace: resolved against the
// hub's URL, its path (dot segments removed, unreserved characters percent-decoded) is the hub
// URL's path or lies under it, whatever its scheme and host. A topic that is not a URL reference
// names no hub path and is not reserved.
func (m *Matcher) Reserved(topic string) bool {
	u, ok := m.base.resolve(topic)
	if !ok {
		return false
	}
	p := decodeUnreserved(u.Pathname())
	return p == m.base.path || strings.HasPrefix(p, strings.TrimSuffix(m.base.path, "/")+"/")
}

// errNoPattern marks a URL pattern selector whose pattern no longer compiles, which cannot
// happen for a selector built by CompileSpec.
var errNoPattern = errors.New("URL pattern does not compile")

func hashMatchKey(seed maphash.Seed, k matchKey) uint64 {
	return maphash.String(seed, k.topic) ^ maphash.String(seed, k.shape)*0x9e3779b97f4a7c15
}

// Compile returns the compiled selector for raw. Selectors containing "{" and no longer than
// MaxTemplateLen (templates and invalid templates, the ones costly to compile) are cached, so the
// same *Selector is shared by every caller while it stays in the cache; other selectors are
// cheap to build and are built afresh, which also keeps huge selectors out of the cache.
func (m *Matcher) Compile(raw string) *Selector {
	if len(raw) > MaxTemplateLen || !strings.Contains(raw, "{") {
		return Compile(raw)
	}
	if s, ok := m.selectors.get(raw); ok {
		return s
	}
	// Clone so that the cache does not pin a larger string raw may be a slice of (a request
	// body, a URL query).
	raw = strings.Clone(raw)
	return m.selectors.put(raw, Compile(raw))
}

// Match reports whether s matches topic, as s.Match does. Only template selectors use the result
// cache; exact, "*" and invalid selectors are decided by a string comparison. A nil Selector
// matches nothing.
func (m *Matcher) Match(s *Selector, topic string) bool {
	if s == nil {
		return false
	}
	if s.kind == KindAny {
		return true
	}
	if s.kind == KindURLPattern {
		return m.matchPattern(s, topic)
	}
	if s.raw == topic {
		return true
	}
	if s.kind != KindTemplate {
		return false
	}
	return m.matchTemplate(s, topic)
}

// matchPattern matches a URL pattern selector against a topic, through the result cache.
func (m *Matcher) matchPattern(s *Selector, topic string) bool {
	if m.results == nil || len(topic) > maxCachedTopicLen {
		return m.testPattern(s, topic)
	}
	k := matchKey{pattern: true, shape: s.raw, topic: topic}
	if ok, hit := m.results.get(k); hit {
		return ok
	}
	ok := m.testPattern(s, topic)
	m.results.put(matchKey{pattern: true, shape: s.raw, topic: strings.Clone(topic)}, ok)
	return ok
}

// testPattern runs s's compiled pattern (from the cache, or compiled afresh) on topic resolved
// against the hub URL; a topic that is no URL reference matches nothing.
func (m *Matcher) testPattern(s *Selector, topic string) bool {
	p, err := m.pattern(s)
	return err == nil && p.Test(topic, s.pat.base.raw)
}

// pattern returns the compiled URL pattern of s.
func (m *Matcher) pattern(s *Selector) (*urlpattern.URLPattern, error) {
	if p, ok := m.patterns.get(s.raw); ok && s.pat.base == m.base {
		return p, nil
	}
	p, err := compileURLPattern(s.raw, s.pat.base)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoPattern, err)
	}
	if s.pat.base == m.base {
		m.patterns.put(s.raw, p)
	}
	return p, nil
}

// matchTemplate matches a template selector against a topic other than its raw string.
func (m *Matcher) matchTemplate(s *Selector, topic string) bool {
	if !s.tpl.mayMatch(topic) {
		return false
	}
	if m.results == nil || len(topic) > maxCachedTopicLen {
		re := m.regexp(s)
		return re != nil && re.MatchString(topic)
	}
	k := matchKey{shape: s.tpl.shape, topic: topic}
	if ok, hit := m.results.get(k); hit {
		return ok
	}
	re := m.regexp(s)
	ok := re != nil && re.MatchString(topic)
	m.results.put(matchKey{shape: s.tpl.shape, topic: strings.Clone(topic)}, ok)
	return ok
}

// regexp returns the regular expression of s, a template selector, from the cache or compiled
// afresh; nil (which matches nothing) would mean that a valid template has no usable
// expression, which the fuzz test of Compile looks for.
func (m *Matcher) regexp(s *Selector) *regexp.Regexp {
	if re, ok := m.regexps.get(s.tpl.shape); ok {
		return re
	}
	re := compileTemplate(s.raw)
	return m.regexps.put(s.tpl.shape, re)
}

// MatchAny reports whether any of sels matches any of topics: whether an update with these
// topics is to be delivered to a subscriber with these selectors. Cheap checks ("*" and string
// equality) are done for every pair before any template is run. Nil selectors are skipped; with
// no topics nothing matches.
func (m *Matcher) MatchAny(sels []*Selector, topics []string) bool {
	if len(topics) == 0 {
		return false
	}
	costly := false
	for _, s := range sels {
		if s == nil {
			continue
		}
		if s.kind == KindAny {
			return true
		}
		if s.kind == KindURLPattern {
			costly = true
			continue
		}
		for _, t := range topics {
			if s.raw == t {
				return true
			}
		}
		costly = costly || s.kind == KindTemplate
	}
	if !costly {
		return false
	}
	for _, s := range sels {
		if s == nil || s.kind != KindTemplate && s.kind != KindURLPattern {
			continue
		}
		for _, t := range topics {
			if s.kind == KindTemplate && m.matchTemplate(s, t) || s.kind == KindURLPattern && m.matchPattern(s, t) {
				return true
			}
		}
	}
	return false
}
