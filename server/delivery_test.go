package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

func TestPrivateAndSelectors(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	books := "https://example.com/books/{id}"
	anonymous := th.subscribe(t, "topic="+url.QueryEscape(books), nil)
	authorised := th.subscribe(t, "topic="+url.QueryEscape(books), bearer(mercureToken(t, nil, []string{books})))
	otherClaim := th.subscribe(t, "topic="+url.QueryEscape(books), bearer(mercureToken(t, nil, []string{"https://example.com/authors/{id}"})))
	wildcard := th.subscribe(t, "topic=*", bearer(mercureToken(t, nil, []string{"*"})))
	exact := th.subscribe(t, "topic=https://example.com/books/2&topic=https://example.com/books/1", nil)

	th.publish(t, publishForm("topic", "https://example.com/books/1", "id", "pub1", "data", "public"))
	th.publish(t, publishForm("topic", "https://example.com/books/1", "id", "priv1", "private", "on", "data", "secret"))
	th.publish(t, publishForm("topic", "https://example.com/books/1/chapters/2", "id", "deep", "data", "not a match for {id}"))
	// An update with two topics reaches a subscriber once even when both match.
	th.publish(t, publishForm("topic", "https://example.com/books/2", "topic", "https://example.com/books/1", "id", "two-topics"))
	th.publish(t, publishForm("topic", "end", "id", "end"))

	check := func(name string, s *stream, want ...string) {
		t.Helper()
		for _, id := range want {
			if m := s.next(t); m.ID != id {
				t.Fatalf("%s: got event %q, want %q", name, m.ID, id)
			}
		}
		s.expectNothing(t, 50*time.Millisecond)
	}
	check("anonymous", anonymous, "pub1", "two-topics")
	check("authorised", authorised, "pub1", "priv1", "two-topics")
	check("claim for other topics", otherClaim, "pub1", "two-topics")
	check("wildcard", wildcard, "pub1", "priv1", "deep", "two-topics", "end")
	check("two exact selectors", exact, "pub1", "two-topics")
}

func TestTokenCarriers(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.CookieName = "herald" })
	tok := mercureToken(t, nil, []string{"t"})
	streams := map[string]*stream{
		"header": th.subscribe(t, "topic=t", bearer(tok)),
		"query":  th.subscribe(t, "topic=t&authorization="+tok, nil),
		"cookie": th.subscribe(t, "topic=t", http.Header{"Cookie": {"herald=" + tok}}),
	}
	// The header wins over a bad cookie: precedence is header, query, cookie.
	streams["header over cookie"] = th.subscribe(t, "topic=t", http.Header{"Authorization": {"Bearer " + tok}, "Cookie": {"herald=garbage"}})
	th.publish(t, publishForm("topic", "t", "id", "p", "private", "1"))
	for name, s := range streams {
		if m := s.next(t); m.ID != "p" {
			t.Errorf("%s: got %q", name, m.ID)
		}
	}
	// A present but invalid carrier is refused, not skipped.
	resp := th.open(t, "topic=t", http.Header{"Cookie": {"herald=garbage"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bad cookie: got %d", resp.StatusCode)
	}
}

func TestHeadSubscribe(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	req, _ := http.NewRequest(http.MethodHead, th.URL+"?topic=a", nil)
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	waitFor(t, "the HEAD subscriber to be removed", func() bool { return th.Hub.Subscribers() == 0 })
}

func TestGzipNeverBuffersTheStream(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	resp, br := th.rawSubscribe(t, "topic=a", http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		t.Fatalf("the stream is encoded with %q", ce)
	}
	th.publish(t, publishForm("topic", "a", "id", "x", "data", "now"))
	if got, want := readN(t, br, len("id: x\ndata: now\n\n")), "id: x\ndata: now\n\n"; got != want {
		t.Fatalf("got %q", got)
	}
}

func TestHeartbeatOnlyWhenIdle(t *testing.T) {
	const beat = 600 * time.Millisecond
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.Heartbeat = beat })
	_, br := th.rawSubscribe(t, "topic=a", nil)
	last := time.Now() // when the last event (or the opening comment) came
	type line struct {
		text string
		at   time.Time
	}
	lines := make(chan line, 1000)
	go func() {
		defer close(lines)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- line{l, time.Now()}
		}
	}()
	// Busy: an update every beat/4 for 3 beats. A heartbeat may only follow a silence: on a
	// loaded machine a publish may take longer than a beat, and then one is due. The silence
	// seen here may look shorter than the hub's by the jitter of delivery, hence the margin.
	stop := time.Now().Add(3 * beat)
	for i := 0; time.Now().Before(stop); i++ {
		th.publish(t, publishForm("topic", "a", "id", "busy"+strconv.Itoa(i)))
		time.Sleep(beat / 4)
	}
	deadline := time.After(beat / 2)
