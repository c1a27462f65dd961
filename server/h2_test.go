package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// Tests of the hub's own HTTP/2 server (h2.go) against real clients over TLS 1.3: how it
// answers a client that breaks the protocol, stops reading or goes idle, and how it carries
// bodies and histories larger than the flow-control windows.

// newH2Hub serves an anonymous hub over TLS with the hub's own HTTP/2 server and a
// dispatch_timeout of 300ms; configure may change the http.Server. At cleanup, once
// everything stopped, no goroutine of the test is left; before that, no subscriber is.
func newH2Hub(t *testing.T, configure func(*http.Server)) *tlsHub {
	t.Helper()
	return newH2HubWith(t, nil, nil, configure)
}

// newH2HubWith is newH2Hub with hooks for the hub's and the server's configurations.
func newH2HubWith(t *testing.T, configureHub func(*hub.Config), configureServer func(*server.Config), configure func(*http.Server)) *tlsHub {
	t.Helper()
	needSealing(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	th := serveHubTLSWith(t, newTestHubWith(t, configureHub, func(c *server.Config) {
		c.Anonymous = true
		c.DispatchTimeout = 300 * time.Millisecond
		if configureServer != nil {
			configureServer(c)
		}
	}), configure)
	t.Cleanup(func() {
		waitFor(t, "no subscriber left", func() bool { return th.Hub.Subscribers() == 0 })
	})
	return th
}

// headerBlock encodes fields with an encoder of its own (which never refers to entries of
// an earlier block, so the server's table stays in step whatever came before).
func headerBlock(fields ...[2]string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return b.Bytes()
}

// subscription returns the header fields of a subscription to topic, then extra.
func subscription(topic string, extra ...[2]string) [][2]string {
	return append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"},
		{":path", server.Path + "?topic=" + topic}}, extra...)
}

// subscribedH2 opens an HTTP/2 connection to th with stream 1 subscribed to topic a, its
// opening comment received.
func subscribedH2(t *testing.T, th *tlsHub) *h2Client {
	t.Helper()
	c := dialH2(t, th, 64<<10)
	c.subscribe(1, "a")
	c.waitData(1, ":\n")
	return c
}

// request opens stream id with a header block of fields.
func (c *h2Client) request(id uint32, endStream bool, fields [][2]string) {
	c.mu.Lock()
	c.data[id] = &bytes.Buffer{}
	c.mu.Unlock()
	c.write(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: headerBlock(fields...), EndStream: endStream, EndHeaders: true})
	})
}

// waitClosed waits until the server closed the connection.
func (c *h2Client) waitClosed() {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		c.t.Fatal("the connection is still open")
	}
}

// waitGoAway waits until the server closed the connection and checks that it said GOAWAY
// with code and last stream last first.
func (c *h2Client) waitGoAway(code http2.ErrCode, last uint32) {
	c.t.Helper()
	c.waitClosed()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.goaway || c.goawayCode != code || c.goawayLast != last {
		c.t.Fatalf("GOAWAY %v (%v, last stream %d), want GOAWAY %v, last stream %d", c.goaway, c.goawayCode, c.goawayLast, code, last)
	}
}

// waitEnd waits until stream id ended and returns how.
func (c *h2Client) waitEnd(id uint32) string {
	c.t.Helper()
	var how string
	waitFor(c.t, "stream "+strconv.Itoa(int(id))+"'s end", func() bool { _, how = c.received(id); return how != "" })
	return how
}

// open reports whether the connection is open and no GOAWAY came.
func (c *h2Client) open() bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.goaway
}

// waitNoConns waits until the hub's own HTTP/2 server serves no connection.
func waitNoConns(t *testing.T, th *tlsHub) {
	t.Helper()
	waitFor(t, "no HTTP/2 connection left", func() bool { return th.Server.HTTP2Conns() == 0 })
}

