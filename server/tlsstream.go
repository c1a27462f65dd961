package server

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// A hijacked stream over TLS would keep its *tls.Conn for its whole life: the record buffers
// the handshake grew, both directions' ciphers and the handshake's leftovers, about 7 KiB of
// heap per connection, and a blocking net.Conn the pool writes through. Yet once the response
// head is out, a TLS 1.3 stream only ever encrypts outgoing records. So it sheds the tls.Conn:
//
//   - Server.TLSConfig gives each connection of the hub's listener its own KeyLogWriter, a
//     tlsTap, which keeps the application traffic secrets (SERVER_TRAFFIC_SECRET_0, and
//     CLIENT_TRAFFIC_SECRET_0 with every byte read during the handshake for an HTTP/2
//     connection, whose reading the hub's own HTTP/2 server takes over too: h2.go; TLS 1.3
//     only) and nothing else;
//   - the tap also sees every byte the tls.Conn writes to the socket: it counts the records
//     of type application_data, and keeps a copy of the last one written once armed;
//   - after the response head has been written through the tls.Conn, writeHead derives the
//     record key and IV from the secret (HKDF-Expand-Label), finds the sequence number of
//     that last record by opening it at each candidate number (the AEAD's tag authenticates
//     the key and the number together, so a match cannot be a coincidence), and from then on
//     the stream writes records itself (recordSealer) to the plain socket, which becomes a raw
//     stream like any plain HTTP/1.1 one;
//   - the tls.Conn is dropped without being closed, and the trackedConn under it refuses
//     its writes from then on (the stream writes to the socket beneath), so it can never
//     write again, even if closed: exactly one writer ever uses a (key, sequence number)
//     pair. Reading is not possible without the
//     client's key, and nothing is expected from a client on an SSE stream, so anything it
//     sends (an alert, a KeyUpdate, data) ends the stream (the watcher reports the socket
//     readable), and it reconnects. A clean end sends close_notify.
//
// Connections that negotiated TLS 1.2, or where any step fails, keep their tls.Conn.

// maxTLSRecords ends a stream whose key has sealed this many records: well under the limits
// of AES-GCM's and ChaCha20-Poly1305's use of one key. The client reconnects with a new one.
const maxTLSRecords = 1 << 24

// maxTappedRecord is the largest record the tap copies: the response head fits.
const maxTappedRecord = 4 << 10

// TLS record content types.
const (
	recordAlert           = 21
	recordApplicationData = 23
)

// errTLSRecordLimit ends a stream whose key has sealed maxTLSRecords records.
var errTLSRecordLimit = errors.New("the TLS key of the stream reached its record limit")

// TLSConfig returns the configuration the hub's HTTPS listener (one made by Listener) should
// serve with: base, with the HTTP/2 and HTTP/1.1 protocols when it names none, and a
// GetConfigForClient that lets TLS 1.3 streams and HTTP/2 connections shed their tls.Conn
// once set up (see above, and EnableHTTP2):
// it gives each connection a copy of the returned configuration with its own KeyLogWriter.
// base's own GetConfigForClient, if any, still decides each connection's configuration; a
// connection whose configuration has a KeyLogWriter keeps it, and its tls.Conn.
// Without hijacking, base is returned. base must hold the certificates (Certificates or
// GetCertificate) and the protocols to offer: serve with http.Server.ServeTLS(l, "", ""), since
// the files ServeTLS would load go into net/http's own copy, not into the copies made here.
func (s *Server) TLSConfig(base *tls.Config) *tls.Config {
	if base == nil || s.cfg.DisableHijack {
		return base
	}
	out := base.Clone()
	if len(out.NextProtos) == 0 {
		out.NextProtos = []string{"h2", "http/1.1"}
	}
	prev := base.GetConfigForClient
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		var cfg *tls.Config
		if prev != nil {
			c, err := prev(hello)
			if err != nil {
				return nil, err
			}
			cfg = c
		}
		keyLog := out.KeyLogWriter // a configured key log stays, and the connection is not tapped
		if cfg != nil {
			keyLog = cfg.KeyLogWriter
		}
		tc, ok := hello.Conn.(*trackedConn)
		if !ok || !offersTLS13(hello.SupportedVersions) || keyLog != nil {
			return cfg, nil
		}
		if cfg == nil {
			cfg = out.Clone() // as net/http left it (its protocols added)
			cfg.GetConfigForClient = nil
		} else {
			cfg = cfg.Clone()
		}
		tap := &tlsTap{tee: true}
		tc.tap = tap
		cfg.KeyLogWriter = tap
		// An HTTP/2 connection is taken over by the hub's own HTTP/2 server, which reads
		// what the client sends itself (h2.go): the tap keeps the bytes read from the socket
		// until then. An HTTP/1.1 one is read by net/http through the tls.Conn.
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != "h2" {
				tap.stopTee()
			}
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		return cfg, nil
	}
	return out
}

