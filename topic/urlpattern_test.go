package topic

import (
	"strings"
	"testing"
)

const testHubURL = "https://hub.example/.well-known/mercure"

func testMatcher(t testing.TB, cacheSize int) *Matcher {
	t.Helper()
	m, err := NewMatcherAt(cacheSize, testHubURL)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestURLPatternExamples runs patterns in the manner of the URL Pattern standard's examples
// (named groups, regexp groups, wildcards, optional and repeated groups, the other components),
// plus the draft's rules: relative patterns and topics resolved against the hub's URL, no
// ignoreCase (only the host is case-insensitive), topics that are no URL matching nothing.
func TestURLPatternExamples(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		nomatch []string
	}{
		{"https://example.com/books/:id",
			[]string{"https://example.com/books/123", "https://EXAMPLE.com/books/123", "https://example.com:443/books/x"},
			[]string{"https://example.com/books", "https://example.com/books/123/reviews", "http://example.com/books/123", "https://example.com/Books/123", "https://example.org/books/123", "https://example.com:8443/books/1"}},
		{"https://example.com/books/:id(\\d+)",
			[]string{"https://example.com/books/42"},
			[]string{"https://example.com/books/abc", "https://example.com/books/4a"}},
		{"https://example.com/blog/:year(\\d+)/:slug",
			[]string{"https://example.com/blog/2024/hello"},
			[]string{"https://example.com/blog/next/hello", "https://example.com/blog/2024"}},
		{"https://example.com/*.png",
			[]string{"https://example.com/a.png", "https://example.com/img/a/b.png"},
			[]string{"https://example.com/a.jpg", "https://example.com/a.PNG"}},
		{"https://example.com/books{/old}?",
			[]string{"https://example.com/books", "https://example.com/books/old"},
			[]string{"https://example.com/books/new", "https://example.com/booksold"}},
		{"https://example.com/books/:id?",
			[]string{"https://example.com/books", "https://example.com/books/1"},
			[]string{"https://example.com/books/1/2", "https://example.com/book"}},
		{"https://example.com/:path+",
			[]string{"https://example.com/a", "https://example.com/a/b/c"},
			[]string{"https://example.com/"}},
		{"https://example.com/:path*", // the "/" belongs to the optional group, and a path is never empty
			[]string{"https://example.com/a", "https://example.com/a/b"},
			[]string{"https://example.com/"}},
		{"http{s}?://example.com/x",
			[]string{"http://example.com/x", "https://example.com/x"},
			[]string{"ftp://example.com/x"}},
		{"https://*.example.com/*",
			[]string{"https://a.example.com/x", "https://a.b.example.com/"},
			[]string{"https://example.com/x", "https://a.example.org/x"}},
		{"https://example.com:8080/*",
			[]string{"https://example.com:8080/a"},
			[]string{"https://example.com/a", "https://example.com:8081/a"}},
		{"https://example.com/search?q=:query",
			[]string{"https://example.com/search?q=books", "https://example.com/search?q=books&x=1"}, // the search has no delimiter
			[]string{"https://example.com/search?x=books", "https://example.com/search"}},
		{"https://example.com/page#:section",
			[]string{"https://example.com/page#top"},
			[]string{"https://example.com/page"}},
		{"https://example.com/caf\u00e9/:id",
			[]string{"https://example.com/caf%C3%A9/1", "https://example.com/caf\u00e9/1"},
			[]string{"https://example.com/cafe/1"}},
		// Relative patterns and topics, against the hub's URL.
		{"/books/:id",
			[]string{"/books/1", "https://hub.example/books/1", "https://HUB.example/books/1"},
			[]string{"https://other.example/books/1", "books/1", "/books"}},
		{"/.well-known/mercure/subscriptions/exact/:topic/:subscriber",
			[]string{"/.well-known/mercure/subscriptions/exact/t/s"},
			[]string{"/.well-known/mercure/subscriptions/urlpattern/t/s"}},
		{"https://example.com/books/:id",
			nil,
			[]string{"http://[::1", "https://exa mple.com/books/1", "https://example.com:99999/books/1"}},
		// A non-special scheme.
		{"urn\\:isbn\\:*", nil, []string{"urn:isbn:1"}},
	}
	m := testMatcher(t, 100)
	uncached := testMatcher(t, 0)
	for _, tc := range tests {
		for _, mm := range []*Matcher{m, uncached} {
			s, err := mm.CompileSpec(Spec{Type: MatchURLPattern, Value: tc.pattern})
			if err != nil {
				t.Fatalf("%q: %v", tc.pattern, err)
			}
			if s.Kind() != KindURLPattern || s.Type() != MatchURLPattern || s.Raw() != tc.pattern {
				t.Fatalf("%q: kind %v type %v raw %q", tc.pattern, s.Kind(), s.Type(), s.Raw())
			}
			for _, topics := range []struct {
				list []string
				want bool
			}{{tc.match, true}, {tc.nomatch, false}} {
				for _, topic := range topics.list {
					for range 2 { // the second may come from the cache
						if got := mm.Match(s, topic); got != topics.want {
							t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, topic, got, topics.want)
						}
					}
					if got := s.Match(topic); got != topics.want {
						t.Errorf("Selector.Match(%q, %q) = %v, want %v", tc.pattern, topic, got, topics.want)
					}
					if got := mm.MatchAny([]*Selector{mm.Compile("nothing"), s}, []string{"other", topic}); got != topics.want {
						t.Errorf("MatchAny(%q, %q) = %v, want %v", tc.pattern, topic, got, topics.want)
					}
					checkPatternKey(t, mm, s, topic)
				}
			}
		}
	}
}

