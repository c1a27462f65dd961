package topic

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

const books = "https://example.com/books/{id}"

// matchCase is one selector and the topics it must and must not match; the matcher tests run
// the same table.
type matchCase struct {
	name     string
	selector string
	kind     Kind
	match    []string
	noMatch  []string
}

// longTemplate is just over MaxTemplateLen, so it is not compiled as a template.
var longTemplate = "https://example.com/" + strings.Repeat("x", MaxTemplateLen) + "/{id}"

// varsTemplate returns a template with n variables.
func varsTemplate(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "v"
	}
	return "https://example.com/{" + strings.Join(names, ",") + "}"
}

var matchCases = []matchCase{
	{
		name:     "exact",
		selector: "https://example.com/books/1",
		kind:     KindExact,
		match:    []string{"https://example.com/books/1"},
		noMatch: []string{
			"https://example.com/books/2", "https://example.com/books/1/", "https://example.com/books/",
			"HTTPS://example.com/books/1", "", "*",
		},
	},
	{
		name:     "exact empty",
		selector: "",
		kind:     KindExact,
		match:    []string{""},
		noMatch:  []string{" ", "a"},
	},
	{
		name:     "exact with regexp metacharacters",
		selector: "https://example.com/a.*",
		kind:     KindExact,
		match:    []string{"https://example.com/a.*"},
		noMatch:  []string{"https://example.com/abc", "https://example.com/a."},
	},
	{
		name:     "exact with closing brace only",
		selector: "https://example.com/}",
		kind:     KindExact,
		match:    []string{"https://example.com/}"},
		noMatch:  []string{"https://example.com/"},
	},
	{
		name:     "any",
		selector: "*",
		kind:     KindAny,
		match:    []string{"", "*", "https://example.com/books/1", "\x00\xff", "{id}"},
	},
	{
		name:     "star is not a wildcard inside a selector",
		selector: "https://example.com/*",
		kind:     KindExact,
		match:    []string{"https://example.com/*"},
		noMatch:  []string{"https://example.com/books"},
	},
	{
		name:     "simple expression",
		selector: books,
		kind:     KindTemplate,
		match: []string{
			"https://example.com/books/1",
			"https://example.com/books/",             // empty expansion
			"https://example.com/books/a-b.c_d~e",    // every unreserved punctuation
			"https://example.com/books/1,2,3",        // list expansion
			"https://example.com/books/%20%2F%c3%A9", // percent escapes, either case
			books,                                    // the selector itself
		},
		noMatch: []string{
			"https://example.com/books/1/x", // "/" is reserved
			"https://example.com/books",
			"https://example.com/books/a b",
			"https://example.com/books/%2",    // truncated escape
			"https://example.com/books/%zz",   // not hex
			"https://example.com/books/é",     // raw non-ASCII is not an expansion
			"https://example.com/books/1\n",   // anchored at the end of text, not of line
			"xhttps://example.com/books/1",    // anchored at the start
			"https://example.com/books/1?x",   // "?" is reserved
			"https://example.com/books/1#x",   // "#" is reserved
			"https://example.com/books/1=2",   // "=" is reserved
			"https://example.org/books/1",     // literal part differs
			"https://exampleXcom/books/1",     // "." in the literal is literal
			"https://example.com/books/{id}x", // literal braces are not expansions
		},
	},
	{
		name:     "reserved expansion",
		selector: "https://example.com/{+path}",
		kind:     KindTemplate,
		match: []string{
			"https://example.com/a/b/c",
			"https://example.com/",
			"https://example.com/a?b=c&d=e#f",
			"https://example.com/a%20b",
			"https://example.com/!$&'()*+,;=:@[]",
		},
		noMatch: []string{
			"https://example.com/a b",
			"https://example.com/a\"b",
			"https://example.com/a<b>",
			"https://example.com/a%g0",
			"http://example.com/a",
		},
	},
	{
		name:     "path segments with explode",
		selector: "https://example.com{/path*}",
		kind:     KindTemplate,
		match:    []string{"https://example.com/a/b/c", "https://example.com", "https://example.com/a"},
		noMatch:  []string{"https://example.com/a?b"},
	},
	{
		name:     "query",
		selector: "https://example.com/books{?page,limit}",
		kind:     KindTemplate,
		match: []string{
			"https://example.com/books",
			"https://example.com/books?page=2",
			"https://example.com/books?page=2&limit=10",
		},
		noMatch: []string{
			"https://example.com/books?page=2&limit=10&x=1", // two variables at most
			"https://example.com/books/1",
		},
	},
	{
		name:     "several expressions",
		selector: "https://example.com/users/{user}/books/{id}",
		kind:     KindTemplate,
		match:    []string{"https://example.com/users/ann/books/1", "https://example.com/users//books/"},
		noMatch:  []string{"https://example.com/users/ann/books", "https://example.com/users/a/b/books/1"},
	},
	{
		name:     "regexp metacharacters in the literal are literal",
		selector: "https://example.com/(a)+[b]$/{id}",
		kind:     KindTemplate,
		match:    []string{"https://example.com/(a)+[b]$/1"},
		noMatch:  []string{"https://example.com/aa[b]$/1", "https://example.com/(a)+b/1", "https://example.com/a/1"},
	},
	{
		name:     "topic with regexp metacharacters",
		selector: books,
		kind:     KindTemplate,
		noMatch:  []string{"https://example.com/books/.*", "https://example.com/books/(1|2)", "https://example.com/books/^$"},
	},
	{
		name:     "invalid template: unclosed",
		selector: "https://example.com/{",
		kind:     KindInvalid,
		match:    []string{"https://example.com/{"},
		noMatch:  []string{"https://example.com/", "https://example.com/1", "https://example.com/{}"},
	},
	{
		name:     "invalid template: unclosed variable",
		selector: "https://example.com/books/{id",
		kind:     KindInvalid,
		match:    []string{"https://example.com/books/{id"},
		noMatch:  []string{"https://example.com/books/1", "https://example.com/books/"},
	},
	{
		name:     "invalid template: bad variable name",
		selector: "https://example.com/{a|b}",
		kind:     KindInvalid,
		match:    []string{"https://example.com/{a|b}"},
		noMatch:  []string{"https://example.com/a"},
	},
	{
		name:     "invalid template: empty expression",
		selector: "{}",
		kind:     KindInvalid,
		match:    []string{"{}"},
		noMatch:  []string{""},
	},
	{
		name:     "too long to be a template",
		selector: longTemplate,
		kind:     KindInvalid,
		match:    []string{longTemplate},
		noMatch:  []string{strings.Replace(longTemplate, "{id}", "1", 1)},
	},
	{
		name:     "as many variables as allowed",
		selector: varsTemplate(MaxTemplateVars),
		kind:     KindTemplate,
		match:    []string{"https://example.com/a,b,c"},
	},
	{
		name:     "too many variables",
		selector: varsTemplate(MaxTemplateVars + 1),
		kind:     KindInvalid,
		noMatch:  []string{"https://example.com/a,b,c"},
	},
}

