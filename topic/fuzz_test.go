package topic

import (
	"strings"
	"testing"

	"github.com/yosida95/uritemplate/v3"
)

// FuzzCompile checks, for any selector and topic, that compiling and matching never panic, that
// the kind follows from the selector string, that a selector always matches its own string, that
// the cached and uncached paths agree, and that a template matches its own expansions.
func FuzzCompile(f *testing.F) {
	cached := NewMatcher(64) // small, so that the fuzzer also drives evictions
	uncached := NewMatcher(0)
	f.Fuzz(func(t *testing.T, raw, topic string) {
		s := Compile(raw)
		checkKind(t, s)
		if !s.Match(raw) {
			t.Fatalf("%q does not match itself", raw)
		}
		want := s.Match(topic)
		if topic == raw && !want {
			t.Fatalf("%q does not match the equal topic", raw)
		}
		if s.Kind() != KindTemplate && want != (topic == raw || s.Kind() == KindAny) {
			t.Fatalf("%v selector %q: Match(%q) = %v", s.Kind(), raw, topic, want)
		}
		for _, m := range []*Matcher{cached, uncached} {
			ms := m.Compile(raw)
			if ms.Kind() != s.Kind() || ms.Raw() != raw {
				t.Fatalf("Matcher.Compile(%q): kind %v raw %q, Compile: kind %v", raw, ms.Kind(), ms.Raw(), s.Kind())
			}
			for range 2 { // the second call may hit the cache
				if got := m.Match(ms, topic); got != want {
					t.Fatalf("Matcher.Match(%q, %q) = %v, Selector.Match = %v", raw, topic, got, want)
				}
				if got := m.MatchAny([]*Selector{ms}, []string{topic}); got != want {
					t.Fatalf("MatchAny(%q, %q) = %v, Selector.Match = %v", raw, topic, got, want)
				}
			}
		}
		if s.Kind() == KindTemplate {
			checkExpansion(t, raw, s, topic)
			checkShape(t, raw, s, topic)
		}
	})
}

// checkKind checks that s's kind is the one its string calls for.
func checkKind(t *testing.T, s *Selector) {
	t.Helper()
	raw := s.Raw()
	var ok bool
	switch s.Kind() {
	case KindAny:
		ok = raw == "*"
	case KindExact:
		ok = raw != "*" && !strings.Contains(raw, "{")
	case KindTemplate:
		ok = strings.Contains(raw, "{") && len(raw) <= MaxTemplateLen && s.tpl != nil && compileTemplate(raw) != nil
	case KindInvalid:
		ok = strings.Contains(raw, "{") && s.tpl == nil
	}
	if !ok {
		t.Fatalf("Compile(%q).Kind() = %v", raw, s.Kind())
	}
}

// checkExpansion expands the template with every variable set to value and checks that the
// result matches.
func checkExpansion(t *testing.T, raw string, s *Selector, value string) {
	t.Helper()
	tpl, err := uritemplate.New(raw)
	if err != nil {
		t.Fatalf("KindTemplate selector %q does not parse: %v", raw, err)
	}
	vals := uritemplate.Values{}
	for _, name := range tpl.Varnames() {
		vals.Set(name, uritemplate.String(value))
	}
	expanded, err := tpl.Expand(vals)
	if err != nil {
		return
	}
	if !s.Match(expanded) {
		t.Fatalf("%q does not match its expansion %q (value %q)", raw, expanded, value)
	}
}

// checkShape checks what the Matcher relies on to skip regular expressions: that the template's
// shape has the same regular expression as the template itself (so that templates of one shape
// can share it and its results), and that a topic the template matches passes mayMatch.
func checkShape(t *testing.T, raw string, s *Selector, topic string) {
	t.Helper()
	shaped := compileTemplate(s.tpl.shape)
	if shaped == nil {
		t.Fatalf("the shape %q of %q is not a usable template", s.tpl.shape, raw)
	}
	if got, want := shaped.String(), compileTemplate(raw).String(); got != want {
		t.Fatalf("shape %q of %q: regexp %q, the template's is %q", s.tpl.shape, raw, got, want)
	}
	if compileTemplate(raw).MatchString(topic) && !s.tpl.mayMatch(topic) {
		t.Fatalf("%q matches %q but mayMatch says it cannot", raw, topic)
	}
}

// FuzzCompileSpec checks, for any matcher type, value and topic, that compiling and matching
// never panic; that a draft-08 value is refused exactly when ValidateValue refuses it (or, for a
// URL pattern, when it does not parse); that an exact matcher compares bytes; that the cached,
// uncached and MatchAny paths agree; and that a URL pattern matches only topics whose index key
// starts with its own (the hub's index relies on it).
func FuzzCompileSpec(f *testing.F) {
	cached, err := NewMatcherAt(64, "https://hub.example/.well-known/mercure")
	if err != nil {
		f.Fatal(err)
	}
	uncached, err := NewMatcherAt(0, "https://hub.example/.well-known/mercure")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ uint8, value, topic string) {
		spec := Spec{Type: MatchType(typ % 3), Value: value}
		s, err := cached.CompileSpec(spec)
		if spec.Type == MatchTopic {
			if err != nil || s.Kind() != Compile(value).Kind() {
				t.Fatalf("CompileSpec(topic %q) = %v, %v; Compile's kind %v", value, s, err, Compile(value).Kind())
			}
			return
		}
		verr := ValidateValue(value)
		if verr != nil {
			if err == nil {
				t.Fatalf("CompileSpec(%v %q) accepted a value ValidateValue refuses: %v", spec.Type, value, verr)
			}
			return
		}
		if err != nil {
			if spec.Type == MatchExact {
				t.Fatalf("CompileSpec(exact %q): %v", value, err)
			}
			if _, uerr := uncached.CompileSpec(spec); uerr == nil {
				t.Fatalf("CompileSpec(urlpattern %q): cached %v, uncached accepted", value, err)
			}
			return
		}
		if s.Spec() != spec {
			t.Fatalf("Spec() = %v, want %v", s.Spec(), spec)
		}
		want := s.Match(topic)
		if spec.Type == MatchExact && want != (value == "*" || value == topic) {
			t.Fatalf("exact %q Match(%q) = %v", value, topic, want)
		}
		us, err := uncached.CompileSpec(spec)
		if err != nil {
			t.Fatalf("uncached CompileSpec(%v %q): %v", spec.Type, value, err)
		}
		for _, m := range []*Matcher{cached, uncached} {
			for _, sel := range []*Selector{s, us} {
				for range 2 { // the second may hit the cache
					if got := m.Match(sel, topic); got != want {
						t.Fatalf("Matcher.Match(%v %q, %q) = %v, Selector.Match = %v", spec.Type, value, topic, got, want)
					}
					if got := m.MatchAny([]*Selector{sel}, []string{topic}); got != want {
						t.Fatalf("MatchAny(%v %q, %q) = %v, Selector.Match = %v", spec.Type, value, topic, got, want)
					}
				}
			}
		}
		if want && s.Kind() == KindURLPattern {
			k, ok := cached.TopicKey(topic)
			pre, suf := s.PatternKey(), s.PatternSuffix()
			if !ok || !strings.HasPrefix(k, pre) || !strings.HasSuffix(k, suf) || len(k) < len(pre)+len(suf) {
				t.Fatalf("%q matches %q, whose key %q (%v) does not start with the pattern's %q and end with %q", value, topic, k, ok, pre, suf)
			}
		}
	})
}
