package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// tlsHub is a test hub served over HTTPS the way herald serve does it: through the hub's
// Listener and TLSConfig.
type tlsHub struct {
	*testHub
	URL      string // https://127.0.0.1:port/.well-known/mercure
	Roots    *x509.CertPool
	CertFile string // the certificate, PEM, for curl
	Cert     *x509.Certificate
	srv      *http.Server
}

// serveHubTLS serves th over HTTPS until cleanup, offering protos (default HTTP/2 and
// HTTP/1.1).
func serveHubTLS(t *testing.T, th *testHub, protos ...string) *tlsHub {
	t.Helper()
	return serveHubTLSWith(t, th, nil, protos...)
}

// serveHubTLSWith is serveHubTLS with a hook for the http.Server before it starts.
func serveHubTLSWith(t *testing.T, th *testHub, configure func(*http.Server), protos ...string) *tlsHub {
	t.Helper()
	cert := testkit.SelfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:           th.handler,
		ReadHeaderTimeout: 2 * time.Second,
		TLSConfig:         th.Server.TLSConfig(&tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12, NextProtos: protos}),
	}
	if configure != nil {
		configure(srv)
	}
	th.Server.EnableHTTP2(srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(th.Server.Listener(ln, true), "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	certFile := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certFile, cert.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tlsHub{testHub: th, URL: "https://" + ln.Addr().String() + server.Path, Roots: cert.Roots, CertFile: certFile, Cert: cert.TLS.Leaf, srv: srv}
}

// sealing reports whether this run serves HTTP/1.1 streams hijacked (HERALD_TEST_NO_HIJACK:
// see newTestHubWith), so that TLS 1.3 ones seal their own records.
func sealing() bool { return os.Getenv("HERALD_TEST_NO_HIJACK") == "" }

// sealedOf returns how many of n HTTP/1.1 streams over TLS 1.3 seal their records in this run.
func sealedOf(n int) int {
	if sealing() {
		return n
	}
	return 0
}

// needSealing skips a test of what only sealed streams do.
func needSealing(t *testing.T) {
	if !sealing() {
		t.Skip("only hijacked TLS 1.3 streams seal their own records")
	}
}

// client returns an HTTP/1.1 client of th limited to TLS versions [minV, maxV].
func (th *tlsHub) client(t *testing.T, minV, maxV uint16) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: th.Roots, MinVersion: minV, MaxVersion: maxV},
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// payloads are event data of sizes around TLS's record size: a stream sealing its own
// records must split them and the client join them.
var payloads = []string{"small", strings.Repeat("r", 16<<10-40), strings.Repeat("s", 16<<10), strings.Repeat("t", 70<<10+3)}

// checkPayloads publishes payloads to topic a and checks that body carries exactly them.
func checkPayloads(t *testing.T, th *testHub, body io.Reader) {
	t.Helper()
	for i, p := range payloads {
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", p))
	}
	r := sse.NewReader(bufio.NewReader(body))
	for i, p := range payloads {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if m.ID != strconv.Itoa(i) || m.Data != p {
			t.Fatalf("event %d: id %q, %d bytes of data, want %d", i, m.ID, len(m.Data), len(p))
		}
	}
}

// A TLS 1.3 stream sheds its tls.Conn and seals its own records, which a Go client reads as
// any TLS stream; a TLS 1.2 stream keeps its tls.Conn. Both get every event, and go when
// the client does.
func TestTLSStreamsSealTheirRecords(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      uint16
		sealed int
	}{{"TLS 1.3", tls.VersionTLS13, 1}, {"TLS 1.2", tls.VersionTLS12, 0}} {
		t.Run(c.name, func(t *testing.T) {
			th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
			resp, err := th.client(t, c.v, c.v).Get(th.URL + "?topic=a")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 || resp.TLS.Version != c.v {
				t.Fatalf("%d %s, TLS version %#x", resp.StatusCode, resp.Proto, resp.TLS.Version)
			}
			waitFor(t, "the stream in the pool", func() bool { return th.Server.SealedStreams() == sealedOf(c.sealed) && th.Hub.Subscribers() == 1 })
			checkPayloads(t, th.testHub, resp.Body)
			resp.Body.Close()
			waitFor(t, "the subscriber to go", func() bool { return th.Hub.Subscribers() == 0 })
		})
	}
}