func offersTLS13(versions []uint16) bool {
	for _, v := range versions {
		if v == tls.VersionTLS13 {
			return true
		}
	}
	return false
}

// tlsTap watches one TLS connection being set up: the key log of its handshake and the
// records written to its socket.
type tlsTap struct {
	mu     sync.Mutex
	secret []byte // SERVER_TRAFFIC_SECRET_0; nil until the handshake derived it
	client []byte // CLIENT_TRAFFIC_SECRET_0, likewise

	// The bytes read from the socket, while tee is set (see received).
	tee bool
	in  []byte

	// Record parsing of the written bytes, across writes.
	hdr     [5]byte
	hdrN    int    // bytes of hdr read
	left    int    // bytes of the current record's body still to come
	records int    // application_data records seen (encrypted under either key)
	armed   bool   // copy the application_data records from now on
	last    []byte // the last complete application_data record written while armed
	cur     []byte // the record being copied
	tooBig  bool   // the current record is larger than maxTappedRecord
	invalid bool   // the written bytes are not TLS records: never shed
}

// The key log labels of the first application traffic secrets.
const (
	serverTrafficLabel = "SERVER_TRAFFIC_SECRET_0 "
	clientTrafficLabel = "CLIENT_TRAFFIC_SECRET_0 "
)

// maxTee bounds the bytes a tap keeps of what it reads: a handshake and the client's first
// requests fit. A connection that sent more before the takeover keeps its tls.Conn.
const maxTee = 64 << 10

// Write is the connection's KeyLogWriter: it keeps both application traffic secrets and
// discards every other line. crypto/tls writes one line per call.
func (t *tlsTap) Write(line []byte) (int, error) {
	client := false
	rest, ok := bytes.CutPrefix(line, []byte(serverTrafficLabel))
	if !ok {
		if rest, ok = bytes.CutPrefix(line, []byte(clientTrafficLabel)); !ok {
			return len(line), nil
		}
		client = true
	}
	_, hexSecret, ok := bytes.Cut(bytes.TrimSpace(rest), []byte(" ")) // client random, secret
	secret := make([]byte, hex.DecodedLen(len(hexSecret)))
	if _, err := hex.Decode(secret, hexSecret); !ok || err != nil {
		return len(line), nil // not what crypto/tls writes: never shed
	}
	t.mu.Lock()
	if client {
		t.client = secret
	} else {
		t.secret = secret
	}
	t.mu.Unlock()
	return len(line), nil
}

// received keeps b, bytes read from the socket, while the tap tees them.
func (t *tlsTap) received(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.tee {
		return
	}
	if len(t.in)+len(b) > maxTee {
		t.tee, t.in = false, nil
		t.client = nil // the reading side cannot be taken over
		return
	}
	t.in = append(t.in, b...)
}

// stopTee forgets what was read and reads on without keeping it.
func (t *tlsTap) stopTee() {
	t.mu.Lock()
	t.tee, t.in, t.client = false, nil, nil
	t.mu.Unlock()
}

// sent parses b, bytes written to the socket, as TLS records.
func (t *tlsTap) sent(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(b) > 0 && !t.invalid {
		if t.left == 0 {
			n := copy(t.hdr[t.hdrN:], b)
			t.hdrN += n
			b = b[n:]
			if t.hdrN < len(t.hdr) {
				return
			}
			t.hdrN = 0
			t.left = int(binary.BigEndian.Uint16(t.hdr[3:]))
			if t.left == 0 || t.left > 1<<14+256 || t.hdr[1] != 3 {
				t.invalid = true
				return
			}
			t.cur, t.tooBig = t.cur[:0], false
			if t.hdr[0] == recordApplicationData {
				t.records++
				if t.armed && t.left+len(t.hdr) <= maxTappedRecord {
					t.cur = append(t.cur, t.hdr[:]...)
				} else {
					t.tooBig = true
				}
			}
			continue
		}
		n := min(t.left, len(b))
		if t.hdr[0] == recordApplicationData && !t.tooBig && t.armed {
			t.cur = append(t.cur, b[:n]...)
		}
		t.left -= n
		b = b[n:]
		if t.left == 0 && t.hdr[0] == recordApplicationData {
			if t.tooBig {
				t.last = t.last[:0]
			} else {
				t.last, t.cur = t.cur, t.last
			}
		}
	}
}

// arm starts copying the records written.
func (t *tlsTap) arm() {
	t.mu.Lock()
	t.armed = true
	t.mu.Unlock()
}

