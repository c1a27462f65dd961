package server_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/server"
)

// TestMaxConnections fills a hub capped at 50 connections with 50 streams: the 51st
// subscription is refused at once with 503 and Retry-After, while a publish is served from the
// reserve; once the streams end the count is back to 0 and subscribing works again.
func TestMaxConnections(t *testing.T) {
	const max = 50
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.MaxConnections = max })
	streams := make([]net.Conn, 0, max)
	defer func() {
		for _, c := range streams {
			c.Close()
		}
	}()
	for range max {
		streams = append(streams, dialStream(t, th.URL, "https://example.com/full", nil))
	}
	if n := th.Server.OpenConnections(); n != max {
		t.Fatalf("%d connections open; want %d", n, max)
	}

	quick := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := quick.Get(th.URL + "?topic=" + url.QueryEscape("https://example.com/full"))
	if err != nil {
		t.Fatalf("the 51st subscription got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != server.RetryAfter || string(body) != "the hub is at capacity\n" {
		t.Fatalf("the 51st subscription: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	id := th.publish(t, url.Values{"topic": {"https://example.com/full"}, "data": {"still publishing"}})
	want := "id: " + id + "\ndata: still publishing\n\n"
	for _, c := range streams {
		readFrame(t, c, want)
	}

	for _, c := range streams {
		c.Close()
	}
	streams = nil
	th.Client.CloseIdleConnections()
	waitFor(t, "every connection to be closed", func() bool { return th.Server.OpenConnections() == 0 })
	c := dialStream(t, th.URL, "https://example.com/full", nil)
	c.Close()
	waitFor(t, "the last connection to be closed", func() bool { return th.Server.OpenConnections() == 0 })
}

// readFrame reads from a stream until it has seen want, which must come next after heartbeat
// comments and the opening comment, in chunked framing.
func readFrame(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading the stream: %v (read %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
}

// TestConnectionReserveExhausted holds 5 streams on a hub capped at 5 connections with a
// reserve of 3, then 3 idle connections: the next connection is answered with a canned 503
// and closed as it is accepted, not left waiting.
func TestConnectionReserveExhausted(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.MaxConnections = 5; c.ConnectionReserve = 3 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 5 {
		conns = append(conns, dialStream(t, th.URL, "https://example.com/r", nil))
	}
	c, head := dialRaw(t, th.URL, "https://example.com/r", nil)
	conns = append(conns, c)
	if !strings.HasPrefix(head, "HTTP/1.1 503 ") || !strings.Contains(head, "Retry-After: "+server.RetryAfter+"\r\n") {
		t.Fatalf("a subscription past max_connections: %q", head)
	}
	u, _ := url.Parse(th.URL)
	for range 2 { // with the refused subscription's (kept alive), the reserve is full
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "8 connections open", func() bool { return th.Server.OpenConnections() == 8 })
	for range 3 {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		want := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: " + server.RetryAfter +
			"\r\nConnection: close\r\nContent-Length: 23\r\n\r\nthe hub is at capacity\n"
		if err != nil || string(got) != want {
			t.Fatalf("a connection past the reserve got %q, %v; want %q", got, err, want)
		}
	}
	if n := th.Server.OpenConnections(); n != 8 {
		t.Fatalf("%d connections open after the refusals; want 8", n)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitFor(t, "every connection to be closed", func() bool { return th.Server.OpenConnections() == 0 })
}

// TestMaxConnectionsPerIP holds 3 streams from 127.0.0.1 on a hub capped at 3 per address: a
// fourth subscription and a publish from that address get 429 with Retry-After, while another
// address (127.0.0.2) still subscribes; once a stream ends, the address may publish again.
func TestMaxConnectionsPerIP(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.MaxConnectionsPerIP = 3 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		conns = append(conns, dialStream(t, th.URL, "https://example.com/ip", nil))
	}
	c, head := dialRaw(t, th.URL, "https://example.com/ip", nil)
	c.Close()
	if !strings.HasPrefix(head, "HTTP/1.1 429 ") || !strings.Contains(head, "Retry-After: "+server.RetryAfter+"\r\n") {
		t.Fatalf("a fourth subscription from one address: %q", head)
	}
	pub := bearer(mercureToken(t, []string{"*"}, nil))
	form := url.Values{"topic": {"https://example.com/ip"}, "data": {"x"}}.Encode()
	if code, body := th.post(t, "application/x-www-form-urlencoded", form, pub); code != http.StatusTooManyRequests || body != "too many connections from this address\n" {
		t.Fatalf("a publish from the capped address: %d %q", code, body)
	}
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	conns = append(conns, dialStream(t, th.URL, "https://example.com/ip", other))

	conns[0].Close()
	waitFor(t, "the address to be under its cap", func() bool {
		code, _ := th.post(t, "application/x-www-form-urlencoded", form, pub)
		return code == http.StatusOK
	})
}
