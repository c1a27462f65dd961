package topic

import (
	"hash/maphash"
	"regexp"
	"strings"
)

// maxCachedTopicLen is the longest topic whose match results are cached. Longer topics are rare
// and would make each cache entry expensive to hold; they are matched without the cache.
const maxCachedTopicLen = 4096

// maxCachedRegexps bounds the compiled regular expressions a Matcher keeps, one per template
// shape in use. Each costs about 4 KiB; beyond the bound they are compiled again when needed.
const maxCachedRegexps = 4096

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
}

type matchKey struct {
	shape, topic string
}

// NewMatcher returns a Matcher whose caches of selectors and of match results hold at most
// cacheSize entries each; a cacheSize of zero (or less) disables them: every call compiles or
// matches afresh. The cache of regular expressions always holds up to maxCachedRegexps: it
// bounds CPU (compiling one costs tens of microseconds), and its memory is bounded anyway.
func NewMatcher(cacheSize int) *Matcher {
	return &Matcher{
		selectors: newCache[string, *Selector](cacheSize, maphash.String),
		regexps:   newCache[string, *regexp.Regexp](maxCachedRegexps, maphash.String),
		results:   newCache[matchKey, bool](cacheSize, hashMatchKey),
	}
}

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
	if s.kind == KindAny || s.raw == topic {
		return true
	}
	if s.kind != KindTemplate {
		return false
	}
	return m.matchTemplate(s, topic)
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
	templates := false
	for _, s := range sels {
		if s == nil {
			continue
		}
		if s.kind == KindAny {
			return true
		}
		for _, t := range topics {
			if s.raw == t {
				return true
			}
		}
		templates = templates || s.kind == KindTemplate
	}
	if !templates {
		return false
	}
	for _, s := range sels {
		if s == nil || s.kind != KindTemplate {
			continue
		}
		for _, t := range topics {
			if m.matchTemplate(s, t) {
				return true
			}
		}
	}
	return false
}