// sealer returns the record writer that continues where the tls.Conn stopped: the key of
// secret under suite, and the sequence number after the last record written, verified.
func (t *tlsTap) sealer(suite uint16) (*recordSealer, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.secret == nil || t.invalid || t.left != 0 || t.hdrN != 0 || len(t.last) == 0 {
		return nil, errors.New("no traffic secret or no complete record to continue from")
	}
	rs, err := newRecordSealer(suite, t.secret)
	if err != nil {
		return nil, err
	}
	// The last record was sealed under this key at a number below records; the handshake's
	// records under its own key come first, so search from the newest.
	hdr, body := t.last[:5], t.last[5:]
	var scratch [maxTappedRecord]byte
	for seq := t.records - 1; seq >= 0; seq-- {
		plain, err := rs.aead.Open(scratch[:0], rs.nonce(uint64(seq)), body, hdr)
		if err != nil {
			continue
		}
		// The inner content type is the last non-zero byte.
		plain = bytes.TrimRight(plain, "\x00")
		if len(plain) == 0 || plain[len(plain)-1] != recordApplicationData {
			return nil, errors.New("the last record written is not application data")
		}
		rs.seq = uint64(seq) + 1
		return rs, nil
	}
	return nil, errors.New("the last record written does not open under the traffic secret")
}

// recordSealer writes TLS 1.3 records under one traffic key. Its AEAD (with AES-GCM, about
// 1 KiB of expanded key and tables) is made when needed and dropped while the stream is idle:
// an idle stream keeps only the key.
type recordSealer struct {
	chacha bool   // ChaCha20-Poly1305, else AES-GCM
	key    []byte // the record key
	iv     [12]byte
	seq    uint64      // of the next record
	aead   cipher.AEAD // nil while idle
}

// newRecordSealer derives the key and IV of a TLS 1.3 traffic secret (RFC 8446, 7.3).
func newRecordSealer(suite uint16, secret []byte) (*recordSealer, error) {
	var h func() hash.Hash
	var keyLen int
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		h, keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		h, keyLen = sha256.New, chacha20poly1305.KeySize
	default:
		return nil, fmt.Errorf("cipher suite %#04x is not a TLS 1.3 one", suite)
	}
	key, err := expandLabel(h, secret, "key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(h, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	rs := &recordSealer{chacha: suite == tls.TLS_CHACHA20_POLY1305_SHA256, key: key}
	copy(rs.iv[:], iv)
	if _, err := rs.cipher(); err != nil {
		return nil, err
	}
	return rs, nil
}