// checkMatches runs every case of matchCases through match.
func checkMatches(t *testing.T, match func(sel *Selector, topic string) bool, compile func(string) *Selector) {
	t.Helper()
	for _, c := range matchCases {
		t.Run(c.name, func(t *testing.T) {
			s := compile(c.selector)
			if s.Raw() != c.selector {
				t.Fatalf("Raw() = %q, want %q", s.Raw(), c.selector)
			}
			if s.Kind() != c.kind {
				t.Fatalf("Kind() = %v, want %v", s.Kind(), c.kind)
			}
			if !match(s, c.selector) {
				t.Errorf("selector does not match itself")
			}
			for _, topic := range c.match {
				if !match(s, topic) {
					t.Errorf("%q does not match %q, want a match", c.selector, topic)
				}
			}
			for _, topic := range c.noMatch {
				if match(s, topic) {
					t.Errorf("%q matches %q, want no match", c.selector, topic)
				}
			}
		})
	}
}

func TestSelectorMatch(t *testing.T) {
	checkMatches(t, (*Selector).Match, Compile)
}

func TestNilSelector(t *testing.T) {
	var s *Selector
	if s.Match("") || s.Match("*") {
		t.Error("nil selector matches")
	}
	if NewMatcher(10).Match(nil, "x") {
		t.Error("Matcher.Match(nil) matches")
	}
}

