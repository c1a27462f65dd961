package testkit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
	"github.com/heraldhub/herald/transport/memory"
)

// TestKey is the HS256 key of the hubs StartHub starts, for publishers and subscribers alike.
const TestKey = "!ChangeThisMercureHubJWTSecretKey!"

// HubOptions configure StartHub. Zero values take the defaults.
type HubOptions struct {
	// Transport, when set, is the hub's log instead of a new in-memory one; the caller closes it.
	Transport transport.Transport
	// Hub and Server may change the hub's and the HTTP layer's configuration before they start.
	Hub    func(*hub.Config)
	Server func(*server.Config)
}

// Hub is a real Herald hub, on an in-memory log, served over HTTP on loopback.
type Hub struct {
	// URL is the hub endpoint: http://127.0.0.1:PORT/.well-known/mercure.
	URL       string
	Hub       *hub.Hub
	Transport transport.Transport
	Server    *server.Server
	// Handler is the server's handler, to serve the same hub on another listener too.
	Handler http.Handler
}

// StartHub starts a hub whose publishers and subscribers sign with TestKey; everything stops
// at cleanup, in the order a real shutdown uses: the hub ends its streams, the writer pool
// stops, then the listener, the dispatch loop, the verifier and the log.
func StartHub(t testing.TB, opts HubOptions) *Hub {
	t.Helper()
	tr := opts.Transport
	owned := tr == nil
	if owned {
		tr = memory.New(memory.Options{Size: 10_000})
	}
	hcfg := hub.Config{Transport: tr, Matcher: topic.NewMatcher(1000)}
	if opts.Hub != nil {
		opts.Hub(&hcfg)
	}
	h, err := hub.New(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	v, err := auth.NewVerifier(ctx, auth.Config{Key: TestKey})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Hub: h, Publisher: v, Subscriber: v}
	if opts.Server != nil {
		opts.Server(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler := srv.Handler()
	ts := httptest.NewUnstartedServer(handler)
	ts.Listener = srv.Listener(ts.Listener, false) // counted and capped as herald serve's
	ts.Start()
	t.Cleanup(func() {
		h.Shutdown()
		srv.Close(5 * time.Second)
		ts.Close()
		cancel()
		<-done
		_ = v.Close()
		if owned {
			_ = tr.Close()
		}
	})
	return &Hub{URL: ts.URL + server.Path, Hub: h, Transport: tr, Server: srv, Handler: handler}
}
