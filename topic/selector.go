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
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Selector is a compiled topic selector. It is immutable and safe for concurrent use; build it
// with Compile or Matcher.Compile.
type Selector struct {
	raw  string
	kind Kind
	re   *regexp.Regexp // anchored; set only for KindTemplate
}

// Compile compiles raw. It never fails: a selector that is not a valid template becomes
// KindInvalid, which still matches the identical topic.
func Compile(raw string) *Selector {
	s := &Selector{raw: raw}
	switch {
	case raw == "*":
		s.kind = KindAny
	case !strings.Contains(raw, "{"):
		s.kind = KindExact
	default:
		if s.re = compileTemplate(raw); s.re != nil {
			s.kind = KindTemplate
		} else {
			s.kind = KindInvalid
		}
	}
	return s
}

// compileTemplate returns the anchored regular expression matching the expansions of the URI
// template raw, or nil if raw is too long, has too many variables or is not a valid template.
func compileTemplate(raw string) (re *regexp.Regexp) {
	if len(raw) > MaxTemplateLen {
		return nil
	}
	tpl, err := uritemplate.New(raw)
	if err != nil || countVars(raw) > MaxTemplateVars {
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

// Match reports whether the selector matches topic, without any caching. A nil Selector matches
// nothing.
func (s *Selector) Match(topic string) bool {
	if s == nil {
		return false
	}
	if s.kind == KindAny || s.raw == topic {
		return true
	}
	return s.kind == KindTemplate && s.re.MatchString(topic)
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