func TestTemplateRegexpAnchored(t *testing.T) {
	for _, c := range matchCases {
		s := Compile(c.selector)
		if s.Kind() != KindTemplate {
			if s.tpl != nil {
				t.Errorf("%q: kind %v has a template", c.selector, s.Kind())
			}
			continue
		}
		if re := compileTemplate(c.selector).String(); !strings.HasPrefix(re, "^") || !strings.HasSuffix(re, "$") {
			t.Errorf("%q: regexp %q is not anchored", c.selector, re)
		}
	}
}

func TestTemplateParts(t *testing.T) {
	for _, c := range []struct {
		raw, shape, prefix, suffix string
		middle                     []string
	}{
		{books, "https://example.com/books/{v}", "https://example.com/books/", "", nil},
		{"{id}", "{v}", "", "", nil},
		{"/a/{b}/c{?d,e*}#x", "/a/{v}/c{?v,v*}#x", "/a/", "#x", []string{"/c"}},
		{"{+path:3}x{#f}y{.a}{/b*}{;c}{&d}", "{+v}x{#v}y{.v}{/v*}{;v}{&v}", "", "", []string{"x", "y"}},
		{"https://example.com/{a}/{b}/{c}.json", "https://example.com/{v}/{v}/{v}.json", "https://example.com/", ".json", []string{"/", "/"}},
	} {
		s := Compile(c.raw)
		if s.Kind() != KindTemplate {
			t.Fatalf("%q: kind %v", c.raw, s.Kind())
		}
		tp := s.tpl
		if tp.shape != c.shape || tp.prefix != c.prefix || tp.suffix != c.suffix || strings.Join(tp.middle, "|") != strings.Join(c.middle, "|") {
			t.Errorf("%q: shape %q prefix %q suffix %q middle %q; want %q %q %q %q", c.raw, tp.shape, tp.prefix, tp.suffix, tp.middle, c.shape, c.prefix, c.suffix, c.middle)
		}
		if s.Prefix() != c.prefix || s.Suffix() != c.suffix {
			t.Errorf("%q: Prefix() = %q, Suffix() = %q", c.raw, s.Prefix(), s.Suffix())
		}
	}
	for _, raw := range []string{"https://example.com/x", "*", "https://example.com/{"} {
		if s := Compile(raw); s.Prefix() != "" || s.Suffix() != "" {
			t.Errorf("%v selector %q has a prefix or a suffix", s.Kind(), raw)
		}
	}
}

func TestMayMatch(t *testing.T) {
	tp := Compile("https://example.com/{a}/{b}/{c}.json").tpl
	for topic, want := range map[string]bool{
		"https://example.com/1/2/3.json":     true,
		"https://example.com///.json":        true,
		"https://example.com/1/2.json":       false, // one "/" short
		"https://example.com/1/2/3.xml":      false,
		"http://example.com/1/2/3.json":      false,
		"https://example.com/.json":          false, // prefix and suffix may not overlap... nor the runs
		"https://example.com/a/b/c/d/e.json": true,  // the regexp decides the rest
	} {
		if got := tp.mayMatch(topic); got != want {
			t.Errorf("mayMatch(%q) = %v, want %v", topic, got, want)
		}
	}
}

// TestTemplateMemory bounds what a distinct template selector keeps: at most 1 KiB, its string
// included, while the Matcher's caches are bounded on their own.
func TestTemplateMemory(t *testing.T) {
	const n = 20000
	keep := make([]*Selector, n)
	before := heapInUse()
	for i := range keep {
		keep[i] = Compile("https://example.com/s" + strconv.Itoa(i) + "/books/{id}/chapters/{chapter}{?page}")
	}
	per := (heapInUse() - before) / n
	runtime.KeepAlive(keep)
	t.Logf("%d bytes per template", per)
	if per > 1024 {
		t.Errorf("a template selector keeps %d bytes, want at most 1024", per)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		KindExact: "exact", KindAny: "any", KindTemplate: "template", KindInvalid: "invalid", 9: "Kind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}

func TestCountVars(t *testing.T) {
	for raw, want := range map[string]int{
		"https://example.com/":           0,
		books:                            1,
		"{a,b}{c}":                       3,
		"https://example.com/,{a},{b,c}": 3,
		"{?a*,b:3}":                      2,
	} {
		if got := countVars(raw); got != want {
			t.Errorf("countVars(%q) = %d, want %d", raw, got, want)
		}
	}
}
