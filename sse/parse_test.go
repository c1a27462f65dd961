package sse

import (
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readers wraps a stream in readers that deliver it in different chunks, so that every line
// ending, BOM and field may be split between reads.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"one byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data with EOF", iotest.DataErrReader},
}

// parseResult is everything a Reader reports about a stream.
type parseResult struct {
	msgs        []Message
	err         error // the error that ended the stream
	comments    int
	lastEventID string
}

// parseAll reads the whole stream, with the given line bound (0 for the default).
func parseAll(t *testing.T, src io.Reader, maxLine, maxData int) parseResult {
	t.Helper()
	r := NewReader(src)
	r.MaxLine, r.MaxData = maxLine, maxData
	var res parseResult
	for {
		m, err := r.Next()
		if err != nil {
			res.err = err
			break
		}
		res.msgs = append(res.msgs, m)
	}
	if _, err := r.Next(); err != res.err {
		t.Errorf("Next after %v returned %v, want the same error again", res.err, err)
	}
	res.comments, res.lastEventID = r.Comments(), r.LastEventID()
	return res
}

// checkResult compares a parse result with the expected one.
func checkResult(t *testing.T, got, want parseResult) {
	t.Helper()
	if len(got.msgs) != len(want.msgs) {
		t.Errorf("got %d messages, want %d:\n got %+v\nwant %+v", len(got.msgs), len(want.msgs), got.msgs, want.msgs)
	} else {
		for i := range got.msgs {
			if got.msgs[i] != want.msgs[i] {
				t.Errorf("message %d:\n got %+v\nwant %+v", i, got.msgs[i], want.msgs[i])
			}
		}
	}
	if !errors.Is(got.err, want.err) {
		t.Errorf("stream ended with %v, want %v", got.err, want.err)
	}
	if got.comments != want.comments {
		t.Errorf("Comments() = %d, want %d", got.comments, want.comments)
	}
	if got.lastEventID != want.lastEventID {
		t.Errorf("LastEventID() = %q, want %q", got.lastEventID, want.lastEventID)
	}
}

