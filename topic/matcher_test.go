package topic

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

func TestMatcherMatch(t *testing.T) {
	for _, size := range []int{0, 1, 1000} {
		t.Run(fmt.Sprintf("cache %d", size), func(t *testing.T) {
			m := NewMatcher(size)
			// Twice: the first pass fills the caches, the second reads them.
			for pass := range 2 {
				t.Run(fmt.Sprintf("pass %d", pass), func(t *testing.T) {
					checkMatches(t, m.Match, m.Compile)
				})
			}
		})
	}
}

func TestMatcherCompileShares(t *testing.T) {
	m := NewMatcher(100)
	for _, raw := range []string{books, "https://example.com/{"} {
		a, b := m.Compile(raw), m.Compile(raw)
		if a != b {
			t.Errorf("Compile(%q) twice returned different selectors", raw)
		}
	}
	// Without a cache, each call compiles afresh, with the same result.
	m = NewMatcher(0)
	if a, b := m.Compile(books), m.Compile(books); a == b || a.Kind() != b.Kind() || a.Raw() != b.Raw() {
		t.Errorf("uncached Compile: %p %v %q, %p %v %q", a, a.Kind(), a.Raw(), b, b.Kind(), b.Raw())
	}
}

func TestMatcherExactAndAnyBypassCache(t *testing.T) {
	m := NewMatcher(100)
	for _, raw := range []string{"*", "https://example.com/books/1", "https://example.com/{"} {
		s := m.Compile(raw)
		m.Match(s, "https://example.com/books/1")
		m.Match(s, "https://example.com/books/2")
		m.MatchAny([]*Selector{s}, []string{"https://example.com/books/3"})
	}
	if n := m.results.len(); n != 0 {
		t.Errorf("result cache holds %d entries after non-template matches, want 0", n)
	}
	if n := m.selectors.len(); n != 1 {
		t.Errorf("selector cache holds %d entries, want 1 (the invalid template)", n)
	}
	// Selectors too long to be templates are not worth keeping.
	if s := m.Compile(longTemplate); s.Kind() != KindInvalid || !m.Match(s, longTemplate) {
		t.Errorf("long selector: kind %v", s.Kind())
	}
	if n := m.selectors.len(); n != 1 {
		t.Errorf("selector cache holds %d entries after a long selector, want 1", n)
	}
	// A template matched against its own string needs no regexp either.
	s := m.Compile(books)
	m.Match(s, books)
	if n := m.results.len(); n != 0 {
		t.Errorf("result cache holds %d entries after a self match, want 0", n)
	}
	m.Match(s, "https://example.com/books/1")
	if n := m.results.len(); n != 1 {
		t.Errorf("result cache holds %d entries after a template match, want 1", n)
	}
}

func TestMatchAny(t *testing.T) {
	m := NewMatcher(100)
	sels := func(raws ...string) []*Selector {
		s := make([]*Selector, len(raws))
		for i, r := range raws {
			s[i] = m.Compile(r)
		}
		return s
	}
	tests := []struct {
		name   string
		sels   []*Selector
		topics []string
		want   bool
	}{
		{"no selectors", nil, []string{"a"}, false},
		{"no topics", sels("*"), nil, false},
		{"any", sels("x", "*"), []string{"a"}, true},
		{"exact second topic", sels("b"), []string{"a", "b"}, true},
		{"exact second selector", sels("x", "b"), []string{"a", "b"}, true},
		{"template", sels("x", books), []string{"a", "https://example.com/books/7"}, true},
		{"template no match", sels("x", books), []string{"a", "https://example.com/books/7/x"}, false},
		{"invalid template equal", sels("https://example.com/{"), []string{"https://example.com/{"}, true},
		{"invalid template", sels("https://example.com/{"), []string{"https://example.com/"}, false},
		{"nil selectors skipped", []*Selector{nil, Compile("a")}, []string{"a"}, true},
		{"only nil selectors", []*Selector{nil}, []string{"a"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mm := range []*Matcher{m, NewMatcher(0)} {
				if got := mm.MatchAny(tt.sels, tt.topics); got != tt.want {
					t.Errorf("MatchAny = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestCacheBound(t *testing.T) {
	for _, size := range []int{1, 7, 16, 100, 1000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			m := NewMatcher(size)
			s := m.Compile(books)
			for i := range 3 * size {
				sel := m.Compile("https://example.com/" + strconv.Itoa(i) + "/{id}")
				if sel.Kind() != KindTemplate {
					t.Fatalf("selector %d: kind %v", i, sel.Kind())
				}
				topic := "https://example.com/books/" + strconv.Itoa(i)
				if !m.Match(s, topic) {
					t.Fatalf("no match for %q", topic)
				}
				if m.Match(s, topic+"/x") {
					t.Fatalf("match for %q", topic+"/x")
				}
				if n := m.selectors.len(); n > size {
					t.Fatalf("selector cache holds %d entries, bound %d", n, size)
				}
				if n := m.results.len(); n > size {
					t.Fatalf("result cache holds %d entries, bound %d", n, size)
				}
			}
			if m.selectors.len() == 0 || m.results.len() == 0 {
				t.Errorf("caches empty after use: %d selectors, %d results", m.selectors.len(), m.results.len())
			}
			// Entries still cached give the right answers after evictions.
			for i := range 3 * size {
				topic := "https://example.com/books/" + strconv.Itoa(i)
				if !m.Match(s, topic) || m.Match(s, topic+"/x") {
					t.Fatalf("wrong result for %q after evictions", topic)
				}
			}
		})
	}
}

func TestCacheShards(t *testing.T) {
	for _, size := range []int{1, 31, 32, 33, 64, 1 << 20} {
		c := newCache[string, bool](size, nil)
		n := len(c.shards)
		if n&(n-1) != 0 || n > maxShards {
			t.Errorf("size %d: %d shards, want a power of two at most %d", size, n, maxShards)
		}
		if total := n * c.perShard; total > size || c.perShard < 1 {
			t.Errorf("size %d: %d shards of %d entries", size, n, c.perShard)
		}
	}
	if c := newCache[string, bool](0, nil); c != nil {
		t.Error("size 0 gives a cache")
	}
}

// TestMatcherConcurrent shares one small Matcher between goroutines, so that lookups,
// insertions and evictions interleave; run it with -race.
func TestMatcherConcurrent(t *testing.T) {
	m := NewMatcher(64)
	const goroutines = 8
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range 2000 {
				n := (i*7 + g) % 97
				sel := m.Compile("https://example.com/" + strconv.Itoa(n%13) + "/{id}")
				topic := "https://example.com/" + strconv.Itoa(n%11) + "/" + strconv.Itoa(n)
				want := n%13 == n%11
				if got := m.Match(sel, topic); got != want {
					errs <- fmt.Sprintf("Match(%q, %q) = %v, want %v", sel.Raw(), topic, got, want)
					return
				}
				if got := m.MatchAny([]*Selector{sel}, []string{"x", topic}); got != want {
					errs <- fmt.Sprintf("MatchAny(%q, %q) = %v, want %v", sel.Raw(), topic, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
