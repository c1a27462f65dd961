package testkit

import (
	"net"
	"testing"
)

// FreeAddr returns a "127.0.0.1:port" address that was free on loopback a moment ago, for a
// server the test starts as a separate process (redis-server, nats-server, ...) and so cannot
// hand an open listener to. The port is found by listening on port 0 and closing the listener
// again, so another process may in principle take it before the server binds it; tests that
// can pass a net.Listener (httptest.NewServer) should do that instead.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testkit: finding a free loopback port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("testkit: closing the probe listener on %s: %v", addr, err)
	}
	return addr
}
