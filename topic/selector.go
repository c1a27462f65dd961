package topic

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/yosida95/uritemplate/v3"
)

// MaxTemplateLen is the longest selector, in bytes, that is compiled as a URI template. Selectors
// come from untrusted subscribers; the bound keeps the cost of compiling and running the
// template's regular expression small. A longer selector containing "{" is KindInvalid.
const MaxTemplateLen = 2048

// MaxTemplateVars is the largest number of variables (counted with repetitions, as in
// "{a,b}{a}": three) a selector may have to be compiled as a URI template. Matching a topic costs
// time proportional to the topic's length times the number of variables, and an anonymous
// subscriber chooses the selector: a 2 KiB template can hold a thousand variables and take tens
// of milliseconds on each long topic. Real templates have a handful. A selector with more
// variables is KindInvalid.
const MaxTemplateVars = 32

// Kind tells how a Selector matches topics.
type Kind uint8

const (
	// KindExact selectors (no "{") match only the identical topic.
	KindExact Kind = iota
	// KindAny is the selector "*": it matches every topic.
	KindAny
	// KindTemplate selectors are valid RFC 6570 URI templates: they match the identical topic
	// and every topic the template can expand to.
	KindTemplate
	// KindInvalid selectors contain "{" but are not valid templates (or are longer than
	// MaxTemplateLen, or have more than MaxTemplateVars variables): they match only the identical
	// topic.
	KindInvalid
	// KindURLPattern selectors are draft-08 urlpattern matchers other than "*": WHATWG URL
	// Patterns, matched against topics resolved against the hub's URL. Unlike the other kinds,
	// such a selector need not match its own string.
	KindURLPattern
)

