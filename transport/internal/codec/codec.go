// Package codec is the binary form of an update in the logs of the cluster transports (redis
// and nats): compact, quick to encode and decode, and versioned so that a newer Herald can
// change it. The bolt transport stores another layout (the ID first, Data length-prefixed)
// and keeps its own codec, so that its files stay readable.
//
// The form, without the Seq (which the server's log position carries):
//
//	version byte, flags byte (bit 0 private, bit 1 system), uvarint-prefixed ID and Type, uvarint Retry,
//	uvarint topic count, each topic uvarint-prefixed, then Data to the end.
package codec

import (
	"encoding/binary"
	"fmt"

	"github.com/heraldhub/herald/transport"
)

// version is the first byte of every encoded update.
const version = 1

// Flags, the second byte.
const (
	flagPrivate = 1 << 0
	flagSystem  = 1 << 1
)

// Encode returns u in its binary form, in a new slice of the right capacity.
func Encode(u *transport.Update) []byte {
	n := 2 + 5*binary.MaxVarintLen64 + len(u.ID) + len(u.Type) + len(u.Data)
	for _, t := range u.Topics {
		n += binary.MaxVarintLen64 + len(t)
	}
	b := make([]byte, 0, n)
	var flags byte
	if u.Private {
		flags |= flagPrivate
	}
	if u.System {
		flags |= flagSystem
	}
	b = append(b, version, flags)
	b = appendString(b, u.ID)
	b = appendString(b, u.Type)
	b = binary.AppendUvarint(b, u.Retry)
	b = binary.AppendUvarint(b, uint64(len(u.Topics)))
	for _, t := range u.Topics {
		b = appendString(b, t)
	}
	return append(b, u.Data...)
}

// EncodeString is Encode for clients that send strings (rueidis).
func EncodeString(u *transport.Update) string {
	return string(Encode(u))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode is the inverse of Encode, with seq as the update's Seq. It reads from a string so
// that the returned update's strings share the reply's memory instead of being copied again.
// Its errors name the update but not the kind of failure: the caller wraps them with its own
// error for corrupt entries.
func Decode(seq uint64, s string) (*transport.Update, error) {
	if len(s) < 2 || s[0] != version {
		return nil, fmt.Errorf("update %d: unknown encoding (written by a newer Herald?)", seq)
	}
	d := decoder{s: s[2:]}
	u := &transport.Update{Seq: seq, Private: s[1]&flagPrivate != 0, System: s[1]&flagSystem != 0}
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
		return nil, fmt.Errorf("update %d: truncated", seq)
	}
	u.Data = d.s
	return u, nil
}

// DecodeID returns the ID of an encoded update without decoding the rest, and false when s
// is not an encoded update.
func DecodeID(s string) (string, bool) {
	if len(s) < 2 || s[0] != version {
		return "", false
	}
	d := decoder{s: s[2:]}
	id := d.str()
	return id, !d.err
}

// decoder reads the fields of an encoded update in order; after the first failure err is
// set and every field reads as zero.
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