drain:
	for {
		select {
		case l := <-lines:
			if l.text == ":\n" {
				if gap := l.at.Sub(last); gap < beat/2 {
					t.Fatalf("a heartbeat came %v after the previous event on a busy stream", gap)
				}
			}
			if l.text != "\n" {
				last = l.at
			}
		case <-deadline:
			break drain
		}
	}
	// Idle: a heartbeat comes about one beat after the last write.
	start := time.Now()
	for {
		select {
		case l := <-lines:
			if l.text == ":\n" {
				if d := time.Since(start); d > 3*beat {
					t.Fatalf("heartbeat after %v, want about %v", d, beat)
				}
				return
			}
		case <-time.After(4 * beat):
			t.Fatal("no heartbeat on an idle stream")
		}
	}
}

func TestStreamLifetime(t *testing.T) {
	t.Run("write timeout with jitter", func(t *testing.T) {
		th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.WriteTimeout = 400 * time.Millisecond })
		start := time.Now()
		s := th.subscribe(t, "topic=a", nil)
		if err := s.ended(t); err != io.EOF {
			t.Fatalf("the stream ended with %v, want a clean end", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
			t.Fatalf("the stream lasted %v, want 320-400ms", d)
		}
	})
	t.Run("token expiry", func(t *testing.T) {
		th := newTestHub(t, nil)
		exp := time.Now().Add(1500 * time.Millisecond)
		tok := token(t, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"*"}}, "exp": exp.Unix()})
		s := th.subscribe(t, "topic=a", bearer(tok))
		if err := s.ended(t); err != io.EOF {
			t.Fatalf("the stream ended with %v", err)
		}
		// exp has one-second precision: the stream ends at the second exp names.
		if d := time.Until(time.Unix(exp.Unix(), 0)); d > 100*time.Millisecond {
			t.Fatalf("the stream ended %v before the token expired", d)
		}
	})
}

func TestReconnectWithLastEventIDWhilePublishing(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	const total = 600
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			th.publish(t, publishForm("topic", "a", "id", fmt.Sprintf("u%04d", i), "data", strconv.Itoa(i)))
		}
	}()
	var got, firsts []string
	last := "earliest" // the first connection may start after the first publishes
	for len(got) < total {
		firsts = append(firsts, fmt.Sprintf("%d:%s", len(got), last))
		s := th.subscribe(t, "topic=a", http.Header{"Last-Event-ID": {last}})
		if s.Resp.Header.Get("Last-Event-ID") != last {
			t.Fatalf("Last-Event-ID header %q, want %q", s.Resp.Header.Get("Last-Event-ID"), last)
		}
		// Read a few events, then drop the connection, as a flaky network would.
		for range 37 {
			if len(got) == total {
				break
			}
			var m sse.Message
			select {
			case m = <-s.events:
			case err := <-s.errc:
				t.Fatalf("after %d events (last %q): stream ended: %v", len(got), last, err)
			case <-time.After(5 * time.Second):
				head, _ := th.Transport.Head(context.Background())
				for i, id := range got {
					if want := fmt.Sprintf("u%04d", i); id != want {
						t.Errorf("event %d is %q, want %q (lost or duplicated)", i, id, want)
						break
					}
				}
				t.Fatalf("after %d events (last %q, header %q): nothing for 5s; head %d, subscribers %d; connections' first ids: %v", len(got), last, s.Resp.Header.Get("Last-Event-ID"), head, th.Hub.Subscribers(), firsts)
			}
			got = append(got, m.ID)
			last = m.ID
		}
		s.Resp.Body.Close()
	}
	wg.Wait()
	for i, id := range got {
		if want := fmt.Sprintf("u%04d", i); id != want {
			t.Fatalf("event %d is %q, want %q (lost or duplicated)", i, id, want)
		}
	}
}

