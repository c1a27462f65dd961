package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldhub/herald/transport"
)

// codecVersion is the first byte of every encoded update.
const codecVersion = 1

const flagPrivate = 1 << 0

// encodeUpdate returns u (without its Seq, which the stream entry's ID carries) in a compact
// binary form:
//
//	version byte, flags byte, uvarint-prefixed ID and Type, uvarint Retry,
//	uvarint topic count, each topic uvarint-prefixed, then Data to the end.
func encodeUpdate(u *transport.Update) string {
	n := 2 + 5*binary.MaxVarintLen64 + len(u.ID) + len(u.Type) + len(u.Data)
	for _, t := range u.Topics {
		n += binary.MaxVarintLen64 + len(t)
	}
	var b strings.Builder
	b.Grow(n)
	var flags byte
	if u.Private {
		flags |= flagPrivate
	}
	b.WriteByte(codecVersion)
	b.WriteByte(flags)
	writeString(&b, u.ID)
	writeString(&b, u.Type)
	writeUvarint(&b, u.Retry)
	writeUvarint(&b, uint64(len(u.Topics)))
	for _, t := range u.Topics {
		writeString(&b, t)
	}
	b.WriteString(u.Data)
	return b.String()
}

func writeUvarint(b *strings.Builder, x uint64) {
	var buf [binary.MaxVarintLen64]byte
	b.Write(binary.AppendUvarint(buf[:0], x))
}

func writeString(b *strings.Builder, s string) {
	writeUvarint(b, uint64(len(s)))
	b.WriteString(s)
}

var errCorrupt = errors.New("corrupt stream entry")

// decodeUpdate is the inverse of encodeUpdate. It reads from a string so that the returned
// update's strings share the reply's memory instead of being copied again.
func decodeUpdate(seq uint64, s string) (*transport.Update, error) {
	d := decoder{s: s}
	if len(s) < 2 || s[0] != codecVersion {
		return nil, fmt.Errorf("%w: update %d: unknown encoding (written by a newer Herald?)", errCorrupt, seq)
	}
	u := &transport.Update{Seq: seq, Private: s[1]&flagPrivate != 0}
	d.s = s[2:]
	u.ID = d.str()
	u.Type = d.str()
	u.Retry = d.uvarint()
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.err = true
	}
	if !d.err {
		u.Topics = make([]string, n)
		for i := range u.Topics {
			u.Topics[i] = d.str()
		}
	}
	if d.err {
		return nil, fmt.Errorf("%w: update %d: truncated", errCorrupt, seq)
	}
	u.Data = d.s
	return u, nil
}

type decoder struct {
	s   string
	err bool
}

func (d *decoder) uvarint() uint64 {
	var x uint64
	var shift uint
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.s = d.s[i+1:]
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.err = true
	d.s = ""
	return 0
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err || n > uint64(len(d.s)) {
		d.err = true
		d.s = ""
		return ""
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}
