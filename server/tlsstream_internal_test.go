package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzTLSTap feeds the tap the records of a handshake and of a stream's first records, cut
// into writes at arbitrary points: it must find the sequence number after the last record,
// and the records the sealer writes next must open, in order, to what it was given.
func FuzzTLSTap(f *testing.F) {
	f.Add(uint8(2), uint8(1), []byte("HTTP/1.1 200 OK\r\n\r\n"), []byte{3, 7, 200}, 100)
	f.Add(uint8(0), uint8(0), []byte("x"), []byte{}, 1<<14)
	f.Add(uint8(5), uint8(3), bytes.Repeat([]byte("y"), 3000), []byte{1, 1, 1, 1}, 1<<14+1)
	f.Fuzz(func(t *testing.T, handshake, tickets uint8, head, cuts []byte, next int) {
		secret := bytes.Repeat([]byte{0x42}, 32)
		suite := tls.TLS_AES_128_GCM_SHA256
		app, err := newRecordSealer(suite, secret)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := newRecordSealer(suite, bytes.Repeat([]byte{0x17}, 32)) // the handshake's key
		var wire []byte
		wire = append(wire, 22, 3, 3, 0, 4, 2, 0, 0, 0) // a plaintext ServerHello, of sorts
		for range handshake % 8 {
			wire, _ = other.seal(wire, []byte("encrypted handshake"), 22)
		}
		for range tickets % 4 {
			wire, _ = app.seal(wire, []byte("ticket"), 22)
		}
		armAt := len(wire)
		if len(head) > 1000 {
			head = head[:1000]
		}
		wire, _ = app.seal(wire, head, recordApplicationData)
		want := app.seq

		tap := &tlsTap{secret: secret}
		feed := func(b []byte) { // in writes cut where cuts say
			for len(b) > 0 {
				n := len(b)
				if len(cuts) > 0 {
					n, cuts = min(n, int(cuts[0])+1), cuts[1:]
				}
				tap.sent(b[:n])
				b = b[n:]
			}
		}
		feed(wire[:armAt]) // the handshake and the tickets
		tap.arm()
		feed(wire[armAt:]) // the response head
		s, err := tap.sealer(suite)
		if err != nil {
			t.Fatal(err)
		}
		if s.seq != want {
			t.Fatalf("sequence number %d, want %d", s.seq, want)
		}

		next = max(0, min(next, 100_000))
		plain := bytes.Repeat([]byte("e"), next)
		out, err := s.seal(nil, plain, recordApplicationData)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for seq := want; len(out) > 0; seq++ {
			if len(out) < 5 || out[0] != recordApplicationData || out[1] != 3 || out[2] != 3 {
				t.Fatalf("bad record header %x", out[:min(5, len(out))])
			}
			n := int(binary.BigEndian.Uint16(out[3:5]))
			if n > 1<<14+256 || len(out) < 5+n {
				t.Fatalf("record of %d bytes, %d left", n, len(out)-5)
			}
			aead, _ := app.cipher()
			p, err := aead.Open(nil, app.nonce(seq), out[5:5+n], out[:5])
			if err != nil {
				t.Fatalf("record %d does not open: %v", seq, err)
			}
			if len(p) == 0 || p[len(p)-1] != recordApplicationData || len(p)-1 > 1<<14 {
				t.Fatalf("record %d: %d bytes, type %v", seq, len(p), p[len(p)-1:])
			}
			got = append(got, p[:len(p)-1]...)
			out = out[5+n:]
		}
		if !bytes.Equal(got, plain) {
			t.Fatal(fmt.Sprintf("%d bytes out, %d in", len(got), len(plain)))
		}
	})
}

// BenchmarkSeal seals an event write of each size in TLS 1.3 records, as a sealed stream
// does on each write, its cipher kept (busy) or made again (after idling).
func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{256, 16 << 10, 64 << 10} {
		for _, idle := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dB/idle=%v", size, idle), func(b *testing.B) {
				rs, err := newRecordSealer(tls.TLS_AES_128_GCM_SHA256, bytes.Repeat([]byte{1}, 32))
				if err != nil {
					b.Fatal(err)
				}
				plain, dst := make([]byte, size), make([]byte, 0, size+size/1000+64)
				b.SetBytes(int64(size))
				for b.Loop() {
					if idle {
						rs.idle()
					}
					if dst, err = rs.seal(dst[:0], plain, recordApplicationData); err != nil {
						b.Fatal(err)
					}
					rs.seq = 0
				}
			})
		}
	}
}

// Once a stream has shed its tls.Conn, the tls.Conn cannot write: a Write fails, and its
// Close sends no close_notify, which would be sealed at the number of the stream's next
// record. The client reads the stream's records, then a bare end of the connection.
func TestShedTLSConnCannotWrite(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	tlsConn, client := handshakeTLS13(t, s, &tls.Config{})
	p := &pool{s: s}
	p.bufs.New = func() any { b := make([]byte, 0, 1<<10); return &b }
	rs := &rawStream{conn: tlsConn}
	if err := p.writeHead(rs, []byte("head|")); err != nil {
		t.Fatal(err)
	}
	if rs.tls == nil {
		t.Fatal("the stream did not shed its tls.Conn")
	}
	if err := p.writeRaw(rs, []byte("sealed|")); err != nil {
		t.Fatal(err)
	}
	if n, err := tlsConn.Write([]byte("late")); err == nil {
		t.Fatalf("the shed tls.Conn wrote %d bytes", n)
	}
	_ = tlsConn.Close() // would send close_notify, then closes the socket
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if string(got) != "head|sealed|" || !errors.Is(err, io.ErrUnexpectedEOF) && err != nil {
		t.Fatalf("the client read %q, then %v; want the stream's records and a bare end", got, err)
	}
}

// handshakeTLS13 serves one TLS 1.3 connection on loopback with s.TLSConfig(base), base given
// a self-signed certificate, over a trackedConn as the hub's listener makes them, and
// returns both ends once the handshake is done.
func handshakeTLS13(t *testing.T, s *Server, base *tls.Config) (server, client *tls.Conn) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	base.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	base.NextProtos = []string{"http/1.1"}
	cfg := s.TLSConfig(base)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	handshake := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			handshake <- nil
			return
		}
		tc := tls.Server(&trackedConn{Conn: c, open: new(atomic.Int64)}, cfg)
		if err := tc.Handshake(); err != nil {
			_ = c.Close()
			tc = nil
		}
		handshake <- tc
	}()
	client, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server = <-handshake
	if server == nil {
		t.Fatal("the server's handshake failed")
	}
	t.Cleanup(func() { _ = server.NetConn().Close() })
	return server, client
}

// A base configuration with its own KeyLogWriter keeps it: the connection is not tapped,
// and its stream keeps its tls.Conn.
func TestTLSConfigKeepsKeyLogWriter(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	var keyLog bytes.Buffer
	tlsConn, _ := handshakeTLS13(t, s, &tls.Config{KeyLogWriter: &keyLog})
	if !bytes.Contains(keyLog.Bytes(), []byte(serverTrafficLabel)) {
		t.Fatalf("the configured key log got %q", keyLog.String())
	}
	if tc := tappedConn(tlsConn); tc != nil {
		t.Fatal("the connection is tapped")
	}
}