// A connection whose client reads nothing at all is dropped once its socket has been full
// for longer than dispatch_timeout, its subscription with it; a subscriber on another
// connection gets every event, in order, meanwhile.
func TestH2StalledConnectionIsDropped(t *testing.T) {
	// dispatch_timeout leaves the reading client time to keep up under the race detector on
	// a loaded machine.
	th := newH2HubWith(t, func(c *hub.Config) { c.QueueSize = 1000 }, func(c *server.Config) { c.DispatchTimeout = 3 * time.Second }, nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	stalled := tls.Client(raw, &tls.Config{RootCAs: th.Roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err := stalled.Handshake(); err != nil {
		t.Fatal(err)
	}
	if p := stalled.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	// Windows wide open: only the socket holds the server back. Then it reads nothing.
	var hello bytes.Buffer
	hello.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&hello, nil)
	_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	_ = fr.WriteWindowUpdate(0, 1<<31-1-65535)
	_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock(subscription("a")...), EndStream: true, EndHeaders: true})
	if _, err := stalled.Write(hello.Bytes()); err != nil {
		t.Fatal(err)
	}

	c := dialH2(t, th, 1<<30) // windows wide open too
	c.write(func() error { return c.fr.WriteWindowUpdate(0, 1<<30) })
	c.subscribe(1, "a")
	c.waitData(1, ":\n")
	waitFor(t, "both subscribers", func() bool { return th.Hub.Subscribers() == 2 && th.Server.HTTP2Conns() == 2 })

	payload := strings.Repeat("z", 256<<10)
	want := ":\n" + events(0, 40, payload)
	for i := range 40 { // 10 MiB: more than the socket's buffers hold
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	for stop := time.Now().Add(20 * time.Second); th.Hub.Subscribers() != 1 || th.Server.HTTP2Conns() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(stop) {
			t.Fatalf("%d subscribers and %d connections left; want the stalled connection dropped, the other one kept", th.Hub.Subscribers(), th.Server.HTTP2Conns())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, _ := c.received(1)
		if len(got) >= len(want) {
			if got != want {
				t.Fatalf("the reading subscriber got %d bytes, want %d, not the events in order", len(got), len(want))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reading subscriber got %d bytes of %d", len(got), len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !c.open() {
		t.Fatal("the reading connection was closed")
	}
}

// DATA on stream 0 is a connection error: GOAWAY PROTOCOL_ERROR, then the connection closes,
// and the subscription on it goes.
func TestH2DataOnStreamZero(t *testing.T) {
	th := newH2Hub(t, nil)
	c := subscribedH2(t, th)
	c.fr.AllowIllegalWrites = true
	c.write(func() error { return c.fr.WriteData(0, false, []byte("x")) })
	c.waitGoAway(http2.ErrCodeProtocol, 1)
	waitNoConns(t, th)
}

// A request with a malformed header (an uppercase name, a connection-specific header, te
// other than trailers) is a stream error: RST_STREAM PROTOCOL_ERROR on that stream, no
// response, and the next stream on the connection is served.
func TestH2MalformedHeaders(t *testing.T) {
	for _, h := range [][2]string{{"X-Upper", "1"}, {"connection", "keep-alive"}, {"keep-alive", "5"}, {"te", "gzip"}} {
		t.Run(h[0], func(t *testing.T) {
			th := newH2Hub(t, nil)
			c := dialH2(t, th, 64<<10)
			c.request(1, true, subscription("a", h))
			if how := c.waitEnd(1); how != "RST_STREAM PROTOCOL_ERROR" {
				t.Fatalf("stream 1 ended with %s, want RST_STREAM PROTOCOL_ERROR", how)
			}
			c.subscribe(3, "a")
			c.waitData(3, ":\n")
			waitFor(t, "one subscriber", func() bool { return th.Hub.Subscribers() == 1 })
			th.publish(t, publishForm("topic", "a", "id", "0", "data", "x"))
			c.waitData(3, ":\n"+events(0, 1, "x"))
			if got, _ := c.received(1); got != "" {
				t.Fatalf("the refused stream got %q", got)
			}
			if !c.open() {
				t.Fatal("the connection ended")
			}
		})
	}
}

// A WINDOW_UPDATE that takes the connection's send window past 2^31-1 is a connection error:
// GOAWAY FLOW_CONTROL_ERROR.
func TestH2WindowOverflow(t *testing.T) {
	th := newH2Hub(t, nil)
	c := subscribedH2(t, th)
	c.write(func() error { return c.fr.WriteWindowUpdate(0, 1<<31-1) })
	c.waitGoAway(http2.ErrCodeFlowControl, 1)
	waitNoConns(t, th)
}

// A PING is answered with a PING ACK of the same 8 bytes; the connection goes on.
func TestH2Ping(t *testing.T) {
	th := newH2Hub(t, nil)
	c := dialH2(t, th, 64<<10)
	data := [8]byte{1, 2, 3, 4, 5, 6, 7, 0xfe}
	c.write(func() error { return c.fr.WritePing(false, data) })
	waitFor(t, "the PING ACK", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.pingAcks) > 0 })
	c.mu.Lock()
	acks := c.pingAcks
	c.mu.Unlock()
	if len(acks) != 1 || acks[0] != data {
		t.Fatalf("PING ACKs %x, want one of %x", acks, data)
	}
	c.subscribe(1, "a")
	c.waitData(1, ":\n")
	if !c.open() {
		t.Fatal("the connection ended")
	}
}

// A header block that goes on past 128 KiB in CONTINUATION frames is a connection error:
// GOAWAY ENHANCE_YOUR_CALM.
func TestH2ContinuationFlood(t *testing.T) {
	th := newH2Hub(t, nil)
	c := dialH2(t, th, 64<<10)
	block := headerBlock(subscription("a")...)
	chunk := make([]byte, 16<<10)
	_ = c.send(func() error { // the server may close before the last frames are sent
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true}); err != nil {
			return err
		}
		for range 9 {
			if err := c.fr.WriteContinuation(1, false, chunk); err != nil {
				return err
			}
		}
		return nil
	})
	c.waitGoAway(http2.ErrCodeEnhanceYourCalm, 0)
	waitNoConns(t, th)
}