// checkPatternKey checks the index's promise: a topic a pattern matches has a key that starts
// with the pattern's key.
func checkPatternKey(t *testing.T, m *Matcher, s *Selector, topic string) {
	t.Helper()
	if !m.Match(s, topic) {
		return
	}
	k, ok := m.TopicKey(topic)
	if !ok || !strings.HasPrefix(k, s.PatternKey()) || !strings.HasSuffix(k, s.PatternSuffix()) || len(k) < len(s.PatternKey())+len(s.PatternSuffix()) {
		t.Fatalf("%q matches %q, but its key %q (%v) does not start with the pattern's %q and end with %q", s.Raw(), topic, k, ok, s.PatternKey(), s.PatternSuffix())
	}
}

func TestPatternKey(t *testing.T) {
	m := testMatcher(t, 100)
	for pattern, want := range map[string]string{
		"https://example.com/books/:id":     "https://example.com:/books|",
		"https://example.com/books/:id?":    "https://example.com:/books|",
		"https://example.com/books/x*":      "https://example.com:/books/x|",
		"https://example.com/books/x{y}?":   "https://example.com:/books/x|",
		"https://example.com:8080/a/(\\d+)": "https://example.com:8080/a|",
		"https://example.com/a/b":           "https://example.com:/a/b|",
		"https://example.com/a/:id/b.json":  "https://example.com:/a|/b.json",
		"/books/:id":                        "https://hub.example:/books|",
		"https://*.example.com/books":       "|/books",
		"https://*.example.com/books/*.png": "|.png",
		"http{s}?://example.com/books":      "|/books",
		"https://example.com:*/books":       "|/books",
	} {
		s, err := m.CompileSpec(Spec{Type: MatchURLPattern, Value: pattern})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.PatternKey() + "|" + s.PatternSuffix(); got != want {
			t.Errorf("PatternKey|PatternSuffix(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// TestCompileSpec checks the agreed contract of CompileSpec for each matcher type.
func TestCompileSpec(t *testing.T) {
	m := testMatcher(t, 100)
	tests := []struct {
		spec Spec
		kind Kind
		err  string
	}{
		{Spec{MatchTopic, "*"}, KindAny, ""},
		{Spec{MatchTopic, "https://e/{id}"}, KindTemplate, ""},
		{Spec{MatchTopic, "a{"}, KindInvalid, ""},
		{Spec{MatchTopic, "a\x01b"}, KindExact, ""}, // 0.x selectors are checked by their callers
		{Spec{MatchTopic, strings.Repeat("a", 5000)}, KindExact, ""},
		{Spec{MatchExact, "*"}, KindAny, ""},
		{Spec{MatchExact, "https://e/{id}"}, KindExact, ""},
		{Spec{MatchExact, "a"}, KindExact, ""},
		{Spec{MatchExact, ""}, KindExact, ""},
		{Spec{MatchURLPattern, "*"}, KindAny, ""},
		{Spec{MatchURLPattern, "/a/:b"}, KindURLPattern, ""},
		{Spec{MatchURLPattern, "https://e/("}, 0, "invalid URL pattern"},
		{Spec{MatchURLPattern, "https://e/(a(?=b))"}, 0, "invalid URL pattern"}, // lookahead: not RE2
		{Spec{MatchExact, "a\x00"}, 0, "control character U+0000"},
		{Spec{MatchExact, "a\u0085"}, 0, "control character U+0085"},
		{Spec{MatchURLPattern, "/a\x7f"}, 0, "control character U+007F"},
		{Spec{MatchExact, "a\u2066"}, 0, "format character U+2066"},
		{Spec{MatchExact, "a\xffb"}, 0, "not valid UTF-8"},
		{Spec{MatchExact, strings.Repeat("a", MaxSpecLen)}, KindExact, ""},
		{Spec{MatchExact, strings.Repeat("a", MaxSpecLen+1)}, 0, "longer than 4096 bytes"},
		{Spec{MatchType(9), "a"}, 0, "unsupported matcher type MatchType(9)"},
	}
	for _, tc := range tests {
		s, err := m.CompileSpec(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("CompileSpec(%v %.20q) = %v, want error %q", tc.spec.Type, tc.spec.Value, err, tc.err)
			}
			continue
		}
		if err != nil || s.Kind() != tc.kind || s.Spec() != tc.spec {
			t.Errorf("CompileSpec(%v %.20q) = %v %v, want kind %v", tc.spec.Type, tc.spec.Value, s, err, tc.kind)
		}
	}
	// An exact matcher with braces matches its own text only.
	s, _ := m.CompileSpec(Spec{MatchExact, "https://e/{id}"})
	if !m.Match(s, "https://e/{id}") || m.Match(s, "https://e/1") {
		t.Error("exact matcher with braces read as a template")
	}
	// A URL pattern need not match its own text.
	s, _ = m.CompileSpec(Spec{MatchURLPattern, "/a/(\\d+)"})
	if m.Match(s, "/a/(\\d+)") || m.MatchAny([]*Selector{s}, []string{"/a/(\\d+)"}) {
		t.Error("URL pattern matched its own text")
	}
}

func TestNewMatcherAt(t *testing.T) {
	for _, bad := range []string{"", "/.well-known/mercure", "urn:x", "https://"} {
		if _, err := NewMatcherAt(10, bad); err == nil {
			t.Errorf("NewMatcherAt(%q) accepted", bad)
		}
	}
	m := testMatcher(t, 10)
	if m.HubURL() != testHubURL {
		t.Errorf("HubURL() = %q", m.HubURL())
	}
}

// TestReserved checks the draft's reserved-namespace rule ("Publication", "Reserved Hub
// Namespace"): the resolved path, normalised, is the hub's path or under it.
func TestReserved(t *testing.T) {
	m := testMatcher(t, 10)
	for topic, want := range map[string]bool{
		"/.well-known/mercure":                          true,
		"/.well-known/mercure/":                         true,
		"/.well-known/mercure/subscriptions/a/b":        true,
		"https://other.example/.well-known/mercure/x":   true,
		"wss://h/.well-known/mercure":                   true,
		"/.well-known/%6Dercure/x":                      true,
		"/.well-known/%6dercure":                        true,
		"/.WELL-KNOWN/%6Dercure/x":                      false,
		"/a/../.well-known/mercure/x":                   true,
		"/.well-known/mercure/../mercure/x":             true,
		"/.well-known/./mercure":                        true,
		"mercure/x":                                     true, // relative to the hub's own path
		"/.well-known/mercurex":                         false,
		"/.well-known/mercure%2Fx":                      false, // "/" is reserved: not decoded
		"https://h/x?/.well-known/mercure":              false,
		"urn:x:/.well-known/mercure":                    false,
		"http://[bad/.well-known/mercure":               false,
		"books/1":                                       false,
		"https://example.com/books/.well-known/mercure": false,
	} {
		if got := m.Reserved(topic); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestValidateValue(t *testing.T) {
	for v, want := range map[string]string{
		"https://example.com/a b": "",
		"caf\u00e9 \U0001F600":    "",
		"\t":                      "control character U+0009",
		"\u009f":                  "control character U+009F",
		"\u00ad":                  "format character U+00AD",
		"\u200b":                  "format character U+200B",
		"\U000E0001":              "format character U+E0001",
		"\xc3":                    "not valid UTF-8",
	} {
		err := ValidateValue(v)
		if got := ""; err != nil {
			got = err.Error()
			if got != want {
				t.Errorf("ValidateValue(%q) = %q, want %q", v, got, want)
			}
		} else if want != "" {
			t.Errorf("ValidateValue(%q) = nil, want %q", v, want)
		}
	}
}

// TestURLPatternConcurrent resolves and matches topics from several goroutines at once, as
// publishes and the hub's wild loop do; run with -race.
func TestURLPatternConcurrent(t *testing.T) {
	m := testMatcher(t, 0)
	s, err := m.CompileSpec(Spec{Type: MatchURLPattern, Value: "/books/:id"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 50 {
				topic := "/books/" + strings.Repeat("x", 1+g+i%3)
				if !m.Match(s, topic) || m.Reserved(topic) {
					t.Errorf("%q: wrong answer", topic)
				}
				if _, ok := m.TopicKey(topic); !ok {
					t.Errorf("%q: no key", topic)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
