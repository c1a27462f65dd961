package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

var benchEvents = []struct {
	name string
	e    Event
}{
	{"small-json", Event{
		ID:   "urn:uuid:0b5c3e5a-7d6e-4a59-9e0b-2f1f3c6b8a11",
		Data: `{"@id":"https://example.com/books/1","title":"Dune","price":9.99}`,
	}},
	{"multi-line", Event{
		ID:    "urn:uuid:0b5c3e5a-7d6e-4a59-9e0b-2f1f3c6b8a11",
		Type:  "update",
		Retry: 3000,
		Data:  strings.Repeat(`{"line":"some text of a pretty-printed document"}`+"\n", 20),
	}},
}

func BenchmarkAppendEvent(b *testing.B) {
	for _, be := range benchEvents {
		b.Run(be.name, func(b *testing.B) {
			buf := make([]byte, 0, EncodedLen(be.e))
			b.SetBytes(int64(len(AppendEvent(nil, be.e))))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendEvent(buf[:0], be.e)
			}
		})
	}
}

func BenchmarkReader(b *testing.B) {
	for _, be := range benchEvents {
		b.Run(be.name, func(b *testing.B) {
			var stream []byte
			for range 100 {
				stream = AppendEvent(stream, be.e)
			}
			src := bytes.NewReader(stream)
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(stream)
				r := NewReader(src)
				for {
					if _, err := r.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
