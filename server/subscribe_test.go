package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/server"
)

func TestSubscribeRefusals(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.MaxSelectors = 3 })
	anon := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	hundredOne := strings.Repeat("topic=a&", 100) + "topic=b"
	sub := bearer(mercureToken(t, nil, []string{"*"}))
	expired := bearer(token(t, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"*"}}, "exp": time.Now().Add(-time.Second).Unix()}))
	tests := []struct {
		name   string
		th     *testHub
		query  string
		header http.Header
		code   int
		reason string
	}{
		{"no topic", th, "", sub, 400, `Missing "topic" parameter`},
		{"too many selectors", th, "topic=a&topic=b&topic=c&topic=d", sub, 400, "too many topic selectors: 4, at most 3"},
		{"more than the default 100 selectors", anon, hundredOne, nil, 400, "too many topic selectors: 101, at most 100"},
		{"control character", th, "topic=a%0Ab", sub, 400, "invalid topic selector"},
		{"no token without anonymous", th, "topic=a", nil, 401, "missing JWT"},
		{"expired token", th, "topic=a", expired, 401, "token expired"},
		{"invalid token even with anonymous", anon, "topic=a", bearer("x.y.z"), 401, ""},
		{"expired token even with anonymous", anon, "topic=a", expired, 401, "token expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.th.open(t, tc.query, tc.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.HasPrefix(string(b), tc.reason) {
				t.Errorf("got %d %q, want %d starting with %q", resp.StatusCode, b, tc.code, tc.reason)
			}
			if n := tc.th.Hub.Subscribers(); n != 0 {
				t.Errorf("a refused subscriber was registered (%d)", n)
			}
		})
	}
}

func TestSubscribeExactFrames(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	resp, br := th.rawSubscribe(t, "topic=https://example.com/books/1", nil)
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "private, no-cache, no-store, must-revalidate, max-age=0",
		"X-Accel-Buffering": "no",
		"Link":              `</.well-known/mercure>; rel="mercure"`,
		"Last-Event-Id":     "",
		"Content-Encoding":  "",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	th.publish(t, publishForm("topic", "https://example.com/books/1", "id", "one", "type", "update", "retry", "3000", "data", "line 1\nline 2\r\nline 3\rline 4"))
	th.publish(t, publishForm("topic", "https://example.com/books/1", "id", "two", "data", `{"ok":true}`))
	th.publish(t, publishForm("topic", "https://example.com/books/1", "id", "three"))
	want := "event: update\nretry: 3000\nid: one\ndata: line 1\ndata: line 2\ndata: line 3\ndata: line 4\n\n" +
		"id: two\ndata: {\"ok\":true}\n\n" +
		"id: three\ndata: \n\n"
	if got := readN(t, br, len(want)); got != want {
		t.Fatalf("frames:\n%q\nwant\n%q", got, want)
	}
}

// readN reads exactly n bytes within 5 s.
func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	c := make(chan result, 1)
	go func() {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		c <- result{b, err}
	}()
	select {
	case res := <-c:
		if res.err != nil {
			t.Fatalf("reading %d bytes: %v (got %q)", n, res.err, res.b)
		}
		return string(res.b)
	case <-time.After(5 * time.Second):
		t.Fatalf("%d bytes did not arrive within 5s", n)
	}
	return ""
}