// openAndReset opens streams from, from+2, … n of them, each a subscription reset at once,
// in one write.
func (c *h2Client) openAndReset(from uint32, n int) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	block := headerBlock(subscription("a")...)
	for i := range n {
		id := from + uint32(2*i)
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
		_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	_ = c.send(func() error { _, err := c.conn.Write(b.Bytes()); return err })
}

// ping sends a PING and waits for its ACK.
func (c *h2Client) ping(data [8]byte) {
	c.t.Helper()
	c.write(func() error { return c.fr.WritePing(false, data) })
	waitFor(c.t, "the PING ACK", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, a := range c.pingAcks {
			if a == data {
				return true
			}
		}
		return false
	})
}

// More than 1000 streams opened and reset at once, in a row, are a connection error: GOAWAY
// ENHANCE_YOUR_CALM once the 1001st is reset (whether each was refused, because so many
// handlers were still running, or reset by the client: each counts once). Every
// subscription they started goes.
func TestH2ResetFlood(t *testing.T) {
	th := newH2Hub(t, nil)
	c := dialH2(t, th, 64<<10)
	c.openAndReset(1, 1000)
	c.ping([8]byte{1})
	if !c.open() {
		t.Fatal("the connection ended after 1000 streams reset")
	}
	c.openAndReset(2001, 1)
	c.waitGoAway(http2.ErrCodeEnhanceYourCalm, 2001)
	waitNoConns(t, th)
}

