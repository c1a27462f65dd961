package sse

import (
	"strconv"
	"strings"
)

// Event is one SSE event to encode.
type Event struct {
	ID    string
	Type  string // the "event" field; empty means the default "message"
	Retry uint64 // milliseconds; zero leaves the field out
	Data  string
}

// AppendEvent appends the wire form of e to buf and returns the extended buffer: "event:",
// "retry:", "id:" and one "data:" line per line of e.Data (CRLF, CR and LF all split lines, as
// the SSE parser does), then a blank line. CR, LF and NUL in ID and Type are removed so that
// input which slipped past validation still cannot forge a field.
func AppendEvent(buf []byte, e Event) []byte {
	if e.Type != "" {
		buf = append(buf, "event: "...)
		buf = appendField(buf, e.Type)
		buf = append(buf, '\n')
	}
	if e.Retry > 0 {
		buf = append(buf, "retry: "...)
		buf = strconv.AppendUint(buf, e.Retry, 10)
		buf = append(buf, '\n')
	}
	buf = append(buf, "id: "...)
	buf = appendField(buf, e.ID)
	buf = append(buf, '\n')
	data := e.Data
	for {
		i := strings.IndexAny(data, "\r\n")
		if i < 0 {
			buf = append(buf, "data: "...)
			buf = append(buf, data...)
			buf = append(buf, '\n')
			break
		}
		buf = append(buf, "data: "...)
		buf = append(buf, data[:i]...)
		buf = append(buf, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(buf, '\n')
}

// EncodedLen returns an upper bound of the length AppendEvent adds, for sizing buffers.
func EncodedLen(e Event) int {
	n := len("event: \nretry: 18446744073709551615\nid: \n\n") + len(e.Type) + len(e.ID)
	lines := 1 + strings.Count(e.Data, "\n") + strings.Count(e.Data, "\r")
	return n + len(e.Data) + lines*len("data: \n")
}

// appendField appends s without CR, LF and NUL.
func appendField(buf []byte, s string) []byte {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return append(buf, s...)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '\r' && c != '\n' && c != 0 {
			buf = append(buf, c)
		}
	}
	return buf
}

// Comment is the frame of an empty comment line: the stream-open marker and the heartbeat.
const Comment = ":\n"
