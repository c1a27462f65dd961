package server_test

import (
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/heraldhub/herald/server"
)

// TestIdleStreamHeap holds 1 000 idle anonymous subscribers of one topic and checks how much
// heap each keeps. An idle hijacked stream must keep no read or write buffer, no goroutine and
// no channel, and share its compiled selector with the other subscribers of its topic. The
// figure counts both ends of each connection, as the client runs in this process: about 890
// bytes here, against 1 080 before subscribers shared selectors and dropped their done channel
// and notify closure. A regression that keeps a 4 KiB buffer or a goroutine per stream is far
// above the bound.
func TestIdleStreamHeap(t *testing.T) {
	if os.Getenv("HERALD_TEST_NO_HIJACK") != "" {
		t.Skip("measures hijacked streams; net/http's path keeps a goroutine per stream")
	}
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	perStream := idleHeapPerStream(t, 1000, func() net.Conn { return dialStream(t, th.URL, "https://example.com/idle", nil) },
		func(n int) bool { return th.Hub.Subscribers() == n })
	t.Logf("%.0f bytes of heap per idle stream, both ends", perStream)
	if perStream > 1000 {
		t.Errorf("%.0f bytes of heap per idle stream, both ends; want at most 1000", perStream)
	}
}

// idleHeapPerStream opens n streams with open, once open streams are ready (ready(n)), and
// returns how much more heap the process holds per stream, after a warm-up of 50 streams
// opened and closed (ready(0) once they are gone).
func idleHeapPerStream(t *testing.T, n int, open func() net.Conn, ready func(n int) bool) float64 {
	t.Helper()
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for range 50 { // warm up pools, maps and caches
		open().Close()
	}
	waitFor(t, "the warm-up streams to end", func() bool { return ready(0) })
	before := heap()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		conns = append(conns, open())
	}
	waitFor(t, "every stream to be ready", func() bool { return ready(n) })
	perStream := float64(heap()-before) / float64(n)
	runtime.KeepAlive(conns)
	return perStream
}
