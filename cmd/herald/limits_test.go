package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestConnectionLimits(t *testing.T) {
	tests := []struct {
		fileLimit         uint64
		requested         int
		maxConns, reserve int
		note              bool
	}{
		{20_000, 0, 19_000, 1000, false},            // 5 %
		{1 << 20, 0, (1 << 20) - 1024, 1024, false}, // at most 1024
		{256, 0, 192, 64, false},                    // at least 64
		{256, 50, 50, 64, false},
		{256, 1000, 192, 64, true}, // more than the limit allows
		{0, 0, 0, 128, false},      // unknown limit: no cap
		{0, 50, 50, 128, false},
	}
	for _, tc := range tests {
		maxConns, reserve, note := connectionLimits(tc.fileLimit, tc.requested)
		if maxConns != tc.maxConns || reserve != tc.reserve || (note != "") != tc.note {
			t.Errorf("connectionLimits(%d, %d) = %d, %d, %q; want %d, %d, a note: %v", tc.fileLimit, tc.requested, maxConns, reserve, note, tc.maxConns, tc.reserve, tc.note)
		}
	}
}

// buildHerald builds the binary into a temporary directory.
func buildHerald(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startHerald starts cmd, the binary's process, with the test key; it is stopped with
// SIGTERM at cleanup unless the test waited for it.
func startHerald(t *testing.T, cmd *exec.Cmd, addr string) *syncBuffer {
	t.Helper()
	cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+key)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	waitUp(t, addr)
	return stderr
}

// metric returns the value of an unlabelled metric on the operations endpoint.
func metric(t *testing.T, opsAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// waitMetric polls an unlabelled metric until it has the value want.
func waitMetric(t *testing.T, opsAddr, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := metric(t, opsAddr, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v; want %v", name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openStream subscribes anonymously to topic t on a raw connection and reads the response
// head; it returns the connection and the head.
func openStream(t *testing.T, addr string, dialer *net.Dialer) (net.Conn, string) {
	t.Helper()
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(c, "GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head []byte
	buf := make([]byte, 512)
	for !strings.Contains(string(head), "\r\n\r\n") {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reading the response head: %v (read %q)", err, head)
		}
		head = append(head, buf[:n]...)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, string(head)
}

// flood dials n connections to addr that send nothing, and sorts them by what the hub does
// within a second: close them at once, after the canned 503 if canned is set (refused), or hold
// them, saying nothing (held). The connections are closed at cleanup, or earlier by the caller.
func flood(t *testing.T, addr string, n int, canned bool) (conns []net.Conn, refused, held int) {
	t.Helper()
	conns = make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			b, err := io.ReadAll(c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && canned && strings.HasPrefix(string(b), "HTTP/1.1 503 Service Unavailable\r\n"),
				err == nil && !canned && len(b) == 0:
				refused++
			case len(b) == 0 && os.IsTimeout(err):
				held++
			default:
				t.Errorf("a connection got %q, %v", b, err)
			}
		})
	}
	wg.Wait()
	return conns, refused, held
}

// waitHealthy polls /healthz until it answers: connections just closed by the client may
// still hold places on the hub's side for a moment.
func waitHealthy(t *testing.T, opsAddr string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + opsAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz: %v", err)
		}
	}
}

