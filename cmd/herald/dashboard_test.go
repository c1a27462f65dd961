package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
	"github.com/heraldhub/herald/sse"
)

// dashboardPath is the dashboard page below a hub's origin.
const dashboardPath = "/.well-known/mercure/ui/dashboard/"

// dashTab is one browser tab on a dashboard.
type dashTab struct {
	t   *testing.T
	ctx context.Context
}

// openDashboard opens the dashboard of the hub at origin in a new tab of browser, enters tok
// and starts watching.
func openDashboard(t *testing.T, browser context.Context, origin, tok string) *dashTab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	d := &dashTab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(origin+dashboardPath)); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	d.waitFor("the page is ready", `document.body.dataset.ready === 'true'`)
	d.eval(fmt.Sprintf(`(() => { const t = document.querySelector('#token'); t.value = %q; t.dispatchEvent(new Event('input')); document.querySelector('#connect').click(); })()`, tok))
	return d
}

func (d *dashTab) eval(expr string) string {
	d.t.Helper()
	v, err := chromedp.Run(d.ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		d.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return fmt.Sprint(v)
}

func (d *dashTab) text(sel string) string {
	d.t.Helper()
	return d.eval(fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ''`, sel))
}

// waitFor polls until the JavaScript condition holds, for up to 15 s.
func (d *dashTab) waitFor(what, cond string) {
	d.t.Helper()
	_, err := chromedp.Run(d.ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		page, _ := chromedp.Run(d.ctx, chromedp.Evaluate[string]("document.body.innerText"))
		d.t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, cond, err, page)
	}
}

// topicLoad is a small fan-out load like herald bench's: subscribers on three topics, each
// reading its stream, and publishes spread over the topics.
type topicLoad struct {
	topics      []string
	subscribers []int // per topic
	publishes   []int // per topic
}

func (l topicLoad) delivered() (n int) {
	for i := range l.topics {
		n += l.subscribers[i] * l.publishes[i]
	}
	return n
}

func (l topicLoad) published() (n int) {
	for _, p := range l.publishes {
		n += p
	}
	return n
}

// run opens the subscribers, publishes over about spread, and returns once every subscriber
// has read every update of its topic.
func (l topicLoad) run(t *testing.T, hubURL string, spread time.Duration) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i, topic := range l.topics {
		for range l.subscribers[i] {
			resp := subscribeTopic(t, client, hubURL, topic)
			wg.Add(1)
			go func(want int) {
				defer wg.Done()
				r := sse.NewReader(bufio.NewReader(resp.Body))
				for range want {
					if _, err := r.Next(); err != nil {
						errs <- err
						return
					}
				}
			}(l.publishes[i])
		}
	}
	pub := mint(t, []string{"*"}, nil)
	total := l.published()
	left := append([]int(nil), l.publishes...)
	for n := 0; n < total; {
		for i, topic := range l.topics {
			if left[i] == 0 {
				continue
			}
			left[i]--
			n++
			if c, body := post(t, client, hubURL, pub, url.Values{"topic": {topic}, "data": {strconv.Itoa(n)}}); c != http.StatusOK {
				t.Fatalf("publish: %d %q", c, body)
			}
		}
		// In waves: three slow and three fast phases over the spread, for charts worth looking at.
		pause := float64(spread) / float64(total) * (1 + 0.8*math.Sin(6*math.Pi*float64(n)/float64(total)))
		time.Sleep(time.Duration(pause))
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-errs:
		t.Fatalf("a subscriber failed: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the subscribers did not receive every update")
	}
}

// topOnce runs `herald top --once --json` with args and decodes its snapshot.
func topOnce(t *testing.T, args ...string) server.Stats {
	t.Helper()
	var stdout, stderr syncBuffer
	if c := run(context.Background(), append([]string{"top", "--once", "--json"}, args...), noEnv, &stdout, &stderr); c != 0 {
		t.Fatalf("herald top: exit %d: %s", c, stderr.String())
	}
	var st server.Stats
	if err := json.Unmarshal([]byte(stdout.String()), &st); err != nil {
		t.Fatalf("%q: %v", stdout.String(), err)
	}
	return st
}

// TestDashboard opens the dashboard in a headless Chromium against `herald serve --ui` under
// a small fan-out load: the charts get points, the totals match what the load sent exactly,
// the busiest topic heads both tables, and `herald top --once --json` over the hub's address
// gives the same counts. A token without the right gets the refusal in words.
//
// With HERALD_UPDATE_SCREENSHOTS=1 the load lasts a minute and a half, in waves, and the page
// is saved as docs/images/ui-dashboard.png.
func TestDashboard(t *testing.T) {
	testkit.Chromium(t)
	hubURL := startServe(t, "--ui", "--transport-url", "bolt://"+filepath.Join(t.TempDir(), "herald.db"))
	origin := strings.TrimSuffix(hubURL, server.Path)
	browser := testkit.Browser(t)

	// Without the right: the page says so.
	denied := openDashboard(t, browser, origin, mint(t, nil, []string{"https://example.com/{anything}"}))
	denied.waitFor("the refusal", `document.querySelector('#status').dataset.state === 'refused'`)
	want := "This token may not read the dashboard (403: token's mercure.subscribe claim does not match /.well-known/mercure/stats). Its mercure.subscribe claim must match /.well-known/mercure/stats, as * does."
	if got := denied.text("#status"); got != want {
		t.Fatalf("status %q, want %q", got, want)
	}
	noToken := openDashboard(t, browser, origin, "")
	noToken.waitFor("the refusal", `document.querySelector('#status').dataset.state === 'refused'`)
	if got := noToken.text("#status"); !strings.HasPrefix(got, "The hub refused the token (401: missing JWT") {
		t.Fatalf("status without a token: %q", got)
	}

	tok := mint(t, nil, []string{server.StatsTopic})
	d := openDashboard(t, browser, origin, tok)
	d.waitFor("the stream", `document.querySelector('#status').dataset.state === 'live'`)

	hot, warm, cold := "https://example.com/hot", "https://example.com/warm", "https://example.com/cold"
	load := topicLoad{topics: []string{hot, warm, cold}, subscribers: []int{10, 5, 3}, publishes: []int{30, 10, 5}}
	spread := 3 * time.Second
	shots := os.Getenv("HERALD_UPDATE_SCREENSHOTS") == "1"
	if shots {
		load.publishes = []int{3000, 900, 300}
		spread = 90 * time.Second
	}
	load.run(t, hubURL, spread)
	published, delivered := strconv.Itoa(load.published()), strconv.Itoa(load.delivered())
	if shots {
		published, delivered = fmt.Sprintf("%d,%03d", load.published()/1000, load.published()%1000), fmt.Sprintf("%d,%03d", load.delivered()/1000, load.delivered()%1000)
	}
	d.waitFor("the totals of the load", fmt.Sprintf(`document.querySelector('#total-published')?.textContent === %q && document.querySelector('#total-delivered')?.textContent === %q`, published, delivered))
	d.waitFor("points on the charts", `['subscribers', 'published', 'delivered', 'bytes', 'latency'].every((id) => Number(document.querySelector('#chart-' + id).dataset.points) >= 3)`)
	if got := d.eval(`document.querySelector('#top-subscribed tbody tr').dataset.topic + ' ' + document.querySelector('#top-subscribed tbody tr td.num').textContent`); got != hot+" 10" {
		t.Fatalf("busiest by subscribers: %q", got)
	}
	// The load fits in the last minute, except the long one for the screenshot.
	busiest := hot + " " + strconv.Itoa(load.subscribers[0]*load.publishes[0])
	if shots {
		busiest = hot
	}
	if got := d.eval(`document.querySelector('#top-delivered tbody tr').dataset.topic + (` + strconv.FormatBool(!shots) + ` ? ' ' + document.querySelector('#top-delivered tbody tr td.num').textContent : '')`); got != busiest {
		t.Fatalf("busiest by deliveries: %q, want %q", got, busiest)
	}
	if got := d.eval(`document.querySelectorAll('#nodes tbody tr').length`); got != "1" {
		t.Fatalf("%s node rows, want 1", got)
	}

	// herald top over the hub's address, with the same token, counts the same.
	st := topOnce(t, "--hub", hubURL, "--token", tok)
	if st.Totals.Published != uint64(load.published()) || st.Totals.Delivered != uint64(load.delivered()) {
		t.Fatalf("herald top: totals %+v, want %d published and %d delivered", st.Totals, load.published(), load.delivered())
	}
	if len(st.TopSubscribed) == 0 || st.TopSubscribed[0].Topic != hot || len(st.TopDelivered) == 0 || st.TopDelivered[0].Topic != hot {
		t.Fatalf("herald top: busiest %+v and %+v", st.TopSubscribed, st.TopDelivered)
	}
	if shots {
		saveDocsScreenshot(t, d, "ui-dashboard")
	}
}

// saveDocsScreenshot saves the page, full height, as docs/images/NAME.png.
func saveDocsScreenshot(t *testing.T, d *dashTab, name string) {
	t.Helper()
	png, err := chromedp.Run(d.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "images", name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
