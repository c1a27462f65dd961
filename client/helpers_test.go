package client_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldhub/herald/client"
	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = testkit.TestKey

// testHub is a real Herald hub served over loopback, and a Client with its own transport.
type testHub struct {
	URL    string
	Client *client.Client
}

// newTestHub starts a hub with an in-memory log and HS256 keys; configure may change the
// server configuration before it starts. Everything stops at cleanup.
func newTestHub(t testing.TB, configure func(*server.Config)) *testHub {
	t.Helper()
	th := testkit.StartHub(t, testkit.HubOptions{Hub: func(c *hub.Config) { c.QueueSize = 100 }, Server: configure})
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	return &testHub{URL: th.URL, Client: &client.Client{HTTPClient: hc}}
}

// mercureToken signs an HS256 JWT with the given mercure.publish and mercure.subscribe claims
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
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": m}).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// connected returns an OnConnect callback and a channel receiving each Connection.
func connected() (func(client.Connection), chan client.Connection) {
	ch := make(chan client.Connection, 100)
	return func(c client.Connection) { ch <- c }, ch
}

// waitConn waits for the next connection.
func waitConn(t testing.TB, ch chan client.Connection) client.Connection {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection within 5s")
	}
	return client.Connection{}
}

// next waits for the next event of a channel subscription.
func next(t testing.TB, s *client.Subscription) client.Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("the subscription stopped: %v", s.Err())
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return client.Event{}
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
