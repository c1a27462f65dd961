package hub

import (
	"context"
	"strconv"
	"testing"

	"github.com/heraldhub/herald/topic"
)

// TestWildURLPatterns checks that the wild loop delivers to URL pattern subscribers what a check
// of every matcher against every topic would, for patterns filed at many key lengths and in the
// catch-all bucket, each update once, and that the index forgets the patterns with their
// subscribers.
func TestWildURLPatterns(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	m := h.Matcher()
	patterns := []string{
		"https://example.com/books/:id",
		"https://example.com/books/:id?",
		"https://example.com/books/:id/chapters/:ch(\\d+)",
		"https://example.com/*",
		"https://*.example.com/*",
		"http{s}?://example.com/books/*",
		"/books/:id",
		"/:a",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index/:x",
		"urn\\:isbn\\:*",
		"https://example.com:8080/books/:id",
	}
	topics := []string{
		"https://example.com/books/1", "https://example.com/books", "https://example.com/books/1/chapters/2",
		"https://example.com/books/1/chapters/x", "http://example.com/books/1", "https://a.example.com/x",
		"/books/1", "/x", "books/1", "urn:isbn:1", "http://[bad", "https://example.com:8080/books/2",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index/1",
		"https://example.com/very/long/prefix/beyond/sixty/four/bytes/for/the/index",
	}
	subs := make([]*Subscriber, len(patterns))
	for i, p := range patterns {
		// Each with an exact matcher too, which shares a topic with the pattern, so that
		// deduplication is exercised.
		s, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(t, m,
			topic.Spec{Type: topic.MatchURLPattern, Value: p},
			topic.Spec{Type: topic.MatchExact, Value: "https://example.com/books/1"})})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	for i, tp := range topics {
		publish(t, h, strconv.Itoa(i), false, tp)
	}
	publish(t, h, "all", false, topics...)
	for i, p := range patterns {
		sel, err := m.CompileSpec(topic.Spec{Type: topic.MatchURLPattern, Value: p})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		any := false
		for j, tp := range topics {
			if m.Match(sel, tp) || tp == "https://example.com/books/1" {
				want = append(want, strconv.Itoa(j))
				any = true
			}
		}
		if any {
			want = append(want, "all")
		}
		got := collect(t, subs[i], len(want))
		equal(t, got, want...)
	}
	for _, s := range subs {
		h.Unsubscribe(s)
	}
	h.wmu.RLock()
	defer h.wmu.RUnlock()
	if w := &h.wild; w.count != 0 || len(w.pats.entries) != 0 || len(w.pats.buckets) != 0 || len(w.pats.pairs) != 0 || len(w.exact) != 0 {
		t.Fatalf("index not empty: %d subscribers, %d patterns, %d buckets", w.count, len(w.pats.entries), len(w.pats.buckets))
	}
}

// TestPatternAndTemplateOfOneText checks that a URI template and a URL pattern with the same
// text are two selectors in the index, and an exact matcher with that text a third.
func TestPatternAndTemplateOfOneText(t *testing.T) {
	h, _ := newHub(t, Config{}, true)
	m := h.Matcher()
	const text = "https://example.com/{id}"
	tpl, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(t, m, topic.Spec{Type: topic.MatchTopic, Value: text})})
	if err != nil {
		t.Fatal(err)
	}
	pat, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(t, m, topic.Spec{Type: topic.MatchURLPattern, Value: text}, topic.Spec{Type: topic.MatchExact, Value: "z"})})
	if err != nil {
		t.Fatal(err)
	}
	exact, err := h.Subscribe(context.Background(), SubscribeOptions{Selectors: specSels(t, m, topic.Spec{Type: topic.MatchExact, Value: text}, topic.Spec{Type: topic.MatchURLPattern, Value: "*"})})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, h, "1", false, "https://example.com/1")
	publish(t, h, "2", false, "https://example.com/{id}")
	publish(t, h, "3", false, "z")
	publish(t, h, "4", false, "https://example.com/id")
	equal(t, collect(t, tpl, 3), "1", "2", "4")
	equal(t, collect(t, pat, 2), "3", "4") // the pattern's "{id}" is a group of the literal "id"
	equal(t, collect(t, exact, 4), "1", "2", "3", "4")
}
