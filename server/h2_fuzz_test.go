package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
	"golang.org/x/sys/unix"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport/memory"
)

// FuzzH2Frames feeds arbitrary bytes to the frame reader of an HTTP/2 connection, as the
// plaintext of the records it opened, in two reads cut at split: it must not panic, its
// answers must be whole frames, a connection error must leave the connection closed, and
// whatever the requests it started, their handlers end and their subscriptions go.
func FuzzH2Frames(f *testing.F) {
	f.Add(h2Seed(nil), uint16(0))
	h, s := fuzzServer(f)
	p := s.pool()
	hs := &http.Server{Handler: s.Handler()}
	secret := bytes.Repeat([]byte{0x42}, 32)
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		drained := make(chan struct{})
		go func() { // the client, reading everything until the connection closes
			defer close(drained)
			defer unix.Close(fds[1])
			_ = unix.SetNonblock(fds[1], false)
			buf := make([]byte, 64<<10)
			for {
				if n, err := unix.Read(fds[1], buf); n <= 0 || err != nil {
					return
				}
			}
		}()
		c := fuzzConn(t, s, p, hs, fds[0], secret)

		c.mu.Lock()
		k := min(int(split), len(data))
		err = c.readFrames(data[:k])
		if err == nil && !c.closed {
			err = c.readFrames(data[k:])
		}
		var he *h2Error
		switch {
		case err == nil:
			checkH2State(t, c)
		case errors.Is(err, errPreface):
		case errors.As(err, &he) && he.stream == 0:
		default:
			t.Fatalf("readFrames: %v, want a connection error or none", err)
		}
		checkH2Answers(t, c.wbuf, err != nil)
		if err != nil {
			c.fail(err)
			if !c.closed {
				t.Fatalf("open after %v", err)
			}
		} else {
			c.serveStreams()
			if err := c.flush(); err != nil {
				c.closeLocked(err)
			}
			c.closeLocked(nil)
		}
		c.mu.Unlock()
		c.unsubscribeGone()

		deadline := time.Now().Add(5 * time.Second)
		for {
			c.mu.Lock()
			handlers := c.handlers
			c.mu.Unlock()
			if handlers == 0 && h.Subscribers() == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d handlers and %d subscribers left", handlers, h.Subscribers())
			}
			time.Sleep(time.Millisecond)
		}
		c.unsubscribeGone()
		<-drained
		p.mu.Lock()
		_, held := p.conns[c]
		p.mu.Unlock()
		if held {
			t.Fatal("the pool still holds the closed connection")
		}
	})
}

// fuzzServer starts a hub that allows anonymous subscribers and its server, stopped at
// cleanup.
func fuzzServer(f *testing.F) (*hub.Hub, *Server) {
	tr := memory.New(memory.Options{Size: 100})
	h, err := hub.New(hub.Config{Transport: tr, Matcher: topic.NewMatcher(100), QueueSize: 100})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	v, err := auth.NewVerifier(ctx, auth.Config{Key: "!ChangeThisMercureHubJWTSecretKey!"})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Hub: h, Publisher: v, Subscriber: v, Anonymous: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		h.Shutdown()
		s.Close(time.Second)
		cancel()
		<-done
		_ = v.Close()
		_ = tr.Close()
	})
	return h, s
}

// fuzzConn makes an HTTP/2 connection on fd as takeOverH2 does, its records sealed and
// opened under secret, the client preface not read yet.
func fuzzConn(t *testing.T, s *Server, p *pool, hs *http.Server, fd int, secret []byte) *h2Conn {
	sealer, err := newRecordSealer(tls.TLS_AES_128_GCM_SHA256, secret)
	if err != nil {
		t.Fatal(err)
	}
	opener, err := newRecordSealer(tls.TLS_AES_128_GCM_SHA256, secret)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), http.ServerContextKey, hs)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443})
	c := &h2Conn{
		s: s, p: p, hs: hs, remote: "127.0.0.1:4242", ctx: ctx, fd: fd,
		tlsState: &tls.ConnectionState{Version: tls.VersionTLS13, NegotiatedProtocol: "h2", HandshakeComplete: true},
		open:     &recordOpener{*opener}, seal: sealer,
		dec:        hpack.NewDecoder(4096, nil), // until the client acknowledges the settings
		sendWindow: 65535, recvWindow: h2ConnWindow, peerWindow: 65535, peerFrame: 1 << 14,
		streams:   make(map[uint32]*h2Stream),
		idleSince: time.Now().UnixNano(),
	}
	c.dec.SetMaxStringLength(maxHeaderBytes(hs))
	c.cond.L = &c.mu
	c.state.Store(streamScheduled) // never scheduled: the test is its only servicer
	if !p.addConn(c) {
		t.Fatal("the pool is closed")
	}
	return c
}

