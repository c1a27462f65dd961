package topic

import "testing"

func BenchmarkMatch(b *testing.B) {
	const topic = "https://example.com/books/12345"
	b.Run("exact", func(b *testing.B) {
		m := NewMatcher(1024)
		s := m.Compile("https://example.com/books/12346")
		b.ReportAllocs()
		for b.Loop() {
			m.Match(s, topic)
		}
	})
	b.Run("any", func(b *testing.B) {
		m := NewMatcher(1024)
		s := m.Compile("*")
		b.ReportAllocs()
		for b.Loop() {
			m.Match(s, topic)
		}
	})
	b.Run("template-uncached", func(b *testing.B) {
		m := NewMatcher(0)
		s := m.Compile(books)
		b.ReportAllocs()
		for b.Loop() {
			if !m.Match(s, topic) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("template-cached", func(b *testing.B) {
		m := NewMatcher(1024)
		s := m.Compile(books)
		b.ReportAllocs()
		for b.Loop() {
			if !m.Match(s, topic) {
				b.Fatal("no match")
			}
		}
	})
	b.Run("template-cached-parallel", func(b *testing.B) {
		m := NewMatcher(1024)
		s := m.Compile(books)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !m.Match(s, topic) {
					b.Fatal("no match")
				}
			}
		})
	})
}

func BenchmarkCompile(b *testing.B) {
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Compile(books)
		}
	})
	b.Run("cached", func(b *testing.B) {
		m := NewMatcher(1024)
		b.ReportAllocs()
		for b.Loop() {
			m.Compile(books)
		}
	})
}