// curl over HTTP/1.1 with TLS 1.3 (each of its cipher suites) and 1.2, and over HTTP/2, gets
// every event.
func TestTLSStreamsWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is missing")
		}
		t.Skip("curl is missing")
	}
	for _, c := range []struct {
		name   string
		args   []string
		sealed int
	}{
		{"HTTP/1.1 TLS 1.3 AES-128-GCM", []string{"--http1.1", "--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"}, 1},
		{"HTTP/1.1 TLS 1.3 AES-256-GCM", []string{"--http1.1", "--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"}, 1},
		{"HTTP/1.1 TLS 1.3 ChaCha20-Poly1305", []string{"--http1.1", "--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"}, 1},
		{"HTTP/1.1 TLS 1.2", []string{"--http1.1", "--tlsv1.2", "--tls-max", "1.2"}, 0},
		{"HTTP/2", []string{"--http2"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
			args := append([]string{"-sS", "-N", "--cacert", th.CertFile, "-m", "20"}, c.args...)
			cmd := exec.Command("curl", append(args, th.URL+"?topic=a")...)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			waitFor(t, "curl's subscription", func() bool { return th.Hub.Subscribers() == 1 && th.Server.SealedStreams() == sealedOf(c.sealed) })
			checkPayloads(t, th.testHub, out)
			_ = cmd.Process.Kill()
			waitFor(t, "the subscriber to go", func() bool { return th.Hub.Subscribers() == 0 })
		})
	}
}

// dialTLS opens a TLS 1.3 connection to th on conn (dialled when nil), sends a subscription
// to topic a and reads the response head and opening comment.
func (th *tlsHub) dialTLS(t *testing.T, conn net.Conn) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	if conn == nil {
		var err error
		if conn, err = net.Dial("tcp", addr); err != nil {
			t.Fatal(err)
		}
	}
	tc := tls.Client(conn, &tls.Config{RootCAs: th.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}})
	t.Cleanup(func() { conn.Close() }) // not tc, which a test may drop
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(tc, "GET %s?topic=a HTTP/1.1\r\nHost: %s\r\n\r\n", server.Path, addr); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	if line, _ := br.ReadString('\n'); line != "2\r\n" {
		t.Fatalf("first chunk %q", line)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, br
}

// Whatever a client sends on a stream that seals its own records (here close_notify) ends
// the stream: the hub cannot read it.
func TestSealedStreamEndsWhenClientSends(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	tc, _ := th.dialTLS(t, nil)
	waitFor(t, "the sealed stream", func() bool { return th.Server.SealedStreams() == 1 })
	if err := tc.CloseWrite(); err != nil { // close_notify
		t.Fatal(err)
	}
	waitFor(t, "the subscriber to go", func() bool { return th.Hub.Subscribers() == 0 })
}

// A sealed stream whose lifetime ends sends the last chunk and close_notify: the client sees
// a clean end of the TLS stream, not a truncation.
func TestSealedStreamEndsCleanly(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.WriteTimeout = 500 * time.Millisecond }))
	tc, br := th.dialTLS(t, nil)
	_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("after %q: %v, want a clean end (close_notify)", rest, err)
	}
	if want := ":\n\r\n0\r\n\r\n"; string(rest) != want {
		t.Fatalf("got %q, want %q", rest, want)
	}
}

// A TLS client that stops reading is dropped once its socket has been full for longer than
// dispatch_timeout; another subscriber of the same topic gets every event meanwhile.
func TestSealedStreamStalledIsDropped(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHubWith(t, func(c *hub.Config) { c.QueueSize = 1000 },
		func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 300 * time.Millisecond }))
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.(*net.TCPConn).SetReadBuffer(4096)
	th.dialTLS(t, raw) // then reads nothing
	resp, err := th.client(t, tls.VersionTLS13, tls.VersionTLS13).Get(th.URL + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "both sealed streams", func() bool { return th.Server.SealedStreams() == 2 })
	payload := strings.Repeat("z", 256<<10)
	got := make(chan error, 1)
	go func() {
		r := sse.NewReader(bufio.NewReader(resp.Body))
		for i := range 40 {
			m, err := r.Next()
			if err == nil && (m.ID != strconv.Itoa(i) || m.Data != payload) {
				err = fmt.Errorf("event %d: id %q, %d bytes", i, m.ID, len(m.Data))
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	for i := range 40 { // 10 MiB
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	waitFor(t, "the stalled subscriber to be dropped", func() bool { return th.Hub.Subscribers() == 1 })
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the reading subscriber did not get every event")
	}
}

// A client that never finishes its handshake is cut off (net/http's handshake timeout, from
// ReadHeaderTimeout), and never reaches the hub.
func TestUnfinishedHandshakeIsCutOff(t *testing.T) {
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte{22, 3, 1, 0, 200, 1}); err != nil { // the start of a ClientHello
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was still open after 10s")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cut off after %v, want about 2s", d)
	}
	waitFor(t, "the connection to leave the count", func() bool { return th.Server.OpenConnections() == 0 })
}

