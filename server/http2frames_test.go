package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
)

// h2Client speaks HTTP/2 frames to a hub directly, so that a test decides which windows it
// opens and which streams it resets.
type h2Client struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	wmu  sync.Mutex // writes to fr

	mu     sync.Mutex
	data   map[uint32]*bytes.Buffer // DATA received per stream
	ended  map[uint32]string        // how a stream ended: "END_STREAM" or "RST_STREAM code"
	goaway bool
	// goawayCode and goawayLast are the error code and last stream of the last GOAWAY.
	goawayCode http2.ErrCode
	goawayLast uint32
	pingAcks   [][8]byte     // the payloads of the PING ACKs received
	closed     chan struct{} // the read loop is done // the read loop is done
	// starve lists the streams whose window is never reopened.
	starve map[uint32]bool
}

// dialH2 opens an HTTP/2 connection to th with an initial stream window of window bytes.
func dialH2(t *testing.T, th *tlsHub, window uint32) *h2Client {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: th.Roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q", p)
	}
	c := &h2Client{t: t, conn: conn, fr: http2.NewFramer(conn, conn), data: map[uint32]*bytes.Buffer{},
		ended: map[uint32]string{}, closed: make(chan struct{}), starve: map[uint32]bool{}}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c.write(func() error {
		return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
	})
	go c.readLoop()
	t.Cleanup(func() { conn.Close(); <-c.closed })
	return c
}

func (c *h2Client) write(f func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := f(); err != nil {
		c.t.Errorf("writing a frame: %v", err)
	}
}

// send writes frames with f and returns its error: the read loop's answers, which may come
// after the server closed the connection.
func (c *h2Client) send(f func() error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return f()
}

// subscribe opens stream id on topic.
func (c *h2Client) subscribe(id uint32, topic string) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "127.0.0.1"}, {":path", server.Path + "?topic=" + topic}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	c.mu.Lock()
	c.data[id] = &bytes.Buffer{}
	c.mu.Unlock()
	c.write(func() error {
		return c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	})
}

// readLoop reads frames, reopening the connection's window and the windows of the streams
// not starved as data arrives.
func (c *h2Client) readLoop() {
	defer close(c.closed)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = c.send(func() error { return c.fr.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = c.send(func() error { return c.fr.WritePing(true, f.Data) })
			} else {
				c.mu.Lock()
				c.pingAcks = append(c.pingAcks, f.Data)
				c.mu.Unlock()
			}
		case *http2.DataFrame:
			id, n := f.StreamID, uint32(len(f.Data()))
			c.mu.Lock()
			if b := c.data[id]; b != nil {
				b.Write(f.Data())
			}
			if f.StreamEnded() {
				c.ended[id] = "END_STREAM"
			}
			starved := c.starve[id]
			c.mu.Unlock()
			if n > 0 {
				_ = c.send(func() error {
					if !starved {
						if err := c.fr.WriteWindowUpdate(id, n); err != nil {
							return err
						}
					}
					return c.fr.WriteWindowUpdate(0, n)
				})
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				c.mu.Lock()
				c.ended[f.StreamID] = "END_STREAM"
				c.mu.Unlock()
			}
		case *http2.RSTStreamFrame:
			c.mu.Lock()
			c.ended[f.StreamID] = "RST_STREAM " + f.ErrCode.String()
			c.mu.Unlock()
		case *http2.GoAwayFrame:
			c.mu.Lock()
			c.goaway = true
			c.goawayCode, c.goawayLast = f.ErrCode, f.LastStreamID
			c.mu.Unlock()
		}
	}
}

// received returns what stream id got so far, and how it ended ("" if it has not).
func (c *h2Client) received(id uint32) (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data[id].String(), c.ended[id]
}

// waitData waits until stream id has received want, exactly.
func (c *h2Client) waitData(id uint32, want string) {
	c.t.Helper()
	waitFor(c.t, "stream "+strconv.Itoa(int(id))+"'s data", func() bool {
		got, _ := c.received(id)
		return len(got) >= len(want)
	})
	if got, _ := c.received(id); got != want {
		c.t.Fatalf("stream %d got %d bytes, want %d: %.80q…", id, len(got), len(want), got)
	}
}

// events returns the SSE text of events id0… with data.
func events(from, to int, data string) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString("id: " + strconv.Itoa(i) + "\ndata: " + data + "\n\n")
	}
	return b.String()
}

// A stream whose client stops opening its window is dropped after dispatch_timeout; another
// stream on the same connection gets every event meanwhile and after.
func TestHTTP2StarvedStreamIsDropped(t *testing.T) {
	th := serveHubTLS(t, newTestHubWith(t, func(c *hub.Config) { c.QueueSize = 1000 },
		func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 300 * time.Millisecond }))
	c := dialH2(t, th, 16<<10)
	c.starve[1] = true
	c.subscribe(1, "a")
	c.subscribe(3, "a")
	c.waitData(1, ":\n")
	c.waitData(3, ":\n")
	payload := strings.Repeat("p", 8<<10)
	for i := range 10 { // 80 KiB: more than stream 1's window
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	c.waitData(3, ":\n"+events(0, 10, payload))
	waitFor(t, "the starved stream to be dropped", func() bool { return th.Hub.Subscribers() == 1 })
	th.publish(t, publishForm("topic", "a", "id", "10", "data", "after"))
	c.waitData(3, ":\n"+events(0, 10, payload)+events(10, 11, "after"))
	if _, how := c.received(1); how == "" {
		waitFor(t, "the starved stream's end", func() bool { _, how := c.received(1); return how != "" })
	}
}

// Resetting one stream ends its subscription only: the others on the connection go on.
func TestHTTP2ResetStream(t *testing.T) {
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	c := dialH2(t, th, 64<<10)
	for _, id := range []uint32{1, 3, 5} {
		c.subscribe(id, "a")
		c.waitData(id, ":\n")
	}
	waitFor(t, "three subscribers", func() bool { return th.Hub.Subscribers() == 3 })
	if sealing() && th.Server.HTTP2Conns() != 1 {
		t.Fatalf("the hub's own HTTP/2 server serves %d connections, want 1", th.Server.HTTP2Conns())
	}
	c.write(func() error { return c.fr.WriteRSTStream(3, http2.ErrCodeCancel) })
	waitFor(t, "the reset stream's subscriber to go", func() bool { return th.Hub.Subscribers() == 2 })
	th.publish(t, publishForm("topic", "a", "id", "0", "data", "x"))
	c.waitData(1, ":\n"+events(0, 1, "x"))
	c.waitData(5, ":\n"+events(0, 1, "x"))
	if got, _ := c.received(3); got != ":\n" {
		t.Fatalf("the reset stream got %q", got)
	}
}

// At shutdown the hub ends every stream (END_STREAM) and the server says GOAWAY.
func TestHTTP2GoAwayAtShutdown(t *testing.T) {
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	c := dialH2(t, th, 64<<10)
	c.subscribe(1, "a")
	c.subscribe(3, "b")
	c.waitData(1, ":\n")
	c.waitData(3, ":\n")
	th.Hub.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := th.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.goaway || c.ended[1] != "END_STREAM" || c.ended[3] != "END_STREAM" {
		t.Fatalf("GOAWAY %v, streams ended %v; want GOAWAY and both END_STREAM", c.goaway, c.ended)
	}
}