// TestFileLimitKeepsAnswering runs the binary with 256 open files at most. By default that
// leaves 192 connections for subscriptions and a reserve of 64: the 193rd subscription gets
// 503 at once while publishes and /healthz answer 200; 100 more connections than the hub
// holds get a canned 503 or wait in the reserve, never in the backlog; and once the clients
// leave, the count is back to 0 and subscribing works again.
func TestFileLimitKeepsAnswering(t *testing.T) {
	bin := buildHerald(t)
	addr, opsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "serve", "--listen", addr, "--metrics-addr", opsAddr,
		"--transport-url", "bolt://"+filepath.Join(t.TempDir(), "h.db"), "--anonymous")
	stderr := startHerald(t, cmd, addr)
	if !strings.Contains(stderr.String(), "max_connections=192 reserve=64 open_file_limit=256") {
		t.Fatalf("log lacks the connection limits:\n%s", stderr.String())
	}
	hubURL := "http://" + addr + "/.well-known/mercure"
	pub := mint(t, []string{"*"}, nil)
	quick := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	answers := func(wantPublish int) {
		t.Helper()
		resp, err := quick.Get("http://" + opsAddr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/healthz: %d", resp.StatusCode)
		}
		if wantPublish != 0 {
			if c, body := post(t, quick, hubURL, pub, url.Values{"topic": {"t"}, "data": {"x"}}); c != wantPublish {
				t.Fatalf("publish: %d %q; want %d", c, body, wantPublish)
			}
		}
	}

	waitMetric(t, opsAddr, "herald_connections_open", 0) // waitUp's connection
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 192 {
		c, head := openStream(t, addr, &net.Dialer{})
		conns = append(conns, c)
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("stream %d: %q", i+1, head)
		}
	}
	start := time.Now()
	resp, err := quick.Get(hubURL + "?topic=t")
	if err != nil {
		t.Fatalf("the 193rd subscription got no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" || string(body) != "the hub is at capacity\n" {
		t.Fatalf("the 193rd subscription: %d, Retry-After %q, %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	t.Logf("the 193rd subscription was refused in %v", time.Since(start))
	answers(http.StatusOK)

	// 100 connections that send nothing: 32 fill the hub's half of the reserve, the other 68
	// are answered and closed as they are accepted.
	waitMetric(t, opsAddr, "herald_connections_open", 192)
	extra, refused, held := flood(t, addr, 100, true)
	if refused != 68 || held != 32 {
		t.Fatalf("of 100 connections past max_connections, %d were refused and %d held; want 68 and 32", refused, held)
	}
	answers(0) // the hub's listener is full: /healthz still answers

	for _, c := range extra {
		c.Close()
	}
	waitMetric(t, opsAddr, "herald_connections_open", 192)

	// The operations address holds 8 connections (an eighth of the reserve) and closes more
	// as it accepts them. One of the 8 may be metric's, kept alive.
	ops, closed, waiting := flood(t, opsAddr, 10, false)
	if waiting < 7 || waiting > 8 || closed != 10-waiting {
		t.Fatalf("of 10 connections to the operations address, %d were closed and %d held; want 8 held, or 7 and metric's", closed, waiting)
	}
	for _, c := range ops {
		c.Close()
	}
	waitHealthy(t, opsAddr)
	answers(http.StatusOK)
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	waitMetric(t, opsAddr, "herald_connections_open", 0)
	c, head := openStream(t, addr, &net.Dialer{})
	c.Close()
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
		t.Fatalf("subscribing after the streams closed: %q", head)
	}
	waitMetric(t, opsAddr, "herald_connections_open", 0)
}

// TestShutdownWithinGracePeriod stops the binary with SIGTERM while 20 subscribers that never
// read hold full sockets and 4 publishers keep publishing 8 KiB updates: it exits with status
// 0 within grace_period (2s) and 2 s more, and after a restart on the same bolt file every
// acknowledged publish is in the history, once.
func TestShutdownWithinGracePeriod(t *testing.T) {
	bin := buildHerald(t)
	db := filepath.Join(t.TempDir(), "h.db")
	const grace = 2 * time.Second
	addr, opsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve", "--listen", addr, "--metrics-addr", opsAddr, "--transport-url", "bolt://"+db,
		"--anonymous", "--grace-period", grace.String())
	stderr := startHerald(t, cmd, addr)
	hubURL := "http://" + addr + "/.well-known/mercure"

	// Subscribers with a small receive buffer that never read: their sockets fill at once.
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		_ = rc.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	for range 20 {
		c, _ := openStream(t, addr, small)
		defer c.Close()
	}
	waitMetric(t, opsAddr, "herald_subscribers", 20)

	pub := mint(t, []string{"*"}, nil)
	data := strings.Repeat("x", 8<<10)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for p := range 4 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
			defer client.CloseIdleConnections()
			for i := 0; ; i++ {
				id := fmt.Sprintf("s-%d-%d", p, i)
				form := url.Values{"topic": {"t"}, "id": {id}, "data": {data}}
				req, _ := http.NewRequest(http.MethodPost, hubURL, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer "+pub)
				resp, err := client.Do(req)
				if err != nil {
					return // the hub stopped
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		})
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d publishes acknowledged in 20s", n)
		}
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		took := time.Since(start)
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
		if took > grace+2*time.Second {
			t.Fatalf("stopping took %v; want at most %v", took, grace+2*time.Second)
		}
		t.Logf("stopped %v after SIGTERM", took)
		if os.Getenv("DUMP") != "" {
			t.Log(stderr.String())
		}
	case <-time.After(grace + 10*time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("herald did not stop on SIGTERM\n%s", stderr.String())
	}
	wg.Wait()
	if !strings.Contains(stderr.String(), "herald stopped") {
		t.Fatalf("log:\n%s", stderr.String())
	}

	addr = freeAddr(t)
	cmd = exec.Command(bin, "serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "bolt://"+db)
	stderr = startHerald(t, cmd, addr)
	seen := readHistory(t, "http://"+addr+"/.well-known/mercure", pub, stderr)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range acked {
		if !seen[id] {
			t.Errorf("acknowledged publish %s is missing after the restart", id)
		}
	}
	t.Logf("%d publishes acknowledged, %d in the history after the restart", len(acked), len(seen))
}

// TestOutOfFilesShedsConnections starts the binary with 256 open files at most, 150 of them
// taken already (inherited), so that it runs out of descriptors long before max_connections:
// each connection it cannot take is still accepted, with a spare descriptor, answered with the
// canned 503 and closed, never left in the backlog; the failed accepts are logged at warn level
// and counted, and once the clients leave the hub answers again.
func TestOutOfFilesShedsConnections(t *testing.T) {
	bin := buildHerald(t)
	addr, opsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" "$@"`, bin, "serve", "--listen", addr, "--metrics-addr", opsAddr,
		"--transport-url", "bolt://"+filepath.Join(t.TempDir(), "h.db"), "--anonymous")
	for range 150 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	stderr := startHerald(t, cmd, addr)
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	waitMetric(t, opsAddr, "herald_connections_open", 0)

	conns, refused, held := flood(t, addr, 150, true)
	t.Logf("of 150 connections, %d were held and %d answered 503 and closed", held, refused)
	// About 90 descriptors are free: 256, less the 150 inherited and the hub's own.
	if refused < 40 || held < 60 || held > 100 {
		t.Fatalf("%d held, %d refused; want 60 to 100 held, the rest refused", held, refused)
	}
	if !strings.Contains(stderr.String(), `level=WARN msg="accepting a connection failed" listener=hub`) {
		t.Fatalf("no warning about failed accepts:\n%s", stderr.String())
	}

	for _, c := range conns {
		c.Close()
	}
	waitHealthy(t, opsAddr)
	waitMetric(t, opsAddr, "herald_connections_open", 0)
	if n := metric(t, opsAddr, `herald_connections_refused_total{reason="file_limit"}`); n != float64(refused) {
		t.Errorf("herald_connections_refused_total{reason=\"file_limit\"} %v; want %d", n, refused)
	}
	if n := metric(t, opsAddr, "herald_accept_errors_total"); n < float64(refused) {
		t.Errorf("herald_accept_errors_total %v; want at least %d", n, refused)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	if c, body := post(t, client, "http://"+addr+"/.well-known/mercure", mint(t, []string{"*"}, nil), url.Values{"topic": {"t"}, "data": {"x"}}); c != 200 {
		t.Fatalf("publish after the clients left: %d %q", c, body)
	}
}
