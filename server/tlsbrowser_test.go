package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
)

// Headless Chromium opens several EventSources on one page of an HTTPS hub: over HTTP/2
// they share one connection; over HTTP/1.1 (a hub offering only that) each has its own, a
// TLS 1.3 stream sealing its own records. Every stream gets every update of its topic, in
// order, a payload larger than a TLS record included.
func TestBrowserSeveralStreamsOverTLS(t *testing.T) {
	testkit.Chromium(t)
	for _, c := range []struct {
		name   string
		protos []string
		sealed int
	}{{"HTTP/2", nil, 0}, {"HTTP/1.1", []string{"http/1.1"}, 4}} {
		t.Run(c.name, func(t *testing.T) {
			th := serveHubTLS(t, newTestHub(t, func(c *server.Config) { c.Anonymous = true }), c.protos...)
			spki := sha256.Sum256(th.Cert.RawSubjectPublicKeyInfo)
			ctx := testkit.Browser(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(th.URL)); err != nil { // the hub's origin
				t.Fatal(err)
			}
			topics := []string{"a", "b", "a", "c"}
			script := `window.streams = [];
for (const topic of ['` + strings.Join(topics, "','") + `']) {
  const s = {topic, opened: false, errors: 0, got: []};
  const es = new EventSource('` + server.Path + `?topic=' + topic);
  es.onopen = () => { s.opened = true; };
  es.onerror = () => { s.errors++; };
  es.onmessage = (e) => s.got.push(e.lastEventId + ':' + e.data.length + ':' + e.data.slice(0, 8));
  window.streams.push(s);
}`
			if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](script)); err != nil {
				t.Fatal(err)
			}
			waitPage(ctx, t, "the streams to open", `window.streams.every(s => s.opened)`)
			waitFor(t, "the subscribers", func() bool { return th.Hub.Subscribers() == len(topics) })
			if n := th.Server.SealedStreams(); n != sealedOf(c.sealed) {
				t.Fatalf("%d streams seal their own records, want %d", n, sealedOf(c.sealed))
			}
			if c.protos == nil && sealing() && th.Server.HTTP2Conns() == 0 {
				t.Fatal("the hub's own HTTP/2 server serves none of the page's connections")
			}
			big := strings.Repeat("B", 40<<10)
			want := map[string][]string{}
			for i, u := range []struct{ topic, data string }{{"a", "one"}, {"b", "two"}, {"a", big}, {"c", "three"}, {"a", "four"}} {
				id := fmt.Sprint("e", i)
				th.publish(t, url.Values{"topic": {u.topic}, "id": {id}, "data": {u.data}})
				want[u.topic] = append(want[u.topic], fmt.Sprintf("%s:%d:%s", id, len(u.data), u.data[:min(8, len(u.data))]))
			}
			// The page publishes too, a body larger than a stream's window, on its connection.
			page := strings.Repeat("P", 100<<10)
			publish := `fetch('` + server.Path + `', {method: 'POST', headers: {'Authorization': 'Bearer ` + mercureToken(t, []string{"*"}, nil) + `',
  'Content-Type': 'application/x-www-form-urlencoded'}, body: 'topic=b&id=page&data=' + 'P'.repeat(` + fmt.Sprint(len(page)) + `)}).then(r => r.status)`
			status, err := chromedp.Run(ctx, chromedp.Evaluate[int](publish, chromedp.EvalAwaitPromise))
			if err != nil || status != 200 {
				t.Fatalf("the page's publish: status %d, %v", status, err)
			}
			want["b"] = append(want["b"], fmt.Sprintf("page:%d:%s", len(page), page[:8]))
			waitPage(ctx, t, "every update", `window.streams.every(s => s.got.length >= ({a: 3, b: 2, c: 1})[s.topic])`)
			time.Sleep(100 * time.Millisecond) // nothing more may come
			got, err := chromedp.Run(ctx, chromedp.Evaluate[[]struct {
				Topic  string   `json:"topic"`
				Errors int      `json:"errors"`
				Got    []string `json:"got"`
			}]("window.streams"))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range got {
				if s.Topic != topics[i] || s.Errors != 0 || strings.Join(s.Got, " ") != strings.Join(want[s.Topic], " ") {
					t.Errorf("stream %d (topic %s): %d errors, got %q, want %q", i, s.Topic, s.Errors, s.Got, want[s.Topic])
				}
			}
		})
	}
}
