package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Where Debian's redis-server and nats-server packages install the servers.
const (
	DefaultRedisServer = "/usr/bin/redis-server"
	DefaultNATSServer  = "/usr/sbin/nats-server"
)

// Environment variables naming a server that tests share instead of starting their own.
const (
	RedisURLEnv = "HERALD_TEST_REDIS_URL" // e.g. redis://127.0.0.1:6379/0
	NATSURLEnv  = "HERALD_TEST_NATS_URL"  // e.g. nats://127.0.0.1:4222 (with JetStream on)
)

// serverStartTimeout bounds how long a server may take to say it is ready.
const serverStartTimeout = 20 * time.Second

// RedisURL returns the URL of a Redis server for the test: $HERALD_TEST_REDIS_URL when set,
// else that of a redis-server started for this test by StartRedis. Tests sharing a server
// must use keys of their own.
func RedisURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(RedisURLEnv); u != "" {
		return u
	}
	return StartRedis(t).URL()
}

// NATSURL returns the URL of a NATS server with JetStream for the test: $HERALD_TEST_NATS_URL
// when set, else that of a nats-server started for this test by StartNATS. Tests sharing a
// server must use streams of their own.
func NATSURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(NATSURLEnv); u != "" {
		return u
	}
	return StartNATS(t).URL()
}

// Server is a redis-server or nats-server process that a test started on a free loopback
// port, with its data in a directory of the test's own. Kill and Start simulate a crash and a
// restart on the same address and data; the process is stopped at the test's cleanup, and
// its output is logged if the test failed.
type Server struct {
	Name   string // "redis-server" or "nats-server"
	Addr   string // 127.0.0.1:port
	Dir    string // data directory, kept across Kill and Start
	scheme string

	t     testing.TB
	exe   string
	args  func(port string) []string
	ready string // the log line that says the server accepts clients

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	out  *serverLog    // output of every run, for failure messages
}

// StartRedis starts a redis-server on a free loopback port, with append-only persistence
// fsynced at every write (appendonly yes, appendfsync always) in t.TempDir(): what a Redis
// transport needs for acknowledged updates to survive a crash of the server.
//
// Without the binary (looked up in PATH, then at DefaultRedisServer) a developer's run skips
// the test, but CI (the CI environment variable is non-empty) fails it: CI installs the
// server, so a missing binary there means a broken setup that a skip would hide.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	exe := serverBinary(t, "redis-server", DefaultRedisServer, "redis-server")
	dir := t.TempDir()
	return startServer(t, &Server{
		Name: "redis-server", Dir: dir, scheme: "redis", exe: exe,
		ready: "Ready to accept connections",
		args: func(port string) []string {
			return []string{
				"--port", port, "--bind", "127.0.0.1", "--dir", dir,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
				"--daemonize", "no", "--protected-mode", "no", "--logfile", "",
				"--auto-aof-rewrite-percentage", "0", // no forked child to outlive a kill
			}
		},
	})
}

// StartNATS starts a nats-server with JetStream on a free loopback port, storing streams in
// t.TempDir(). A missing binary (PATH, then DefaultNATSServer) skips or fails the test as for
// StartRedis.
func StartNATS(t testing.TB) *Server {
	t.Helper()
	exe := serverBinary(t, "nats-server", DefaultNATSServer, "nats-server")
	dir := t.TempDir()
	return startServer(t, &Server{
		Name: "nats-server", Dir: dir, scheme: "nats", exe: exe,
		ready: "Server is ready",
		args: func(port string) []string {
			return []string{"-js", "-sd", dir, "-p", port, "-a", "127.0.0.1"}
		},
	})
}

// URL returns the server's address as a redis:// or nats:// URL.
func (s *Server) URL() string { return s.scheme + "://" + s.Addr }

// serverBinary finds a server's executable, or skips (CI unset) or fails (CI set) the test.
func serverBinary(t testing.TB, name, fallback, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	info, err := os.Stat(fallback)
	switch {
	case err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0:
		return fallback
	case err == nil:
		err = errors.New("not an executable file")
	}
	msg := fmt.Sprintf("%s not found in PATH nor at %s (%v): the test command installs it with apt-get install -y %s", name, fallback, err, pkg)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return "" // unreachable
}

// startServer picks a free port, starts s there and registers its cleanup. A port taken by
// another process between the probe and the bind is retried with a new one.
func startServer(t testing.TB, s *Server) *Server {
	t.Helper()
	s.t = t
	s.out = &serverLog{}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", s.Name, s.out.tail(8<<10))
		}
	})
	var err error
	for range 3 {
		s.Addr = FreeAddr(t)
		if err = s.start(); err == nil {
			return s
		}
		if !strings.Contains(strings.ToLower(s.out.String()), "address already in use") {
			break
		}
	}
	t.Fatalf("testkit: %v\n%s output:\n%s", err, s.Name, s.out.tail(8<<10))
	return nil
}

// Start starts the server again on the same address and data directory, after Kill or Stop.
func (s *Server) Start() {
	s.t.Helper()
	for i := 0; ; i++ {
		err := s.start()
		if err == nil {
			return
		}
		// The old process's socket may linger for a moment: retry a busy port briefly.
		if i < 20 && strings.Contains(strings.ToLower(s.out.String()), "address already in use") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.t.Fatalf("testkit: %v\n%s output:\n%s", err, s.Name, s.out.tail(8<<10))
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("%s on %s is already running", s.Name, s.Addr)
	}
	_, port, _ := strings.Cut(s.Addr, ":")
	s.out.reset(s.ready)
	cmd := exec.Command(s.exe, s.args(port)...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	cmd.Dir = s.Dir
	cmd.WaitDelay = 2 * time.Second // a child holding the output pipe cannot block Wait
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.exe, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case <-s.out.readyCh():
		s.cmd, s.done = cmd, done
		return nil
	case <-done:
		return fmt.Errorf("%s on %s exited before it was ready (%v)", s.Name, s.Addr, cmd.ProcessState)
	case <-time.After(serverStartTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s on %s was not ready within %v", s.Name, s.Addr, serverStartTimeout)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it has exited. Only
// the process this Server started is signalled.
func (s *Server) Kill() { s.signal(syscall.SIGKILL, 0) }

// Stop ends the server with SIGTERM (SIGKILL after 10 s) and waits until it has exited. It
// does nothing when the server is not running.
func (s *Server) Stop() { s.signal(syscall.SIGTERM, 10*time.Second) }

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-s.done:
		case <-time.After(grace):
			_ = s.cmd.Process.Kill()
		}
	}
	<-s.done
	s.cmd, s.done = nil, nil
}

// serverLog collects a server's output and signals when the ready line has appeared.
type serverLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	mark    int // where the current run's output starts
	ready   string
	readyC  chan struct{}
	isReady bool
}

func (l *serverLog) reset(ready string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.buf.WriteString("---- restart ----\n")
	}
	l.mark = l.buf.Len()
	l.ready, l.readyC, l.isReady = ready, make(chan struct{}), false
}

func (l *serverLog) readyCh() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyC
}

func (l *serverLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if !l.isReady && bytes.Contains(l.buf.Bytes()[l.mark:], []byte(l.ready)) {
		l.isReady = true
		close(l.readyC)
	}
	return len(p), nil
}

// String returns the current run's output.
func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf.Bytes()[l.mark:])
}

// tail returns at most the last n bytes of all output.
func (l *serverLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}
