package sse

import (
	"bytes"
	"errors"
	"io"
	"math"
)

// Default bounds of a Reader, used when its MaxLine or MaxData field is zero.
const (
	DefaultMaxLine = 1 << 20  // 1 MiB
	DefaultMaxData = 16 << 20 // 16 MiB
)

// Errors returned by Reader.Next besides those of the underlying reader.
var (
	// ErrLineTooLong means a line exceeded Reader.MaxLine.
	ErrLineTooLong = errors.New("sse: line too long")
	// ErrDataTooLong means the data of one event exceeded Reader.MaxData.
	ErrDataTooLong = errors.New("sse: event data too long")
)

// maxEmptyReads is how many consecutive reads returning no data and no error are tolerated
// before giving up with io.ErrNoProgress, as bufio does.
const maxEmptyReads = 100

// Message is one event dispatched by a Reader.
type Message struct {
	// ID is the stream's last event ID when the event was dispatched: the value of the latest
	// id field, which carries over to later events that have none, as in the EventSource API.
	ID string
	// Type is the event type (the event field); empty means the default, "message".
	Type string
	// Data is the event's data: the values of its data fields joined with "\n".
	Data string
	// Retry is the reconnection time in milliseconds set by the latest valid retry field received
	// since the previous message, or zero if there was none.
	Retry uint64
	// HasID reports whether an id field was received since the previous message: whether ID was
	// set for this event rather than carried over.
	HasID bool
}

// Reader parses a text/event-stream into Messages, following the WHATWG HTML "event stream
// interpretation" rules: lines end with CRLF, LF or CR; a UTF-8 byte order mark at the very
// start is skipped; lines starting with ":" are comments; an empty line dispatches the pending
// event unless its data is empty. Unlike a browser, it works on bytes: invalid UTF-8 is passed
// through rather than replaced with U+FFFD.
//
// Memory is bounded: the read buffer never grows past MaxLine+1 bytes, and the data of an event
// past MaxData. A Reader is not safe for concurrent use.
type Reader struct {
	// MaxLine is the longest line accepted, in bytes, without its line ending; a longer line
	// makes Next fail with ErrLineTooLong. Zero means DefaultMaxLine. Set it before the first
	// call to Next.
	MaxLine int
	// MaxData is the largest data buffer of one event accepted (the data values plus one byte
	// per data line); more makes Next fail with ErrDataTooLong. Zero means DefaultMaxData.
	MaxData int

	src        io.Reader
	buf        []byte
	r, w       int   // unread bytes are buf[r:w]
	readErr    error // error returned by src, reported once buf is drained
	err        error // sticky error of Next
	bomChecked bool
	skipLF     bool // the previous line ended with CR: a leading LF belongs to it

	// Event being built.
	data     []byte // data buffer: each data value followed by "\n"
	typ      string // event type buffer
	prevTyp  string // latest event type read, reused to spare an allocation
	idBuf    string // last event ID buffer
	hasID    bool
	retry    uint64
	inEvent  bool // a field line was read since the last empty line
	lastID   string
	comments int
}

// NewReader returns a Reader reading the stream from r, with the default bounds.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r}
}

// Comments returns the number of comment lines (heartbeats included) read so far.
func (r *Reader) Comments() int { return r.comments }

// LastEventID returns the stream's last event ID: the id of the latest event dispatched or
// discarded for having no data, which is what a client sends as Last-Event-ID when it
// reconnects.
func (r *Reader) LastEventID() string { return r.lastID }

// Next returns the next event of the stream. Comments are skipped, and so are events without
// data (whose id still updates LastEventID). At the end of the stream it returns io.EOF, or
// io.ErrUnexpectedEOF if the stream stopped inside an event or a line, whose content is then
// discarded as the standard requires. Errors are sticky: once Next has failed, it keeps
// returning the same error.
func (r *Reader) Next() (Message, error) {
	if r.err != nil {
		return Message{}, r.err
	}
	for {
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF && r.inEvent {
				err = io.ErrUnexpectedEOF
			}
			r.err = err
			return Message{}, err
		}
		switch {
		case len(line) == 0:
			if m, ok := r.dispatch(); ok {
				return m, nil
			}
		case line[0] == ':':
			r.comments++
		default:
			if err := r.field(line); err != nil {
				r.err = err
				return Message{}, err
			}
		}
	}
}