// checkH2State checks the connection's state after frames that were no connection error.
func checkH2State(t *testing.T, c *h2Conn) {
	t.Helper()
	if c.recvWindow < 0 || c.recvWindow > h2ConnWindow {
		t.Fatalf("connection receive window %d", c.recvWindow)
	}
	if c.sendWindow > h2MaxWindow {
		t.Fatalf("connection send window %d", c.sendWindow)
	}
	if c.preface && len(c.frag) >= h2FrameHeaderLen+h2MaxFrame || !c.preface && len(c.frag) >= len(h2Preface) {
		t.Fatalf("%d bytes kept of a frame not whole", len(c.frag))
	}
	if len(c.block) > h2MaxBlock || c.blockID == 0 && len(c.block) > 0 {
		t.Fatalf("header block of %d bytes kept for stream %d", len(c.block), c.blockID)
	}
	if c.refused > h2MaxRefused {
		t.Fatalf("%d streams refused in a row", c.refused)
	}
	if c.lastID%2 == 0 && c.lastID != 0 || len(c.streams) > h2MaxStreams {
		t.Fatalf("last stream %d, %d streams", c.lastID, len(c.streams))
	}
	for id, st := range c.streams {
		if id%2 == 0 || id > c.lastID || st.id != id {
			t.Fatalf("stream %d (%d), last %d", id, st.id, c.lastID)
		}
		if st.recvWindow < 0 || st.recvWindow > h2StreamWindow || int64(len(st.body)) > h2StreamWindow {
			t.Fatalf("stream %d: receive window %d, %d bytes of body", id, st.recvWindow, len(st.body))
		}
		if st.window > h2MaxWindow {
			t.Fatalf("stream %d: send window %d", id, st.window)
		}
	}
}

// checkH2Answers checks that b, what the connection is about to send, is whole frames of
// the kinds and sizes its reader answers with, a GOAWAY last and only when closing.
func checkH2Answers(t *testing.T, b []byte, closing bool) {
	t.Helper()
	goAway := false
	for len(b) > 0 {
		if goAway {
			t.Fatal("frames after a GOAWAY")
		}
		if len(b) < h2FrameHeaderLen {
			t.Fatalf("%d bytes left, not a frame", len(b))
		}
		h := parseFrameHeader(b)
		if h.length > h2MaxFrame || len(b) < h2FrameHeaderLen+h.length {
			t.Fatalf("frame %+v with %d bytes left", h, len(b)-h2FrameHeaderLen)
		}
		p := b[h2FrameHeaderLen : h2FrameHeaderLen+h.length]
		b = b[h2FrameHeaderLen+h.length:]
		var want int
		switch h.typ {
		case h2Settings:
			want = 0 // the ACK
			if h.flags != h2FlagAck || h.stream != 0 {
				t.Fatalf("SETTINGS %+v", h)
			}
		case h2Ping:
			want = 8
			if h.flags != h2FlagAck || h.stream != 0 {
				t.Fatalf("PING %+v", h)
			}
		case h2RSTStream:
			want = 4
			if h.stream == 0 {
				t.Fatalf("RST_STREAM %+v", h)
			}
		case h2WindowUpdate:
			want = 4
			if len(p) == 4 && (p[0]&0x80 != 0 || p[0]|p[1]|p[2]|p[3] == 0) {
				t.Fatalf("WINDOW_UPDATE %+v of %x", h, p)
			}
		case h2GoAway:
			want, goAway = 8, true
			if !closing {
				t.Fatal("GOAWAY without a connection error")
			}
		default:
			t.Fatalf("frame %+v from the reader", h)
		}
		if h.length != want {
			t.Fatalf("frame %+v, want %d bytes", h, want)
		}
	}
}

// h2Seed returns the client preface and a SETTINGS frame, then frames.
func h2Seed(frames []byte) []byte {
	b := append([]byte(h2Preface), appendSettings(nil, h2Setting{h2SettingInitialWindowSize, 1 << 20})...)
	return append(b, frames...)
}
