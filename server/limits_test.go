package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/server"
)

// rawPublish is a publish sent on its own connection by hand, so that it can stall.
type rawPublish struct {
	conn net.Conn
	br   *bufio.Reader
}

// startPublish dials the hub and sends a publish whose headers announce length body bytes
// (-1: chunked) and whose body is body; it does not close the request, so a body shorter than
// length stalls. The connection is closed at cleanup.
func startPublish(t testing.TB, th *testHub, tok string, length int, body []byte) (*rawPublish, error) {
	t.Helper()
	u, err := url.Parse(th.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	framing := fmt.Sprintf("Content-Length: %d", length)
	if length < 0 {
		framing = "Transfer-Encoding: chunked"
		body = fmt.Appendf(nil, "%x\r\n%s\r\n", len(body), body) // one chunk, and no last chunk
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\n%s\r\n\r\n", u.Path, u.Host, tok, form, framing)
	// Headers and body in one write: the body's time starts with the handler.
	bufs := net.Buffers{[]byte(head), body}
	if _, err := bufs.WriteTo(c); err != nil {
		return nil, err
	}
	return &rawPublish{conn: c, br: bufio.NewReader(c)}, nil
}

// answer reads the hub's answer, within 5 s. Its header keeps Connection, which
// http.ReadResponse turns into Response.Close.
func (p *rawPublish) answer(t testing.TB) (code int, header http.Header, body string) {
	t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	if resp.Close {
		resp.Header.Set("Connection", "close")
	}
	return resp.StatusCode, resp.Header, string(b)
}

// timedOut checks the exact answer to a body that did not arrive within timeout: 408, the
// reason, Connection: close, and the connection closed after it. It may run on any goroutine.
func (p *rawPublish) timedOut(timeout time.Duration) error {
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the answer's body: %w", err)
	}
	if want := fmt.Sprintf("the body did not arrive within %s\n", timeout); resp.StatusCode != http.StatusRequestTimeout || string(b) != want || !resp.Close {
		return fmt.Errorf("answer %d %q (close %t), want 408 %q and Connection: close", resp.StatusCode, b, resp.Close, want)
	}
	// The hub closes the connection: EOF, or a reset if some of the body was still unread.
	if n, err := p.br.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("after the answer: read %d bytes, %v; want the connection closed", n, err)
	}
	return nil
}

// expectTimeout fails the test unless the answer is a body timeout (see timedOut).
func (p *rawPublish) expectTimeout(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := p.timedOut(timeout); err != nil {
		t.Fatal(err)
	}
}

// heapAlloc returns the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// formBody returns a publish form of exactly n bytes.
func formBody(n int) []byte {
	const prefix = "topic=https://example.com/a&data="
	return []byte(prefix + strings.Repeat("x", n-len(prefix)))
}