// cipher returns the AEAD, making it if the stream was idle.
func (rs *recordSealer) cipher() (cipher.AEAD, error) {
	if rs.aead != nil {
		return rs.aead, nil
	}
	var err error
	if rs.chacha {
		rs.aead, err = chacha20poly1305.New(rs.key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(rs.key); err == nil {
			rs.aead, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("record cipher: %w", err)
	}
	return rs.aead, nil
}

// idle drops the AEAD until the next write.
func (rs *recordSealer) idle() { rs.aead = nil }

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) ([]byte, error) {
	info := make([]byte, 0, 4+6+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "+label...)
	info = append(info, 0)
	return hkdf.Expand(h, secret, string(info), n)
}

// nonce is the per-record nonce: the IV xored with the sequence number.
func (rs *recordSealer) nonce(seq uint64) []byte {
	var n [12]byte
	n = rs.iv
	for i := range 8 {
		n[4+i] ^= byte(seq >> (56 - 8*i))
	}
	return n[:]
}

// seal appends to dst the records carrying plain as content of type typ.
func (rs *recordSealer) seal(dst, plain []byte, typ byte) ([]byte, error) {
	aead, err := rs.cipher()
	if err != nil {
		return dst, err
	}
	for first := true; first || len(plain) > 0; first = false {
		if rs.seq >= maxTLSRecords {
			return dst, errTLSRecordLimit
		}
		n := min(len(plain), 1<<14)
		start := len(dst)
		dst = append(dst, recordApplicationData, 3, 3, 0, 0)
		hdr := dst[start : start+5]
		binary.BigEndian.PutUint16(hdr[3:], uint16(n+1+aead.Overhead()))
		body := append(dst[start+5:], plain[:n]...)
		body = append(body, typ)
		dst = aead.Seal(dst[:start+5], rs.nonce(rs.seq), body, dst[start:start+5])
		rs.seq++
		plain = plain[n:]
	}
	return dst, nil
}

// tappedConn returns the tracked connection under a hijacked TLS connection, when it is
// being tapped.
func tappedConn(conn net.Conn) *trackedConn {
	tlsConn, ok := conn.(*tls.Conn)
	if !ok {
		return nil
	}
	tc, ok := tlsConn.NetConn().(*trackedConn)
	if !ok || tc.tap == nil {
		return nil
	}
	return tc
}

// writeHead writes a hijacked stream's response head. Over TLS 1.3 the stream then sheds its
// tls.Conn: from here on it seals its own records on the plain connection.
func (p *pool) writeHead(rs *rawStream, head []byte) error {
	tc := tappedConn(rs.conn)
	if tc != nil {
		tc.tap.arm()
	}
	if err := p.writeRaw(rs, head); err != nil {
		return err
	}
	if tc == nil {
		return nil
	}
	state := rs.conn.(*tls.Conn).ConnectionState()
	tap := tc.tap
	tc.tap = nil // the tls.Conn writes no more
	if state.Version != tls.VersionTLS13 {
		return nil
	}
	sealer, err := tap.sealer(state.CipherSuite)
	if err != nil {
		p.s.log.Debug("a TLS stream keeps its tls.Conn", "err", err)
		return nil
	}
	tc.shed.Store(true) // from here on, the tls.Conn cannot write: see trackedConn.shed
	rs.conn, rs.tls = tc.Conn, sealer
	return nil
}

// seal encrypts b for a stream that seals its own records, into a buffer of the pool that
// the caller gives back with putBuf.
func (p *pool) seal(rs *rawStream, b []byte, typ byte) (*[]byte, []byte, error) {
	bp := p.bufs.Get().(*[]byte)
	out, err := rs.tls.seal((*bp)[:0], b, typ)
	return bp, out, err
}

// putBuf gives back a buffer of the pool.
func (p *pool) putBuf(bp *[]byte, b []byte) {
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		p.bufs.Put(bp)
	}
}

// closeNotify sends a TLS close_notify alert on a stream that seals its own records.
func (p *pool) closeNotify(rs *rawStream) {
	if rs.tls != nil {
		_ = p.writeSealed(rs, []byte{1, 0}, recordAlert) // warning, close_notify
	}
}

// recordOpener reads TLS 1.3 records under one traffic key: the client's, for a connection
// whose reading side the hub's own HTTP/2 server took over (h2.go).
type recordOpener struct {
	recordSealer
}

// Errors of reading records.
var (
	errBadRecord     = errors.New("a TLS record does not open under the client's traffic key")
	errKeyUpdate     = errors.New("the client updated its TLS key")
	errRecordType    = errors.New("unexpected TLS record")
	errClientClosing = errors.New("the client closed the TLS connection")
)

// maxRecord is the largest TLS 1.3 record, header included.
const maxRecord = 5 + 1<<14 + 256

// recordLen returns the length of the record at the start of b, header included, or 0 when
// b does not hold its header yet. A header that cannot start a TLS 1.3 record is an error.
func recordLen(b []byte) (int, error) {
	if len(b) < 5 {
		return 0, nil
	}
	n := 5 + int(binary.BigEndian.Uint16(b[3:]))
	if b[0] != recordApplicationData || b[1] != 3 || n > maxRecord {
		return 0, errRecordType
	}
	return n, nil
}

// open decrypts rec, one whole record, in place and returns its content and content type.
func (ro *recordOpener) open(rec []byte) ([]byte, byte, error) {
	aead, err := ro.cipher()
	if err != nil {
		return nil, 0, err
	}
	if ro.seq >= maxTLSRecords {
		return nil, 0, errTLSRecordLimit
	}
	plain, err := aead.Open(rec[5:5], ro.nonce(ro.seq), rec[5:], rec[:5])
	if err != nil {
		return nil, 0, errBadRecord
	}
	ro.seq++
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 {
		return nil, 0, errRecordType
	}
	return plain[:i], plain[i], nil
}

// opener returns the record reader that continues where the tls.Conn stopped reading, and
// the bytes it read from the socket that the handshake did not consume: the tap kept every
// byte read, and the first application record is the first one that opens under the
// client's traffic key at sequence number 0 (the handshake's records are under other keys,
// or not encrypted). When no whole record opens, what follows the last whole record is the
// start of the first one.
func (t *tlsTap) opener(suite uint16) (*recordOpener, []byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil || !t.tee {
		return nil, nil, errors.New("no client traffic secret or not all bytes read were kept")
	}
	rs, err := newRecordSealer(suite, t.client)
	if err != nil {
		return nil, nil, err
	}
	ro := &recordOpener{recordSealer: *rs}
	in := t.in
	var scratch [maxRecord]byte
	for len(in) >= 5 {
		n := 5 + int(binary.BigEndian.Uint16(in[3:]))
		if n > len(in) {
			break
		}
		if in[0] == recordApplicationData {
			rec := scratch[:copy(scratch[:], in[:n])]
			if _, _, err := ro.open(rec); err == nil {
				ro.seq = 0
				return ro, bytes.Clone(in), nil
			}
		}
		in = in[n:]
	}
	return ro, bytes.Clone(in), nil
}
