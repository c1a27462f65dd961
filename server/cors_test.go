package server_test

import (
	"net/http"
	"testing"

	"github.com/heraldhub/herald/server"
)

func TestCORS(t *testing.T) {
	explicit := newTestHub(t, func(c *server.Config) { c.CORSOrigins = []string{"https://app.example.com"}; c.Anonymous = true })
	wildcard := newTestHub(t, func(c *server.Config) { c.CORSOrigins = []string{"*"}; c.Anonymous = true })
	off := newTestHub(t, nil)

	do := func(th *testHub, method string, h http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, th.URL+"?topic=a", nil)
		req.Header = h
		resp, err := th.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	preflight := func(origin, method, headers string) http.Header {
		h := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method}}
		if headers != "" {
			h.Set("Access-Control-Request-Headers", headers)
		}
		return h
	}

	tests := []struct {
		name    string
		th      *testHub
		method  string
		header  http.Header
		code    int
		headers map[string]string
	}{
		{"preflight from a listed origin", explicit, http.MethodOptions, preflight("https://app.example.com", "GET", "authorization, last-event-id, cache-control"), 204, map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Allow-Methods":     "GET, HEAD, POST, QUERY",
			"Access-Control-Allow-Headers":     "Authorization, Cache-Control, Content-Type, Last-Event-ID",
		}},
		{"preflight for a publish", explicit, http.MethodOptions, preflight("https://app.example.com", "POST", "Authorization, Content-Type"), 204, map[string]string{
			"Access-Control-Allow-Origin": "https://app.example.com",
		}},
		{"preflight for a QUERY subscription", explicit, http.MethodOptions, preflight("https://app.example.com", "QUERY", "Content-Type"), 204, map[string]string{
			"Access-Control-Allow-Origin": "https://app.example.com",
		}},
		{"preflight from another origin", explicit, http.MethodOptions, preflight("https://evil.example.com", "GET", ""), 403, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
		{"preflight for a method not allowed", explicit, http.MethodOptions, preflight("https://app.example.com", "DELETE", ""), 403, nil},
		{"preflight for a header not allowed", explicit, http.MethodOptions, preflight("https://app.example.com", "GET", "x-custom"), 403, nil},
		{"wildcard never allows credentials", wildcard, http.MethodOptions, preflight("https://any.example.com", "GET", ""), 204, map[string]string{
			"Access-Control-Allow-Origin":      "*",
			"Access-Control-Allow-Credentials": "",
		}},
		{"simple request from a listed origin", explicit, http.MethodHead, http.Header{"Origin": {"https://app.example.com"}}, 200, map[string]string{
			"Access-Control-Allow-Origin":      "https://app.example.com",
			"Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers":    "Last-Event-ID, Mercure-Last-Event-ID, Link",
		}},
		{"simple request from another origin", explicit, http.MethodHead, http.Header{"Origin": {"https://evil.example.com"}}, 200, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
		{"cors off refuses OPTIONS", off, http.MethodOptions, preflight("https://app.example.com", "GET", ""), 405, map[string]string{
			"Access-Control-Allow-Origin": "",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(tc.th, tc.method, tc.header)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			for k, want := range tc.headers {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}