func TestReader(t *testing.T) {
	type M = Message
	tests := []struct {
		name    string
		in      string
		maxLine int
		maxData int
		want    parseResult
	}{
		{name: "empty stream", in: "", want: parseResult{err: io.EOF}},
		{
			name: "multi-line data",
			in:   "data: YHOO\ndata: +2\ndata: 10\n\n",
			want: parseResult{msgs: []M{{Data: "YHOO\n+2\n10"}}, err: io.EOF},
		},
		{
			name: "ids carry over and comments are counted",
			in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
			want: parseResult{
				msgs: []M{
					{Data: "first event", ID: "1", HasID: true},
					{Data: "second event", ID: "", HasID: true},
					{Data: " third event", ID: ""},
				},
				err: io.EOF, comments: 1,
			},
		},
		{
			name: "field without colon and unterminated last event",
			in:   "data\n\ndata\ndata\n\ndata:",
			want: parseResult{msgs: []M{{Data: ""}, {Data: "\n"}}, err: io.ErrUnexpectedEOF},
		},
		{
			name: "one optional space",
			in:   "data:test\n\ndata: test\n\ndata:  two\n\ndata:\tx\n\n",
			want: parseResult{msgs: []M{{Data: "test"}, {Data: "test"}, {Data: " two"}, {Data: "\tx"}}, err: io.EOF},
		},
		{
			name: "colon in value",
			in:   "data: a: b:c\n\n",
			want: parseResult{msgs: []M{{Data: "a: b:c"}}, err: io.EOF},
		},
		{
			name: "CRLF",
			in:   "event: add\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\n",
			want: parseResult{msgs: []M{{Type: "add", ID: "7", HasID: true, Data: "a\nb"}}, err: io.EOF, lastEventID: "7"},
		},
		{
			name: "CR",
			in:   "event: add\rid: 7\rdata: a\rdata: b\r\r",
			want: parseResult{msgs: []M{{Type: "add", ID: "7", HasID: true, Data: "a\nb"}}, err: io.EOF, lastEventID: "7"},
		},
		{
			name: "mixed line endings",
			in:   "data: a\r\ndata: b\rdata: c\ndata: d\n\r\r\n\ndata: e\r\r\n",
			want: parseResult{msgs: []M{{Data: "a\nb\nc\nd"}, {Data: "e"}}, err: io.EOF},
		},
		{
			name: "LF CR is two line endings",
			in:   "data: a\n\r",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.EOF},
		},
		{
			name: "comments",
			in:   ":\n: heartbeat\r\n:data: x\n\ndata: y\n:\n\n:",
			want: parseResult{msgs: []M{{Data: "y"}}, err: io.ErrUnexpectedEOF, comments: 4},
		},
		{
			name: "only comments",
			in:   ":\n:\n",
			want: parseResult{err: io.EOF, comments: 2},
		},
		{
			name: "retry",
			in:   "retry: 1000\ndata: a\n\ndata: b\n\nretry: 5\n\ndata: c\n\n",
			want: parseResult{msgs: []M{{Data: "a", Retry: 1000}, {Data: "b"}, {Data: "c", Retry: 5}}, err: io.EOF},
		},
		{
			name: "invalid retry ignored",
			in:   "retry: 7\nretry: 10a\nretry: -1\nretry:\nretry: 1 \nretry: +1\ndata: a\n\n",
			want: parseResult{msgs: []M{{Data: "a", Retry: 7}}, err: io.EOF},
		},
		{
			name: "huge retry saturates",
			in:   "retry: 18446744073709551615\ndata: a\n\nretry: 99999999999999999999999\ndata: b\n\n",
			want: parseResult{msgs: []M{{Data: "a", Retry: math.MaxUint64}, {Data: "b", Retry: math.MaxUint64}}, err: io.EOF},
		},
		{
			name: "id with NUL ignored",
			in:   "id: 1\ndata: a\n\nid: a\x00b\ndata: x\n\n",
			want: parseResult{msgs: []M{{Data: "a", ID: "1", HasID: true}, {Data: "x", ID: "1"}}, err: io.EOF, lastEventID: "1"},
		},
		{
			name: "id without data updates the last event ID",
			in:   "id: 7\n\n",
			want: parseResult{err: io.EOF, lastEventID: "7"},
		},
		{
			name: "id since the previous message",
			in:   "id: 1\ndata: a\n\nid: 2\n\ndata: b\n\ndata: c\n\n",
			want: parseResult{
				msgs: []M{{Data: "a", ID: "1", HasID: true}, {Data: "b", ID: "2", HasID: true}, {Data: "c", ID: "2"}},
				err:  io.EOF, lastEventID: "2",
			},
		},
		{
			name: "empty id resets",
			in:   "id: 1\ndata: a\n\nid:\ndata: b\n\n",
			want: parseResult{msgs: []M{{Data: "a", ID: "1", HasID: true}, {Data: "b", HasID: true}}, err: io.EOF},
		},
		{
			name: "event type resets and is dropped with an empty event",
			in:   "event: add\ndata: a\n\ndata: b\n\nevent: gone\n\ndata: c\n\n",
			want: parseResult{msgs: []M{{Type: "add", Data: "a"}, {Data: "b"}, {Data: "c"}}, err: io.EOF},
		},
		{
			name: "unknown and miscased fields ignored",
			in:   "foo: bar\nData: x\nEVENT: y\nid : 3\ndata: a\n\n",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.EOF},
		},
		{
			name: "empty data line dispatches an empty message",
			in:   "data:\n\ndata: \n\n",
			want: parseResult{msgs: []M{{Data: ""}, {Data: ""}}, err: io.EOF},
		},
		{
			name: "BOM skipped",
			in:   "\xef\xbb\xbfdata: a\n\n",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.EOF},
		},
		{
			name: "second BOM is part of the field name",
			in:   "\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
			want: parseResult{msgs: []M{{Data: "b"}}, err: io.EOF},
		},
		{
			name: "BOM only at the start",
			in:   "data: a\n\n\xef\xbb\xbfdata: b\n\n",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.EOF},
		},
		{
			name: "BOM then comment",
			in:   "\xef\xbb\xbf:\n",
			want: parseResult{err: io.EOF, comments: 1},
		},
		{
			name: "BOM alone",
			in:   "\xef\xbb\xbf",
			want: parseResult{err: io.EOF},
		},
		{
			name: "truncated BOM is a line",
			in:   "\xef\xbb",
			want: parseResult{err: io.ErrUnexpectedEOF},
		},
		{
			name: "end inside an event",
			in:   "data: a\n\ndata: b\n",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.ErrUnexpectedEOF},
		},
		{
			name: "end after a CR-terminated event",
			in:   "data: a\r\r",
			want: parseResult{msgs: []M{{Data: "a"}}, err: io.EOF},
		},
		{
			name: "binary data passes through",
			in:   "data: \x00\xff\xfe\n\n",
			want: parseResult{msgs: []M{{Data: "\x00\xff\xfe"}}, err: io.EOF},
		},
		{
			name:    "line at the bound",
			in:      "data: 12\r\n\r\n",
			maxLine: 8,
			want:    parseResult{msgs: []M{{Data: "12"}}, err: io.EOF},
		},
		{
			name:    "line over the bound",
			in:      "data: 1\n\ndata: 123\n\n",
			maxLine: 8,
			want:    parseResult{msgs: []M{{Data: "1"}}, err: ErrLineTooLong},
		},
		{
			name:    "unterminated line over the bound",
			in:      "data: 123",
			maxLine: 8,
			want:    parseResult{err: ErrLineTooLong},
		},
		{
			name:    "long comment over the bound",
			in:      ":" + strings.Repeat("x", 100) + "\n",
			maxLine: 64,
			want:    parseResult{err: ErrLineTooLong},
		},
		{
			name:    "data at the bound",
			in:      "data: 12\ndata: 1\n\n",
			maxData: 5,
			want:    parseResult{msgs: []M{{Data: "12\n1"}}, err: io.EOF},
		},
		{
			name:    "data over the bound",
			in:      "data: 12\ndata: 12\n\n",
			maxData: 5,
			want:    parseResult{err: ErrDataTooLong},
		},
		{
			name: "line longer than the initial buffer",
			in:   "data: " + strings.Repeat("x", 10000) + "\n\n",
			want: parseResult{msgs: []M{{Data: strings.Repeat("x", 10000)}}, err: io.EOF},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rd := range readers {
				t.Run(rd.name, func(t *testing.T) {
					got := parseAll(t, rd.wrap(strings.NewReader(tt.in)), tt.maxLine, tt.maxData)
					checkResult(t, got, tt.want)
				})
			}
		})
	}
}

func TestReaderError(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom))
	got := parseAll(t, src, 0, 0)
	checkResult(t, got, parseResult{msgs: []Message{{Data: "a"}}, err: boom})
}

// emptyReader returns no data and no error, forever.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	got := parseAll(t, emptyReader{}, 0, 0)
	checkResult(t, got, parseResult{err: io.ErrNoProgress})
}

// TestReaderDoesNotReadAhead checks that an event is returned as soon as its terminating line
// has arrived, without waiting for more input, whatever the line ending: a live stream may stay
// silent after it.
func TestReaderDoesNotReadAhead(t *testing.T) {
	for _, in := range []string{"data: a\n\n", "data: a\r\r", "data: a\r\n\r\n", "\xef\xbb\xbfdata: a\n\n"} {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(in))
			// Keep the stream open, so that a Reader waiting for more would hang.
		}()
		done := make(chan Message, 1)
		go func() {
			m, err := NewReader(pr).Next()
			if err != nil {
				t.Errorf("%q: %v", in, err)
			}
			done <- m
		}()
		select {
		case m := <-done:
			if m.Data != "a" {
				t.Errorf("%q: data %q, want %q", in, m.Data, "a")
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: Next blocked waiting for input after the event", in)
		}
		pw.Close()
	}
}