// Subscriptions served, then reset by the client, do not add up to a flood: 1100 of them in
// batches on one connection leave it open.
func TestH2SubscriptionsServedThenResetAreNoFlood(t *testing.T) {
	th := newH2Hub(t, nil)
	c := dialH2(t, th, 64<<10)
	id := uint32(1)
	for batch := range 11 {
		first := id
		for range 100 {
			c.subscribe(id, "a")
			id += 2
		}
		for s := first; s < id; s += 2 {
			c.waitData(s, ":\n")
		}
		// An event written to every stream: each was handed to the connection.
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(batch), "data", "x"))
		for s := first; s < id; s += 2 {
			c.waitData(s, ":\n"+events(batch, batch+1, "x"))
		}
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		for s := first; s < id; s += 2 {
			_ = fr.WriteRSTStream(s, http2.ErrCodeCancel)
		}
		c.write(func() error { _, err := c.conn.Write(b.Bytes()); return err })
		waitFor(t, "the batch's subscribers to go", func() bool { return th.Hub.Subscribers() == 0 })
	}
	c.ping([8]byte{2})
	if !c.open() {
		t.Fatal("the connection ended")
	}
}

// A frame larger than SETTINGS_MAX_FRAME_SIZE (16 KiB) is a connection error: GOAWAY
// FRAME_SIZE_ERROR.
func TestH2FrameTooLarge(t *testing.T) {
	th := newH2Hub(t, nil)
	c := subscribedH2(t, th)
	_ = c.send(func() error { return c.fr.WriteRawFrame(http2.FrameData, 0, 1, make([]byte, 16<<10+1)) })
	c.waitGoAway(http2.ErrCodeFrameSize, 1)
	waitNoConns(t, th)
}

// A client that sends something other than the client preface is cut off after the server's
// own preface (SETTINGS and the connection's WINDOW_UPDATE), without a GOAWAY.
func TestH2BadPreface(t *testing.T) {
	th := newH2Hub(t, nil)
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: th.Roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(nil, conn)
	var types []http2.FrameType
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("still open after 5s, frames %v", types)
			}
			break
		}
		types = append(types, f.Header().Type)
	}
	if len(types) != 2 || types[0] != http2.FrameSettings || types[1] != http2.FrameWindowUpdate {
		t.Fatalf("frames %v, want SETTINGS and WINDOW_UPDATE", types)
	}
	waitNoConns(t, th)
}