func TestHistoryReplay(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	th.publish(t, publishForm("topic", "a", "id", "1"))
	th.publish(t, publishForm("topic", "b", "id", "2"))
	th.publish(t, publishForm("topic", "a", "id", "3", "private", "1"))
	th.publish(t, publishForm("topic", "a", "id", "4"))
	tests := []struct {
		name, query, lastEventID, header string
		want                             []string
	}{
		{"earliest", "topic=a&lastEventID=earliest", "", "earliest", []string{"1", "4"}},
		{"known id in header", "topic=a", "1", "1", []string{"4"}},
		{"known id in query", "topic=a&lastEventID=2", "", "2", []string{"4"}},
		{"old query name", "topic=a&Last-Event-ID=2", "", "2", []string{"4"}},
		{"unknown id replays all retained", "topic=a", "nope", "earliest", []string{"1", "4"}},
		{"header over query", "topic=a&lastEventID=earliest", "4", "4", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.lastEventID != "" {
				h.Set("Last-Event-ID", tc.lastEventID)
			}
			s := th.subscribe(t, tc.query, h)
			if got := s.Resp.Header.Get("Last-Event-ID"); got != tc.header {
				t.Errorf("Last-Event-ID header %q, want %q", got, tc.header)
			}
			for _, id := range tc.want {
				if m := s.next(t); m.ID != id {
					t.Fatalf("got %q, want %q", m.ID, id)
				}
			}
			s.expectNothing(t, 50*time.Millisecond)
		})
	}
}

func TestSlowSubscriberIsDisconnected(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 300 * time.Millisecond })
	fast := th.subscribe(t, "topic=a", nil)
	// The slow client sends its request and never reads.
	addr := strings.TrimPrefix(strings.TrimSuffix(th.URL, server.Path), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET %s?topic=a HTTP/1.1\r\nHost: %s\r\n\r\n", server.Path, addr)
	waitFor(t, "two subscribers", func() bool { return th.Hub.Subscribers() == 2 })

	const total = 300
	payload := strings.Repeat("x", 32<<10)
	received := make(chan []string, 1)
	go func() {
		var ids []string
		for len(ids) < total {
			select {
			case m := <-fast.events:
				ids = append(ids, m.ID)
			case <-time.After(10 * time.Second):
				received <- ids
				return
			}
		}
		received <- ids
	}()
	for i := range total {
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	waitFor(t, "the slow subscriber to be dropped", func() bool { return th.Hub.Subscribers() == 1 })
	ids := <-received
	if len(ids) != total {
		t.Fatalf("the fast subscriber got %d of %d events", len(ids), total)
	}
	for i, id := range ids {
		if id != strconv.Itoa(i) {
			t.Fatalf("fast subscriber: event %d is %q", i, id)
		}
	}
}

func TestHTTP2Stream(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	resp := subscribeOverTLS(t, th, true)
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
	th.publish(t, publishForm("topic", "a", "id", "h2", "data", "over h2"))
	want := ":\nid: h2\ndata: over h2\n\n"
	if got := readN(t, resp.Body, len(want)); got != want {
		t.Fatalf("got %q", got)
	}
}

// dialStalled opens a subscription on a raw connection with a receive buffer of rcvbuf bytes
// and reads nothing, so that the hub's side of the socket fills up. (A buffer smaller than a
// loopback segment, 64 KiB, makes TCP crawl once reading starts: it then sends only when its
// persist timer fires.)
func dialStalled(t *testing.T, th *testHub, query string, rcvbuf int) (net.Conn, *http.Request) {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimSuffix(th.URL, server.Path), "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(rcvbuf)
	req, err := http.NewRequest(http.MethodGet, th.URL+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	return conn, req
}

// A client that stops reading long enough for the socket to fill, but less than
// dispatch_timeout and within its queue's bounds, gets every event once it reads again: what
// the socket did not take waits, then goes out in order.
func TestFullSocketThenResume(t *testing.T) {
	th := newTestHubWith(t, func(c *hub.Config) { c.QueueSize = 1000 },
		func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 20 * time.Second })
	conn, req := dialStalled(t, th, "topic=a", 128<<10)
	waitFor(t, "the subscriber", func() bool { return th.Hub.Subscribers() == 1 })

	const total = 400 // 400 × 16 KiB: far more than the socket buffers of both sides hold
	payload := strings.Repeat("y", 16<<10)
	for i := range total {
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	time.Sleep(200 * time.Millisecond) // the hub writes until the socket is full

	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	// Not resp.Body.Close: it would read the endless stream to its end. Cleanup closes conn.
	r := sse.NewReader(bufio.NewReader(resp.Body))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := range total {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if m.ID != strconv.Itoa(i) || m.Data != payload {
			t.Fatalf("event %d: id %q, %d bytes of data", i, m.ID, len(m.Data))
		}
	}
	if n := th.Hub.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers after reading everything, want 1", n)
	}
}

// A client whose socket stays full for longer than dispatch_timeout is dropped, even though
// its queue never overflows.
func TestFullSocketTooLongIsDropped(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 300 * time.Millisecond })
	dialStalled(t, th, "topic=a", 4096)
	waitFor(t, "the subscriber", func() bool { return th.Hub.Subscribers() == 1 })
	payload := strings.Repeat("z", 256<<10)
	for i := range 40 { // 10 MiB: fills the sockets, well within the queue's 1000 events and 16 MiB
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	start := time.Now()
	waitFor(t, "the stalled subscriber to be dropped", func() bool { return th.Hub.Subscribers() == 0 })
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("dropped after %v, want about dispatch_timeout (300ms)", d)
	}
}

