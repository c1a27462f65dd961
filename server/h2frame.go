package server

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The frames of HTTP/2 (RFC 9113) that the hub's own HTTP/2 server reads and writes: their
// header, the parts of their payloads, and the settings. Pure functions over byte slices, so
// that the reader can be fuzzed apart from connections.

// Frame types.
const (
	h2Data         = 0x0
	h2Headers      = 0x1
	h2Priority     = 0x2
	h2RSTStream    = 0x3
	h2Settings     = 0x4
	h2PushPromise  = 0x5
	h2Ping         = 0x6
	h2GoAway       = 0x7
	h2WindowUpdate = 0x8
	h2Continuation = 0x9
)

// Frame flags.
const (
	h2FlagEndStream  = 0x1
	h2FlagAck        = 0x1
	h2FlagEndHeaders = 0x4
	h2FlagPadded     = 0x8
	h2FlagPriority   = 0x20
)

// Error codes.
const (
	h2NoError            = 0x0
	h2ProtocolError      = 0x1
	h2InternalError      = 0x2
	h2FlowControlError   = 0x3
	h2StreamClosed       = 0x5
	h2FrameSizeError     = 0x6
	h2RefusedStream      = 0x7
	h2Cancel             = 0x8
	h2CompressionError   = 0x9
	h2EnhanceYourCalm    = 0xb
	h2InadequateSecurity = 0xc
)

// Settings.
const (
	h2SettingHeaderTableSize      = 0x1
	h2SettingEnablePush           = 0x2
	h2SettingMaxConcurrentStreams = 0x3
	h2SettingInitialWindowSize    = 0x4
	h2SettingMaxFrameSize         = 0x5
	h2SettingMaxHeaderListSize    = 0x6
)

// h2Preface is what a client sends first.
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2FrameHeaderLen is the size of a frame's header.
const h2FrameHeaderLen = 9

// h2MaxWindow is the largest flow-control window.
const h2MaxWindow = 1<<31 - 1

// h2FrameHeader is a frame's header.
type h2FrameHeader struct {
	length int
	typ    byte
	flags  byte
	stream uint32
}

// parseFrameHeader reads the header at the start of b, which holds at least 9 bytes.
func parseFrameHeader(b []byte) h2FrameHeader {
	return h2FrameHeader{
		length: int(b[0])<<16 | int(b[1])<<8 | int(b[2]),
		typ:    b[3],
		flags:  b[4],
		stream: binary.BigEndian.Uint32(b[5:9]) & (1<<31 - 1),
	}
}

// appendFrameHeader appends the header of a frame.
func appendFrameHeader(b []byte, length int, typ, flags byte, stream uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), typ, flags,
		byte(stream>>24), byte(stream>>16), byte(stream>>8), byte(stream))
}

// h2Error is a connection error (stream 0) or a stream error, with its code.
type h2Error struct {
	stream uint32 // 0: the connection
	code   uint32
	reason string
}

func (e *h2Error) Error() string {
	if e.stream == 0 {
		return fmt.Sprintf("HTTP/2 connection error %#x: %s", e.code, e.reason)
	}
	return fmt.Sprintf("HTTP/2 stream %d error %#x: %s", e.stream, e.code, e.reason)
}

func connError(code uint32, reason string) *h2Error { return &h2Error{code: code, reason: reason} }

func streamError(id uint32, code uint32, reason string) *h2Error {
	return &h2Error{stream: id, code: code, reason: reason}
}

// unpad returns the payload of a padded frame without its pad length and padding, and the
// priority fields of a HEADERS frame that carries them.
func unpad(h h2FrameHeader, p []byte) ([]byte, error) {
	if h.flags&h2FlagPadded != 0 {
		if len(p) < 1 {
			return nil, connError(h2FrameSizeError, "padded frame without its pad length")
		}
		pad := int(p[0])
		p = p[1:]
		if pad > len(p) {
			return nil, connError(h2ProtocolError, "padding longer than the frame")
		}
		p = p[:len(p)-pad]
	}
	if h.typ == h2Headers && h.flags&h2FlagPriority != 0 {
		if len(p) < 5 {
			return nil, connError(h2FrameSizeError, "HEADERS too short for its priority")
		}
		p = p[5:]
	}
	return p, nil
}

// h2Setting is one setting of a SETTINGS frame.
type h2Setting struct {
	id  uint16
	val uint32
}

// parseSettings reads the settings of a SETTINGS frame's payload, checking their values.
func parseSettings(p []byte, each func(h2Setting) error) error {
	if len(p)%6 != 0 {
		return connError(h2FrameSizeError, "SETTINGS length is not a multiple of 6")
	}
	for ; len(p) > 0; p = p[6:] {
		s := h2Setting{id: binary.BigEndian.Uint16(p), val: binary.BigEndian.Uint32(p[2:])}
		switch s.id {
		case h2SettingEnablePush:
			if s.val > 1 {
				return connError(h2ProtocolError, "ENABLE_PUSH is neither 0 nor 1")
			}
		case h2SettingInitialWindowSize:
			if s.val > h2MaxWindow {
				return connError(h2FlowControlError, "INITIAL_WINDOW_SIZE above 2^31-1")
			}
		case h2SettingMaxFrameSize:
			if s.val < 1<<14 || s.val > 1<<24-1 {
				return connError(h2ProtocolError, "MAX_FRAME_SIZE out of range")
			}
		}
		if err := each(s); err != nil {
			return err
		}
	}
	return nil
}

// appendSettings appends a SETTINGS frame.
func appendSettings(b []byte, settings ...h2Setting) []byte {
	b = appendFrameHeader(b, 6*len(settings), h2Settings, 0, 0)
	for _, s := range settings {
		b = binary.BigEndian.AppendUint16(b, s.id)
		b = binary.BigEndian.AppendUint32(b, s.val)
	}
	return b
}

// appendWindowUpdate appends a WINDOW_UPDATE frame.
func appendWindowUpdate(b []byte, stream uint32, incr uint32) []byte {
	b = appendFrameHeader(b, 4, h2WindowUpdate, 0, stream)
	return binary.BigEndian.AppendUint32(b, incr)
}

// appendRSTStream appends a RST_STREAM frame.
func appendRSTStream(b []byte, stream uint32, code uint32) []byte {
	b = appendFrameHeader(b, 4, h2RSTStream, 0, stream)
	return binary.BigEndian.AppendUint32(b, code)
}

// appendGoAway appends a GOAWAY frame.
func appendGoAway(b []byte, last uint32, code uint32) []byte {
	b = appendFrameHeader(b, 8, h2GoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last)
	return binary.BigEndian.AppendUint32(b, code)
}

// appendHeaderBlock appends a header block as a HEADERS frame and as many CONTINUATION frames
// as frames of maxFrame bytes need.
func appendHeaderBlock(b []byte, stream uint32, block []byte, endStream bool, maxFrame int) []byte {
	typ, flags := byte(h2Headers), byte(0)
	if endStream {
		flags = h2FlagEndStream
	}
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= h2FlagEndHeaders
		}
		b = appendFrameHeader(b, n, typ, f, stream)
		b = append(b, block[:n]...)
		block = block[n:]
		typ, flags = h2Continuation, 0
	}
	return b
}

// errPreface is a connection that did not start with the client preface.
var errPreface = errors.New("the connection does not start with the HTTP/2 client preface")
