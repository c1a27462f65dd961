package server_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
	"github.com/heraldhub/herald/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = testkit.TestKey

// testHub is a hub served over real HTTP on loopback.
type testHub struct {
	URL       string // the hub endpoint: http://127.0.0.1:port/.well-known/mercure
	Hub       *hub.Hub
	Transport transport.Transport
	Server    *server.Server
	Client    *http.Client
	handler   http.Handler
}

// newTestHub starts a hub with an in-memory log and HS256 keys; configure may change the
// server configuration before it starts.
func newTestHub(t testing.TB, configure func(*server.Config)) *testHub {
	t.Helper()
	return newTestHubWith(t, nil, configure)
}

// newTestHubWith is newTestHub with a hook for the hub's configuration too.
func newTestHubWith(t testing.TB, configureHub func(*hub.Config), configure func(*server.Config)) *testHub {
	t.Helper()
	th := testkit.StartHub(t, testkit.HubOptions{
		Hub: func(c *hub.Config) {
			c.QueueSize = 100
			if configureHub != nil {
				configureHub(c)
			}
		},
		Server: func(c *server.Config) {
			// HERALD_TEST_NO_HIJACK runs the suite on net/http's goroutine-per-stream path,
			// which HTTP/2 uses, instead of the hijacked-stream pool.
			c.DisableHijack = os.Getenv("HERALD_TEST_NO_HIJACK") != ""
			if configure != nil {
				configure(c)
			}
		},
	})
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	return &testHub{URL: th.URL, Hub: th.Hub, Transport: th.Transport, Server: th.Server, Client: client, handler: th.Handler}
}

// token signs an HS256 JWT with the test key.
func token(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mercureToken returns a token with the given mercure.publish and mercure.subscribe claims
// (nil leaves a claim out).
func mercureToken(t testing.TB, publish, subscribe []string) string {
	t.Helper()
	m := map[string]any{}
	if publish != nil {
		m["publish"] = publish
	}
	if subscribe != nil {
		m["subscribe"] = subscribe
	}
	return token(t, jwt.MapClaims{"mercure": m})
}

// post sends a publish request and returns the status and body.
func (th *testHub) post(t testing.TB, contentType, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, th.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// publish publishes form with a token allowed to publish anywhere and returns the update's
// id; it fails the test unless the hub answers 200.
func (th *testHub) publish(t testing.TB, form url.Values) string {
	t.Helper()
	code, body := th.post(t, "application/x-www-form-urlencoded", form.Encode(), bearer(mercureToken(t, []string{"*"}, nil)))
	if code != http.StatusOK {
		t.Fatalf("publish: %d %s", code, body)
	}
	return body
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// stream is an open subscription whose events arrive on a channel.
type stream struct {
	Resp   *http.Response
	events chan sse.Message
	errc   chan error
	reader *sse.Reader
}

// subscribe opens a subscription with the raw query and headers; it fails the test unless
// the hub answers 200. The stream is closed at cleanup.
func (th *testHub) subscribe(t testing.TB, query string, header http.Header) *stream {
	t.Helper()
	resp, br := th.rawSubscribe(t, query, header)
	return th.stream(t, resp, br)
}

// stream reads the events of a subscription whose opening comment was read from br.
func (th *testHub) stream(t testing.TB, resp *http.Response, br *bufio.Reader) *stream {
	s := &stream{Resp: resp, events: make(chan sse.Message, 10_000), errc: make(chan error, 1)}
	s.reader = sse.NewReader(br)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := s.reader.Next()
			if err != nil {
				s.errc <- err
				return
			}
			s.events <- m
		}
	}()
	t.Cleanup(func() { resp.Body.Close(); <-done })
	return s
}

// rawSubscribe opens a subscription and checks its status and opening comment, which the hub
// sends at once; it returns the response and a reader positioned after that comment.
func (th *testHub) rawSubscribe(t testing.TB, query string, header http.Header) (*http.Response, *bufio.Reader) {
	t.Helper()
	return th.opened(t, query, th.open(t, query, header))
}

// opened checks that resp, the answer to a subscribe request, is a stream and reads its opening
// comment.
func (th *testHub) opened(t testing.TB, query string, resp *http.Response) (*http.Response, *bufio.Reader) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("subscribe %s: %d %s", query, resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != ":\n" {
		t.Fatalf("first line of the stream = %q, %v; want \":\\n\"", line, err)
	}
	return resp, br
}

// open sends a subscribe request and returns the response, closed at cleanup.
func (th *testHub) open(t testing.TB, query string, header http.Header) *http.Response {
	t.Helper()
	return th.openMethod(t, http.MethodGet, query, nil, header)
}

// openMethod sends a subscribe request with this method and body (nil for none).
func (th *testHub) openMethod(t testing.TB, method, query string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, th.URL+"?"+query, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// next waits for the next event.
func (s *stream) next(t testing.TB) sse.Message {
	t.Helper()
	select {
	case m := <-s.events:
		return m
	case err := <-s.errc:
		t.Fatalf("stream ended before the next event: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sse.Message{}
}

// expectNothing checks that no event arrives within d.
func (s *stream) expectNothing(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case m := <-s.events:
		t.Fatalf("unexpected event %+v", m)
	case <-time.After(d):
	}
}

// ended waits for the stream to end and returns the reading error (io.EOF for a clean end).
func (s *stream) ended(t testing.TB) error {
	t.Helper()
	select {
	case err := <-s.errc:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5s")
	}
	return nil
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialStream opens an anonymous subscription to topic on a raw connection (from dialer, nil
// for the default) and reads its response head, keeping no buffer; it fails the test unless
// the hub answers 200.
func dialStream(t testing.TB, hubURL, topic string, dialer *net.Dialer) net.Conn {
	t.Helper()
	c, head := dialRaw(t, hubURL, topic, dialer)
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		c.Close()
		t.Fatalf("response: %q", head)
	}
	return c
}

// dialRaw sends an anonymous subscription request to topic on a new connection and returns
// the connection and the response head.
func dialRaw(t testing.TB, hubURL, topic string, dialer *net.Dialer) (net.Conn, string) {
	t.Helper()
	u, err := url.Parse(hubURL)
	if err != nil {
		t.Fatal(err)
	}
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	c, err := dialer.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	req := "GET " + u.Path + "?topic=" + url.QueryEscape(topic) + " HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		t.Fatal(err)
	}
	var head []byte
	buf := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !bytes.Contains(head, []byte("\r\n\r\n")) {
		k, err := c.Read(buf)
		if err != nil {
			c.Close()
			t.Fatalf("reading the response head: %v (read %q)", err, head)
		}
		head = append(head, buf[:k]...)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, string(head)
}