// String returns the kind's name, for logs and test failures.
func (k Kind) String() string {
	switch k {
	case KindExact:
		return "exact"
	case KindAny:
		return "any"
	case KindTemplate:
		return "template"
	case KindInvalid:
		return "invalid"
	case KindURLPattern:
		return "urlpattern"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Selector is a compiled topic selector. It is immutable and safe for concurrent use; build it
// with Compile or Matcher.Compile.
type Selector struct {
	raw  string
	kind Kind
	typ  MatchType
	tpl  *template       // set only for KindTemplate
	pat  *urlPatternInfo // set only for KindURLPattern
}

// template is what a template selector keeps between matches. Its regular expression is not
// kept: at about 4 KiB it would make each distinct template, which any subscriber may choose,
// cost far more than its string. The Matcher compiles it when needed and caches it by shape,
// so that templates that differ only in their variable names share one.
type template struct {
	// shape is the template with every variable name replaced by "v" and prefix modifiers
	// (":3") removed: neither changes the regular expression, so templates of one shape match
	// the same topics.
	shape string
	// prefix and suffix are the literal text before the first expression and after the last
	// one (possibly empty); middle holds the literal runs between expressions, in order. Every
	// matching topic starts with prefix, ends with suffix and holds the middle runs in order
	// in between: a check that costs a few string comparisons and rejects most topics before
	// any regular expression runs. All three are substrings of the selector's string.
	prefix, suffix string
	middle         []string
}

// Compile compiles raw. It never fails: a selector that is not a valid template becomes
// KindInvalid, which still matches the identical topic. A template's regular expression is
// not built here: most of the cost of a template is there, and many templates are never
// matched against a topic that has their literal text (see Matcher).
func Compile(raw string) *Selector {
	s := &Selector{raw: raw}
	switch {
	case raw == "*":
		s.kind = KindAny
	case !strings.Contains(raw, "{"):
		s.kind = KindExact
	case validTemplate(raw):
		s.kind = KindTemplate
		s.tpl = parseTemplate(raw)
	default:
		s.kind = KindInvalid
	}
	return s
}

// validTemplate reports whether raw is a URI template that is short enough and has few enough
// variables to be matched as one. Such a template always has a usable regular expression: the
// fuzz test of Compile checks it.
func validTemplate(raw string) bool {
	return parseValid(raw) != nil
}

// parseValid returns raw parsed as a URI template when validTemplate would accept it, or nil.
func parseValid(raw string) *uritemplate.Template {
	if len(raw) > MaxTemplateLen || countVars(raw) > MaxTemplateVars {
		return nil
	}
	tpl, err := uritemplate.New(raw)
	if err != nil {
		return nil
	}
	return tpl
}

// parseTemplate splits raw, a valid URI template, into its literal runs and computes its shape.
// Literals cannot hold braces, so each expression runs from a "{" to the next "}".
func parseTemplate(raw string) *template {
	t := &template{}
	var shape strings.Builder
	shape.Grow(len(raw))
	first := true
	lit := 0 // start of the current literal run
	for i := 0; i < len(raw); {
		if raw[i] != '{' {
			i++
			continue
		}
		end := i + strings.IndexByte(raw[i:], '}')
		if first {
			t.prefix = raw[:i]
			first = false
		} else if i > lit {
			t.middle = append(t.middle, raw[lit:i])
		}
		shape.WriteString(raw[lit:i])
		shape.WriteString(expressionShape(raw[i+1 : end]))
		i = end + 1
		lit = i
	}
	t.suffix = raw[lit:]
	shape.WriteString(t.suffix)
	t.shape = shape.String()
	return t
}

// expressionShape returns "{" operator, then one "v" per variable (with "*" when exploded),
// then "}": what an expression contributes to the template's regular expression.
func expressionShape(expr string) string {
	var b strings.Builder
	b.WriteByte('{')
	if expr != "" && strings.IndexByte("+#./;?&=,!@|", expr[0]) >= 0 {
		b.WriteByte(expr[0])
		expr = expr[1:]
	}
	for i, v := range strings.Split(expr, ",") {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('v')
		if strings.HasSuffix(v, "*") {
			b.WriteByte('*')
		}
	}
	b.WriteByte('}')
	return b.String()
}

// mayMatch reports whether topic has the template's literal runs where a match needs them: a
// necessary condition, decided without the regular expression.
func (t *template) mayMatch(topic string) bool {
	if len(topic) < len(t.prefix)+len(t.suffix) || !strings.HasPrefix(topic, t.prefix) || !strings.HasSuffix(topic, t.suffix) {
		return false
	}
	rest := topic[len(t.prefix) : len(topic)-len(t.suffix)]
	for _, lit := range t.middle {
		i := strings.Index(rest, lit)
		if i < 0 {
			return false
		}
		rest = rest[i+len(lit):]
	}
	return true
}

// compileTemplate returns the anchored regular expression matching the expansions of the URI
// template raw, or nil if raw is not a valid template (see validTemplate) or its expression
// cannot be compiled.
func compileTemplate(raw string) (re *regexp.Regexp) {
	tpl := parseValid(raw)
	if tpl == nil {
		return nil
	}
	// Regexp uses regexp.MustCompile: a template that parses but yields an expression the regexp
	// package rejects (for example an expression with more than 1000 variables, whose repeat
	// count exceeds the regexp limit) panics. Such a selector is simply invalid.
	defer func() {
		if recover() != nil {
			re = nil
		}
	}()
	re = tpl.Regexp()
	// The library anchors the expression with ^ and $ (end of text, as no (?m) flag is set);
	// refuse anything else rather than silently matching substrings.
	if s := re.String(); !strings.HasPrefix(s, "^") || !strings.HasSuffix(s, "$") {
		return nil
	}
	return re
}

// Raw returns the selector as given to Compile.
func (s *Selector) Raw() string { return s.raw }

// Kind returns how the selector matches.
func (s *Selector) Kind() Kind { return s.kind }

// Type returns the matcher type the selector was given as: MatchTopic for 0.x selectors.
func (s *Selector) Type() MatchType { return s.typ }

// Spec returns the selector's text and type, as given to CompileSpec.
func (s *Selector) Spec() Spec { return Spec{Type: s.typ, Value: s.raw} }

// PatternKey returns, for a URL pattern selector, the literal start of the resolved URL of every
// topic it matches, as TopicKey writes it: an index of patterns can look them up by it. It is
// "" for the other kinds, and for patterns whose protocol, host or port is not literal.
func (s *Selector) PatternKey() string {
	if s.pat == nil {
		return ""
	}
	return s.pat.key
}

// PatternSuffix returns, for a URL pattern selector, the literal end of the resolved URL's key
// (see PatternKey) of every topic it matches: the end of its path after its last wildcard or
// group. It is "" for the other kinds.
func (s *Selector) PatternSuffix() string {
	if s.pat == nil {
		return ""
	}
	return s.pat.suffix
}

// Prefix returns the literal text a template selector's topics start with, and "" for the
// other kinds: an index of templates can look them up by it.
func (s *Selector) Prefix() string {
	if s.tpl == nil {
		return ""
	}
	return s.tpl.prefix
}

// Suffix returns the literal text a template selector's topics end with, and "" for the other
// kinds.
func (s *Selector) Suffix() string {
	if s.tpl == nil {
		return ""
	}
	return s.tpl.suffix
}

// Match reports whether the selector matches topic, without any caching: a template selector
// compiles its regular expression on each call. For repeated matching use a Matcher. A nil
// Selector matches nothing.
func (s *Selector) Match(topic string) bool {
	if s == nil {
		return false
	}
	if s.kind == KindAny {
		return true
	}
	if s.kind == KindURLPattern {
		p, err := compileURLPattern(s.raw, s.pat.base)
		return err == nil && p.Test(topic, s.pat.base.raw)
	}
	if s.raw == topic {
		return true
	}
	if s.kind != KindTemplate || !s.tpl.mayMatch(topic) {
		return false
	}
	re := compileTemplate(s.raw)
	return re != nil && re.MatchString(topic)
}

// countVars returns the number of variables in raw, a valid URI template: literals cannot hold
// braces, so each expression runs from a "{" to the next "}" and lists its variables separated
// by commas.
func countVars(raw string) int {
	n := 0
	in := false
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '{':
			in = true
			n++
		case '}':
			in = false
		case ',':
			if in {
				n++
			}
		}
	}
	return n
}