// Three hundred publishers that send 1 048 000 of 1 048 576 announced bytes and stall each
// get 408 within read_timeout and lose their connection; the memory their bodies held comes
// back, and other publishes are served meanwhile and after.
func TestStalledBodiesTimeOut(t *testing.T) {
	const (
		stalled  = 300
		announce = 1 << 20
		sent     = 1_048_000
		timeout  = 300 * time.Millisecond
		// Publishers sending at once: each must get its megabyte through within timeout,
		// under -race and on a loaded machine too.
		sending = 4
	)
	m := metrics.New()
	th := newTestHub(t, func(c *server.Config) {
		c.ReadTimeout = timeout
		c.MaxInflightBodyBytes = stalled * announce // room for all: this test is about time
		c.Metrics = m
	})
	tok := mercureToken(t, []string{"*"}, nil)
	body := formBody(sent)
	th.publish(t, url.Values{"topic": {"https://example.com/a"}, "data": {"before"}}) // warm up
	before := heapAlloc()

	// The largest reservation seen while they stall: the bodies held at once.
	peak := make(chan int64)
	stop := make(chan struct{})
	go func() {
		var most int64
		for {
			select {
			case <-stop:
				peak <- most
				return
			case <-time.After(time.Millisecond):
				most = max(most, th.Server.InflightBodyBytes())
			}
		}
	}()

	start := time.Now()
	slots := make(chan struct{}, sending)
	var wg sync.WaitGroup
	for i := range stalled {
		slots <- struct{}{}
		if i == stalled/2 {
			th.publish(t, url.Values{"topic": {"https://example.com/a"}, "data": {"during"}})
		}
		wg.Go(func() {
			p, err := startPublish(t, th, tok, announce, body)
			<-slots
			if err != nil {
				t.Errorf("publisher %d: sending: %v", i, err)
				return
			}
			if err := p.timedOut(timeout); err != nil {
				t.Errorf("publisher %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	most := <-peak
	if t.Failed() {
		t.FailNow()
	}
	if got := counter(t, m, "herald_requests_refused_total", "408", "body_timeout"); got != stalled {
		t.Errorf("body_timeout refusals counted: %v, want %d", got, stalled)
	}
	th.publish(t, url.Values{"topic": {"https://example.com/a"}, "data": {"after"}})
	if n := th.Server.InflightBodyBytes(); n != 0 {
		t.Errorf("%d body bytes still reserved after every body ended", n)
	}
	if most < sending*announce {
		t.Errorf("at most %d bytes reserved at once: the bodies did not stall together", most)
	}
	var after uint64
	waitFor(t, "the heap to come back", func() bool {
		after = heapAlloc()
		return after < before+16<<20
	})
	t.Logf("%d stalled bodies answered in %v, up to %d held at once; heap %d MiB before, %d MiB after",
		stalled, time.Since(start).Round(time.Millisecond), most/announce, before>>20, after>>20)
}

// With max_inflight_body_bytes spent by stalled bodies, the next publish gets 503 and
// Retry-After before its body is read; once they have timed out, publishing works again.
// A chunked body reserves max_body_bytes; an announced body over max_body_bytes is refused at
// once.
func TestInflightBodyBudget(t *testing.T) {
	const (
		maxBody = 64 << 10
		budget  = 4 * maxBody
		timeout = 2 * time.Second // the stalled bodies must outlast the checks below
	)
	m := metrics.New()
	th := newTestHub(t, func(c *server.Config) {
		c.ReadTimeout = timeout
		c.MaxBodyBytes = maxBody
		c.MaxInflightBodyBytes = budget
		c.Metrics = m
	})
	tok := mercureToken(t, []string{"*"}, nil)
	start := func(length int, body []byte) *rawPublish {
		t.Helper()
		p, err := startPublish(t, th, tok, length, body)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Three bodies announced at max_body_bytes and one chunked body fill the budget exactly.
	var stalled []*rawPublish
	for range 3 {
		stalled = append(stalled, start(maxBody, formBody(1000)))
	}
	stalled = append(stalled, start(-1, formBody(1000)))
	waitFor(t, "the budget to be spent", func() bool { return th.Server.InflightBodyBytes() == budget })

	busy := "too many publish bodies are being received; retry later\n"
	for _, length := range []int{100, -1} {
		p := start(length, formBody(100))
		code, h, body := p.answer(t)
		if code != http.StatusServiceUnavailable || body != busy || h.Get("Retry-After") != "1" || h.Get("Connection") != "close" {
			t.Fatalf("publish (length %d) with the budget spent: %d %q Retry-After %q Connection %q; want 503 %q, Retry-After 1, Connection: close", length, code, body, h.Get("Retry-After"), h.Get("Connection"), busy)
		}
	}
	code, body := th.post(t, form, "topic=https://example.com/a&data=x", bearer(tok))
	if code != http.StatusServiceUnavailable || body != busy {
		t.Fatalf("publish with the budget spent: %d %q, want 503 %q", code, body, busy)
	}

	// Too large is refused at once, without waiting for a body or for the budget.
	sentAt := time.Now()
	p := start(maxBody+1, nil)
	code, _, body = p.answer(t)
	if want := fmt.Sprintf("the body is larger than %d bytes\n", maxBody); code != http.StatusRequestEntityTooLarge || body != want {
		t.Fatalf("announced body over max_body_bytes: %d %q, want 413 %q", code, body, want)
	}
	if waited := time.Since(sentAt); waited >= timeout/2 {
		t.Errorf("the 413 took %v: the hub waited for the body", waited)
	}

	for _, p := range stalled {
		p.expectTimeout(t, timeout)
	}
	waitFor(t, "the budget to come back", func() bool { return th.Server.InflightBodyBytes() == 0 })
	th.publish(t, url.Values{"topic": {"https://example.com/a"}, "data": {"after"}})

	for _, c := range []struct {
		code, reason string
		want         float64
	}{{"503", "busy", 3}, {"408", "body_timeout", 4}, {"413", "body_too_large", 1}} {
		if got := counter(t, m, "herald_requests_refused_total", c.code, c.reason); got != c.want {
			t.Errorf("refusals %s %s counted: %v, want %v", c.code, c.reason, got, c.want)
		}
	}
	if got := counter(t, m, "herald_publish_body_bytes_inflight"); got != 0 {
		t.Errorf("herald_publish_body_bytes_inflight = %v, want 0", got)
	}
}

// read_timeout bounds bodies only: a subscription outlives it and still gets its events.
func TestReadTimeoutSparesStreams(t *testing.T) {
	const timeout = 100 * time.Millisecond
	th := newTestHub(t, func(c *server.Config) { c.ReadTimeout = timeout })
	s := th.subscribe(t, "topic=https://example.com/a", bearer(mercureToken(t, nil, []string{"*"})))
	time.Sleep(5 * timeout) // the stream must outlive the timeout: nothing to poll for
	id := th.publish(t, url.Values{"topic": {"https://example.com/a"}, "data": {"late"}})
	if ev := s.next(t); ev.ID != id || ev.Data != "late" {
		t.Fatalf("event %+v, want id %s data late", ev, id)
	}
}

// lineCounter counts the log lines written to it, and those that hold a substring.
type lineCounter struct {
	mu       sync.Mutex
	lines    int
	matching int
	sub      []byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines += bytes.Count(p, []byte("\n"))
	c.matching += bytes.Count(p, c.sub)
	return len(p), nil
}

// A flood of refused requests is counted exactly but logged at most once a second per reason
// category.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	const n = 20_000
	logs := &lineCounter{sub: []byte("msg=\"request refused\" category=invalid_token")}
	m := metrics.New()
	th := newTestHub(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Metrics = m
	})
	// A few connections, each sending its requests in pipelined batches as a flood would:
	// the test spends its time in the hub rather than in an HTTP client.
	const conns, batch = 4, 100
	u, err := url.Parse(th.URL)
	if err != nil {
		t.Fatal(err)
	}
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer not.a.jwt\r\nContent-Type: %s\r\nContent-Length: 27\r\n\r\ntopic=https://example.com/a", u.Path, u.Host, form)
	requests := bytes.Repeat(req, batch)
	flood := func() error {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			return err
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for range n / conns / batch {
			if _, err := c.Write(requests); err != nil {
				return err
			}
			for range batch {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					return err
				}
				if resp.StatusCode != http.StatusUnauthorized {
					return fmt.Errorf("bad token: %d, want 401", resp.StatusCode)
				}
			}
		}
		return nil
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			if err := flood(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if got := counter(t, m, "herald_requests_refused_total", "401", "invalid_token"); got != n {
		t.Errorf("invalid_token refusals counted: %v, want %d", got, n)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	most := int(math.Ceil(elapsed.Seconds())) + 1
	if logs.matching < 1 || logs.lines > most {
		t.Errorf("%d refusals in %v wrote %d log lines (%d of them refusals); want 1 to %d", n, elapsed, logs.lines, logs.matching, most)
	}
	t.Logf("%d refusals in %v: %d log lines", n, elapsed.Round(time.Millisecond), logs.lines)
}

// counter returns the value of the metric name whose labels have the values labels, in the
// order the metric declares them.
func counter(t testing.TB, m *metrics.Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, mt := range f.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			for i, l := range mt.GetLabel() {
				if l.GetValue() != labels[i] {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			}
		}
	}
	return 0
}

// Over HTTP/2 the deadline is the stalled stream's alone: it gets 408, and a subscription and
// a publish on the same connection go on.
func TestHTTP2StalledBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	th := newTestHub(t, func(c *server.Config) {
		c.Anonymous = true
		c.ReadTimeout = timeout
	})
	hubURL, client := serveTLS(t, th, true)
	tok := mercureToken(t, []string{"*"}, nil)

	sub, err := client.Get(hubURL + "?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Body.Close()
	if sub.ProtoMajor != 2 || sub.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %s %d", sub.Proto, sub.StatusCode)
	}
	if got := readN(t, sub.Body, 2); got != ":\n" {
		t.Fatalf("stream opens with %q", got)
	}

	post := func(body io.Reader, length int64) (proto string, code int, answer string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, hubURL, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Content-Type", form)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Proto, resp.StatusCode, string(b)
	}

	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("topic=a&data=")) }() // then nothing
	proto, code, body := post(pr, 1000)
	if want := fmt.Sprintf("the body did not arrive within %s\n", timeout); proto != "HTTP/2.0" || code != http.StatusRequestTimeout || body != want {
		t.Fatalf("stalled publish: %s %d %q, want HTTP/2.0 408 %q", proto, code, body, want)
	}
	next := "topic=a&id=h2&data=after"
	if _, code, body := post(strings.NewReader(next), int64(len(next))); code != http.StatusOK || body != "h2" {
		t.Fatalf("publish after the stalled one: %d %q, want 200 h2", code, body)
	}
	if want := "id: h2\ndata: after\n\n"; readN(t, sub.Body, len(want)) != want {
		t.Fatal("the subscription on the same connection did not get the update")
	}
}
