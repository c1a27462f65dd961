package sse

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzRoundTrip encodes a random event with AppendEvent and parses it back: the Reader must see
// exactly that one event, with line endings in the data normalised to LF and CR, LF and NUL
// removed from the id and type, and the encoding must hold no line but event, retry, id and data
// fields and the final empty line.
func FuzzRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, id, typ, data string, retry uint64) {
		e := Event{ID: id, Type: typ, Data: data, Retry: retry}
		// Between a comment and another event, as on a real stream.
		prefix := []byte(Comment)
		out := AppendEvent(prefix, e)
		if !bytes.HasPrefix(out, []byte(Comment)) {
			t.Fatalf("AppendEvent changed the buffer's prefix: %q", out)
		}
		enc := out[len(Comment):]
		if n := EncodedLen(e); len(enc) > n {
			t.Fatalf("encoding is %d bytes, EncodedLen says at most %d: %q", len(enc), n, enc)
		}
		checkEncoding(t, e, enc)
		next := Event{ID: "next", Data: "x"}
		out = AppendEvent(out, next)

		r := NewReader(bytes.NewReader(out))
		m, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v (stream %q)", err, out)
		}
		want := Message{
			ID:    stripControls(id),
			Type:  stripControls(typ),
			Data:  normaliseEOL(data),
			Retry: retry,
			HasID: true,
		}
		if m != want {
			t.Fatalf("round trip of %+v:\n got %+v\nwant %+v\nstream %q", e, m, want, out)
		}
		m, err = r.Next()
		if want := (Message{ID: "next", Data: "x", HasID: true}); err != nil || m != want {
			t.Fatalf("second event: %+v, %v; want %+v (stream %q)", m, err, want, out)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("after two events: %v, want EOF (stream %q)", err, out)
		}
		if r.Comments() != 1 {
			t.Fatalf("Comments() = %d, want 1", r.Comments())
		}
	})
}

// checkEncoding splits enc into lines as an SSE parser does and checks that they are the fields
// the encoder may write, once each (data once per line of e.Data), then one empty line.
func checkEncoding(t *testing.T, e Event, enc []byte) {
	t.Helper()
	lines := splitLines(string(enc))
	if len(lines) < 2 || lines[len(lines)-1] != "" {
		t.Fatalf("encoding %q does not end with an empty line", enc)
	}
	counts := map[string]int{}
	for _, l := range lines[:len(lines)-1] {
		name, _, ok := strings.Cut(l, ": ")
		switch {
		case !ok:
			t.Fatalf("line %q of %q is not a field", l, enc)
		case name != "event" && name != "retry" && name != "id" && name != "data":
			t.Fatalf("forged field %q in %q", name, enc)
		}
		counts[name]++
	}
	wantData := strings.Count(normaliseEOL(e.Data), "\n") + 1 // every line, the last one even if empty
	if counts["id"] != 1 || counts["event"] > 1 || counts["retry"] > 1 || counts["data"] != wantData {
		t.Fatalf("fields %v in %q, want one id, at most one event and retry, %d data", counts, enc, wantData)
	}
}

// splitLines splits s at every CRLF, CR and LF, the way the SSE parser ends lines. A final
// unterminated line is dropped.
func splitLines(s string) []string {
	var lines []string
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return lines
		}
		lines = append(lines, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
}

func normaliseEOL(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// stripControls removes CR, LF and NUL bytes, leaving every other byte (valid UTF-8 or not) as
// it is.
func stripControls(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			b = append(b, c)
		}
	}
	return string(b)
}

// FuzzReader parses random bytes: it must never panic, must report the same thing however the
// input is split into reads, and what it reports must be well formed.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxLine, maxData = 64, 256 // small, so that the fuzzer reaches the bounds
		want := parseAll(t, bytes.NewReader(in), maxLine, maxData)
		for _, m := range want.msgs {
			if strings.ContainsAny(m.Type, "\r\n") || strings.ContainsAny(m.ID, "\r\n\x00") || strings.Contains(m.Data, "\r") {
				t.Fatalf("malformed message %+v from %q", m, in)
			}
		}
		if len(want.msgs) > bytes.Count(in, []byte("\n"))+bytes.Count(in, []byte("\r")) {
			t.Fatalf("%d messages from %q, more than its line endings", len(want.msgs), in)
		}
		if want.err == nil {
			t.Fatalf("parsing %q ended without an error", in)
		}
		for _, rd := range readers[1:] {
			got := parseAll(t, rd.wrap(bytes.NewReader(in)), maxLine, maxData)
			checkResult(t, got, want)
		}
	})
}