// An HTTP/1.1 stream over TLS is hijacked too, but written through its tls.Conn (it cannot
// leave Go's poller): its events arrive intact, and it ends cleanly when the client leaves.
func TestHTTP1StreamOverTLS(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	resp := subscribeOverTLS(t, th, false)
	if resp.ProtoMajor != 1 || resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("%s %d, TLS %v", resp.Proto, resp.StatusCode, resp.TLS != nil)
	}
	for i := range 3 {
		th.publish(t, publishForm("topic", "a", "id", fmt.Sprint("t", i), "data", "over TLS"))
	}
	want := ":\nid: t0\ndata: over TLS\n\nid: t1\ndata: over TLS\n\nid: t2\ndata: over TLS\n\n"
	if got := readN(t, resp.Body, len(want)); got != want {
		t.Fatalf("got %q", got)
	}
	resp.Body.Close()
	waitFor(t, "the subscriber to go", func() bool { return th.Hub.Subscribers() == 0 })
}

// serveTLS serves th's handler over TLS too, with HTTP/2 or HTTP/1.1 only, until cleanup; it
// returns the hub endpoint there and a client that trusts it.
func serveTLS(t *testing.T, th *testHub, http2 bool) (hubURL string, client *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(th.handler)
	ts.EnableHTTP2 = http2
	ts.StartTLS()
	t.Cleanup(ts.Close)
	client = ts.Client()
	t.Cleanup(client.CloseIdleConnections)
	return ts.URL + server.Path, client
}

// subscribeOverTLS serves th's handler over TLS, with HTTP/2 or HTTP/1.1 only, and
// subscribes to topic a there.
func subscribeOverTLS(t *testing.T, th *testHub, http2 bool) *http.Response {
	t.Helper()
	hubURL, client := serveTLS(t, th, http2)
	resp, err := client.Get(hubURL + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A stream whose lifetime ends while its socket is full ends cleanly once the client has
// read what was waiting: every event it was sent arrives, in order, then the last chunk.
func TestLifetimeEndsAfterFullSocketDrains(t *testing.T) {
	// The lifetime must end after the socket is full: on a loaded machine, publishing may
	// outlast a short one, and the test tries again with a longer one.
	for _, lifetime := range []time.Duration{1500 * time.Millisecond, 4 * time.Second, 10 * time.Second} {
		if lifetimeEndsAfterFullSocketDrains(t, lifetime) {
			return
		}
		t.Logf("publishing outlasted a lifetime of %v; trying a longer one", lifetime)
	}
	t.Fatal("publishing outlasted every lifetime tried")
}

// lifetimeEndsAfterFullSocketDrains is one try of TestLifetimeEndsAfterFullSocketDrains; it
// reports false when the stream's lifetime may have ended before its socket was full.
func lifetimeEndsAfterFullSocketDrains(t *testing.T, lifetime time.Duration) bool {
	th := newTestHubWith(t, func(c *hub.Config) { c.QueueSize = 1000 }, func(c *server.Config) {
		c.Anonymous = true
		c.DispatchTimeout = 20 * time.Second
		c.WriteTimeout = lifetime // each stream gets 80 to 100 % of it
	})
	start := time.Now()
	conn, req := dialStalled(t, th, "topic=a", 128<<10)
	waitFor(t, "the subscriber", func() bool { return th.Hub.Subscribers() == 1 })
	payload := strings.Repeat("w", 16<<10)
	for i := range 400 {
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	if time.Since(start) > lifetime*7/10 {
		return false
	}
	time.Sleep(time.Until(start.Add(lifetime + 500*time.Millisecond))) // the lifetime ends while the socket is full
	if n := th.Hub.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers while the socket is full, want 1 (the stream waits for it)", n)
	}

	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	r := sse.NewReader(bufio.NewReader(resp.Body))
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	n := 0
	for ; ; n++ {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		if m.ID != strconv.Itoa(n) || m.Data != payload {
			t.Fatalf("event %d: id %q, %d bytes of data", n, m.ID, len(m.Data))
		}
	}
	if n == 0 {
		t.Fatal("no event before the end of the stream")
	}
	waitFor(t, "the stream to be gone", func() bool { return th.Hub.Subscribers() == 0 })
	return true
}