// field processes a field line.
func (r *Reader) field(line []byte) error {
	r.inEvent = true
	name, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "event":
		// Streams tend to repeat a few types: reuse the previous string rather than allocate.
		if string(value) != r.prevTyp {
			r.prevTyp = string(value)
		}
		r.typ = r.prevTyp
	case "data":
		maxData := r.MaxData
		if maxData <= 0 {
			maxData = DefaultMaxData
		}
		if len(r.data)+len(value)+1 > maxData {
			return ErrDataTooLong
		}
		r.data = append(r.data, value...)
		r.data = append(r.data, '\n')
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			if string(value) != r.idBuf { // no allocation when the id repeats
				r.idBuf = string(value)
			}
			r.hasID = true
		}
	case "retry":
		if v, ok := parseRetry(value); ok {
			r.retry = v
		}
	}
	return nil
}

// parseRetry parses a retry value: ASCII digits only, at least one. Values too large for a
// uint64 saturate, since they still are valid (if useless) reconnection times.
func parseRetry(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			v = math.MaxUint64
		} else {
			v = v*10 + d
		}
	}
	return v, true
}

// dispatch handles an empty line: it commits the last event ID and returns the pending event,
// unless its data buffer is empty.
func (r *Reader) dispatch() (Message, bool) {
	r.inEvent = false
	r.lastID = r.idBuf
	if len(r.data) == 0 {
		r.typ = ""
		return Message{}, false
	}
	m := Message{
		ID:    r.idBuf,
		Type:  r.typ,
		Data:  string(r.data[:len(r.data)-1]),
		Retry: r.retry,
		HasID: r.hasID,
	}
	r.typ, r.retry, r.hasID = "", 0, false
	if cap(r.data) > 64<<10 {
		r.data = nil // do not pin the memory of one large event
	} else {
		r.data = r.data[:0]
	}
	return m, true
}

// readLine returns the next line without its line ending. The slice is only valid until the
// next call. At the end of the stream it returns io.EOF, or io.ErrUnexpectedEOF if an
// unterminated line is pending.
func (r *Reader) readLine() ([]byte, error) {
	maxLine := r.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	for {
		if !r.bomChecked && !r.checkBOM() {
			if err := r.fill(maxLine); err != nil {
				return nil, err
			}
			continue
		}
		if r.skipLF && r.r < r.w {
			if r.buf[r.r] == '\n' {
				r.r++
			}
			r.skipLF = false
		}
		seg := r.buf[r.r:r.w]
		if i := indexEOL(seg); i >= 0 {
			if i > maxLine {
				return nil, ErrLineTooLong
			}
			r.skipLF = seg[i] == '\r'
			r.r += i + 1
			return seg[:i], nil
		}
		if len(seg) > maxLine {
			return nil, ErrLineTooLong
		}
		if err := r.fill(maxLine); err != nil {
			return nil, err
		}
	}
}

// utf8BOM is the byte order mark that may open a stream.
const utf8BOM = "\xef\xbb\xbf"

// checkBOM skips a byte order mark at the start of the stream. It returns false if more bytes
// are needed to decide.
func (r *Reader) checkBOM() bool {
	seg := r.buf[r.r:r.w]
	if len(seg) < len(utf8BOM) && r.readErr == nil && bytes.HasPrefix([]byte(utf8BOM), seg) {
		return false
	}
	if bytes.HasPrefix(seg, []byte(utf8BOM)) {
		r.r += len(utf8BOM)
	}
	r.bomChecked = true
	return true
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	// Two vectorised searches beat a byte-by-byte scan for either byte; most streams use LF, so
	// CR is only looked for before the first LF.
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		return j
	}
	return i
}

// fill reads more bytes into the buffer, making room for a line of up to maxLine bytes and its line
// ending. It returns the end-of-stream or read error once no unread byte is left to report:
// io.EOF, io.ErrUnexpectedEOF if an unterminated line remains, or the reader's error.
func (r *Reader) fill(maxLine int) error {
	if r.readErr != nil {
		if r.readErr == io.EOF && r.r < r.w {
			return io.ErrUnexpectedEOF
		}
		return r.readErr
	}
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, n
	}
	if r.w == len(r.buf) {
		size := max(2*len(r.buf), 4096)
		size = min(size, maxLine+1) // a line of maxLine bytes plus the CR or LF that ends it
		if size <= r.w {
			// Unreachable: readLine reports a line longer than maxLine before asking for more.
			return ErrLineTooLong
		}
		nb := make([]byte, size)
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.readErr = errors.New("sse: reader returned an invalid count")
			return r.readErr
		}
		r.w += n
		if err != nil {
			r.readErr = err
		}
		if n > 0 || err != nil {
			return nil
		}
	}
	r.readErr = io.ErrNoProgress
	return r.readErr
}