// With the http.Server's IdleTimeout, a connection without a stream for that long is told
// GOAWAY NO_ERROR and closed; one with an SSE stream is not, until the stream ends.
func TestH2IdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	th := newH2Hub(t, func(hs *http.Server) { hs.IdleTimeout = idle })
	start := time.Now()
	bare := dialH2(t, th, 64<<10)
	busy := dialH2(t, th, 64<<10)
	busy.subscribe(1, "a")
	busy.waitData(1, ":\n")
	bare.waitGoAway(http2.ErrCodeNo, 0)
	if d := time.Since(start); d < idle {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	time.Sleep(3 * idle)
	if !busy.open() || th.Server.HTTP2Conns() != 1 {
		t.Fatalf("the connection with a stream is open: %v; connections %d", busy.open(), th.Server.HTTP2Conns())
	}
	th.publish(t, publishForm("topic", "a", "id", "0", "data", "x"))
	busy.waitData(1, ":\n"+events(0, 1, "x"))
	// Once its stream is reset by the client, the connection is idle and goes too.
	busy.write(func() error { return busy.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
	busy.waitGoAway(http2.ErrCodeNo, 1)
	waitNoConns(t, th)
}

// h2HTTPClient is Go's HTTP client over HTTP/2 to th.
func h2HTTPClient(t *testing.T, th *tlsHub) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: th.Roots}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// A publish over HTTP/2 whose body is larger than the stream window (64 KiB) is read whole,
// the window opened as the handler reads: 200, and the subscriber gets exactly its data.
func TestH2PublishLargerThanWindow(t *testing.T) {
	th := newH2Hub(t, nil)
	c := subscribedH2(t, th)
	payload := strings.Repeat("0123456789abcdef", 200<<10/16) // 200 KiB
	req, err := http.NewRequest(http.MethodPost, th.URL, strings.NewReader(publishForm("topic", "a", "id", "0", "data", payload).Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+mercureToken(t, []string{"*"}, nil))
	resp, err := h2HTTPClient(t, th).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || string(body) != "0" {
		t.Fatalf("%s %d %q, %v; want HTTP/2.0 200 \"0\"", resp.Proto, resp.StatusCode, body, err)
	}
	if n := th.Server.HTTP2Conns(); n != 2 {
		t.Fatalf("the hub's own HTTP/2 server serves %d connections, want 2", n)
	}
	c.waitData(1, ":\n"+events(0, 1, payload))
}

// A subscription whose history replay (320 KiB) is more than the client's windows gets it
// whole and in order, from a client that opens its windows as it reads, and from Go's.
func TestH2ReplayLargerThanWindows(t *testing.T) {
	th := newH2Hub(t, nil)
	th.publish(t, publishForm("topic", "a", "id", "start", "data", "s"))
	payload := strings.Repeat("h", 8<<10)
	for i := range 40 {
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	want := events(0, 40, payload)

	c := dialH2(t, th, 16<<10)
	c.request(1, true, subscription("a", [2]string{"last-event-id", "start"}))
	c.waitData(1, ":\n"+want)

	req, err := http.NewRequest(http.MethodGet, th.URL+"?topic=a", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "start")
	resp, err := h2HTTPClient(t, th).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
	r := sse.NewReader(bufio.NewReader(resp.Body))
	for i := range 40 {
		m, err := r.Next()
		if err != nil || m.ID != strconv.Itoa(i) || m.Data != payload {
			t.Fatalf("event %d: id %q, %d bytes, %v", i, m.ID, len(m.Data), err)
		}
	}
	resp.Body.Close()
}

// Subscriptions whose request side stays open, each sent most of a stream window of DATA that
// nobody reads: the connection window comes back, so the connection outlives more of them
// than its window holds, and the subscriptions go on.
func TestH2SubscriptionBodyGivesTheWindowBack(t *testing.T) {
	th := newH2Hub(t, nil)
	c := dialH2(t, th, 1<<20)
	chunk := bytes.Repeat([]byte("x"), 16383)
	const subs = 20 // 20 × 64 KiB: more than the 1 MiB connection window
	for i := range uint32(subs) {
		id := 1 + 2*i
		c.request(id, false, subscription("t"))
		c.waitData(id, ":\n")
		for range 4 {
			c.write(func() error { return c.fr.WriteData(id, false, chunk) })
		}
	}
	waitFor(t, "the subscribers", func() bool { return th.Hub.Subscribers() == subs })
	th.publish(t, publishForm("topic", "t", "id", "0", "data", "after"))
	for i := range uint32(subs) {
		c.waitData(1+2*i, ":\n"+events(0, 1, "after"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goaway {
		t.Fatalf("GOAWAY %v after %d bytes sent on subscriptions", c.goawayCode, subs*4*len(chunk))
	}
}

// A request body shorter than its content-length is refused, whether the client ends it with
// DATA or with trailers: RST_STREAM PROTOCOL_ERROR, and nothing is published.
func TestH2ShortBodyIsRefused(t *testing.T) {
	for _, trailers := range []bool{false, true} {
		th := newH2Hub(t, nil)
		c := dialH2(t, th, 1<<20)
		c.request(1, false, [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "127.0.0.1"},
			{":path", server.Path}, {"content-type", "application/x-www-form-urlencoded"}, {"content-length", "40"},
			{"authorization", "Bearer " + mercureToken(t, []string{"*"}, nil)}})
		body := []byte("topic=a&data=short")
		if trailers {
			c.write(func() error { return c.fr.WriteData(1, false, body) })
			c.write(func() error {
				return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock([2]string{"x-t", "1"}), EndStream: true, EndHeaders: true})
			})
		} else {
			c.write(func() error { return c.fr.WriteData(1, true, body) })
		}
		if how := c.waitEnd(1); how != "RST_STREAM PROTOCOL_ERROR" {
			t.Fatalf("trailers %v: the stream ended with %s, want RST_STREAM PROTOCOL_ERROR", trailers, how)
		}
		if got, _ := c.received(1); strings.Contains(got, "urn:uuid:") {
			t.Fatalf("trailers %v: published: %q", trailers, got)
		}
	}
}
