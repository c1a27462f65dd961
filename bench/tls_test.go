package bench_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
)

// With --http2 and --streams 3, ten subscribers share four HTTP/2 connections, resuming TLS
// sessions, and get every update; publishers keep HTTP/1.1.
func TestFanoutHTTP2Streams(t *testing.T) {
	hub := testkit.StartHub(t, testkit.HubOptions{})
	ts := httptest.NewUnstartedServer(hub.Handler)
	ts.EnableHTTP2 = true
	var mu sync.Mutex
	protos := map[net.Conn]string{}
	ts.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if tc, ok := c.(*tls.Conn); ok && s == http.StateActive {
			mu.Lock()
			protos[c] = tc.ConnectionState().NegotiatedProtocol
			mu.Unlock()
		}
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)

	o := opts(ts.URL + server.Path)
	o.Insecure, o.HTTP2, o.Streams, o.Resume = true, true, 3, true
	res, err := bench.Fanout(context.Background(), bench.FanoutConfig{Options: o, Subscribers: 10, Topics: 2, Updates: 100, Publishers: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, res, 10*100/2)
	mu.Lock()
	defer mu.Unlock()
	h2 := 0
	for _, p := range protos {
		if p == "h2" {
			h2++
		}
	}
	if h2 != 4 {
		t.Fatalf("%d HTTP/2 connections (%v), want 4", h2, protos)
	}
}
