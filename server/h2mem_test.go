package server_test

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/heraldhub/herald/server"
)

// openH2 opens an HTTP/2 connection to th with streams subscriptions to topic a, and returns
// its socket: the client's tls.Conn is dropped, so that only the hub's side of the connection
// is left in the heap.
func (th *tlsHub) openH2(t *testing.T, streams int) net.Conn {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: th.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}})
	var b bytes.Buffer
	b.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&b, nil)
	_ = fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for i := range streams {
		hb.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", addr}, {":path", server.Path + "?topic=a"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	}
	if _, err := io.Copy(tc, &b); err != nil {
		t.Fatal(err)
	}
	return conn
}

// An idle HTTP/2 connection of the hub's own server, and each more stream on it, keep little
// heap: no goroutine, no buffer, no cipher, no header table.
func TestIdleHTTP2Heap(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	const conns = 300
	perConn := func(streams int) float64 {
		return idleHeapPerStream(t, conns, func() net.Conn { return th.openH2(t, streams) }, func(n int) bool {
			return th.Hub.Subscribers() == n*streams && th.Server.HTTP2Conns() == n && th.Server.HTTP2Handlers() == 0
		})
	}
	one := perConn(1)
	ten := perConn(10)
	extra := (ten - one) / 9
	t.Logf("heap per idle HTTP/2 connection with one stream: %.0f bytes, both ends; per stream beyond the first: %.0f bytes", one, extra)
	if one > 4500 || extra > 1200 {
		t.Errorf("heap per idle HTTP/2 connection %.0f bytes (want at most 4500), per more stream %.0f (want at most 1200)", one, extra)
	}
}