// A sealed stream drops its cipher while idle and makes it again for the next write: the
// heartbeats, then the events after them, arrive intact.
func TestSealedStreamAfterHeartbeats(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.Heartbeat = 50 * time.Millisecond }))
	resp, err := th.client(t, tls.VersionTLS13, tls.VersionTLS13).Get(th.URL + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "the sealed stream", func() bool { return th.Server.SealedStreams() == 1 })
	br := bufio.NewReader(resp.Body)
	for range 4 { // the opening comment, then heartbeats
		if line, err := br.ReadString('\n'); err != nil || line != ":\n" {
			t.Fatalf("read %q, %v; want a comment", line, err)
		}
	}
	checkPayloads(t, th.testHub, br)
}

// TestIdleSealedStreamHeap is TestIdleStreamHeap over TLS 1.3: an idle sealed stream keeps
// no tls.Conn, no record buffer and no cipher, only its key and record number. The clients
// drop their tls.Conn once the stream is open and keep the socket: about 1 540 bytes here,
// both ends and the test's cleanups counted (a plain stream: about 910); a stream that kept
// its tls.Conn (7 KiB) or its cipher (1 KiB) is above the bound.
func TestIdleSealedStreamHeap(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }))
	open := func() net.Conn {
		tc, _ := th.dialTLS(t, nil)
		return tc.NetConn() // the tls.Conn is dropped, unclosed
	}
	perStream := idleHeapPerStream(t, 500, open, func(n int) bool { return th.Hub.Subscribers() == n && th.Server.SealedStreams() == n })
	t.Logf("%.0f bytes of heap per idle sealed stream, both ends", perStream)
	if perStream > 2000 {
		t.Errorf("%.0f bytes of heap per idle sealed stream, both ends; want at most 2000", perStream)
	}
}

// recordingConn keeps a copy of every byte read from its connection.
type recordingConn struct {
	net.Conn
	read bytes.Buffer
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Write(b[:n])
	return n, err
}

// A stream whose replay fails once it has sealed records (here the hub shuts down while the
// replay waits on a full socket) is closed without its dropped tls.Conn writing again: a
// close_notify from the tls.Conn would reuse the sequence number, so the nonce, of the first
// record the stream sealed. Every record the client reads opens at the next number in turn.
func TestSealedReplayFailureReusesNoNonce(t *testing.T) {
	needSealing(t)
	th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true; c.DispatchTimeout = 20 * time.Second }))
	th.publish(t, publishForm("topic", "a", "id", "start", "data", "x"))
	payload := strings.Repeat("z", 256<<10)
	for i := range 80 { // 20 MiB of history, more than the sockets hold
		th.publish(t, publishForm("topic", "a", "id", strconv.Itoa(i), "data", payload))
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(th.URL, "https://"), server.Path)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rec := &recordingConn{Conn: raw}
	var keyLog bytes.Buffer
	tc := tls.Client(rec, &tls.Config{RootCAs: th.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}, KeyLogWriter: &keyLog})
	_ = raw.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := fmt.Fprintf(tc, "GET %s?topic=a HTTP/1.1\r\nHost: %s\r\nLast-Event-ID: start\r\n\r\n", server.Path, addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the subscriber", func() bool { return th.Hub.Subscribers() == 1 })
	time.Sleep(300 * time.Millisecond) // the replay fills the sockets and waits
	th.Hub.Shutdown()
	if _, err := io.Copy(io.Discard, rec); err != nil {
		t.Fatalf("%v after %d bytes, %d subscribers", err, rec.read.Len(), th.Hub.Subscribers())
	}

	var secret []byte
	for _, line := range strings.Split(keyLog.String(), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "SERVER_TRAFFIC_SECRET_0" {
			secret, _ = hex.DecodeString(f[2])
		}
	}
	suite := tc.ConnectionState().CipherSuite
	wire := rec.read.Bytes()
	seq, records, last := uint64(0), 0, []byte(nil)
	for len(wire) > 0 {
		if len(wire) < 5 || len(wire) < 5+int(binary.BigEndian.Uint16(wire[3:])) {
			t.Fatalf("a truncated record after %d records under the traffic key", records)
		}
		n := 5 + int(binary.BigEndian.Uint16(wire[3:]))
		record := wire[:n]
		wire = wire[n:]
		if record[0] != 23 {
			continue // the handshake's plaintext records
		}
		if plain, err := server.OpenRecord(suite, secret, seq, record); err == nil {
			last = plain
			seq++
			records++
			continue
		}
		if records == 0 {
			continue // under the handshake's key
		}
		for used := range seq {
			if _, err := server.OpenRecord(suite, secret, used, record); err == nil {
				t.Fatalf("record %d of the traffic key opens at sequence number %d, already used by another record: nonce reused", records, used)
			}
		}
		t.Fatalf("record %d of the traffic key does not open at %d", records, seq)
	}
	if records < 80 {
		t.Fatalf("%d records under the traffic key, want the replay's", records)
	}
	if bytes.Equal(last, []byte{1, 0, 21}) {
		t.Fatal("the stream ended cleanly: the replay was over before the shutdown, which this test needs to interrupt it")
	}
}
