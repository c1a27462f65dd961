package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/server"
)

// nodeStats reads one snapshot of a node's live stats over its hub address.
func nodeStats(t *testing.T, n *node, tok string) server.Stats {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.url+"/stats?once=1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st server.Stats
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDashboardShowsEveryNode runs two nodes with the UI on a real Redis or NATS: each node's
// dashboard, in a headless Chromium, lists both nodes from their heartbeats, with their
// addresses and subscribers, this node marked.
func TestDashboardShowsEveryNode(t *testing.T) {
	testkit.Chromium(t)
	forEachBackend(t, func(t *testing.T, b backend) {
		tr := b.url("dash")
		nodes := []*node{startNode(t, tr, "--ui"), startNode(t, tr, "--ui")}
		tok := token(t, map[string]any{"subscribe": []string{server.StatsTopic}})
		var tags, addrs []string
		for _, n := range nodes {
			st := nodeStats(t, n, tok)
			tags = append(tags, st.Nodes[0].Tag)
			u, _ := url.Parse(n.url)
			addrs = append(addrs, u.Host)
		}
		// Two subscribers on the first node, one on the second.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for i, n := range []*node{nodes[0], nodes[0], nodes[1]} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.url+"?topic=news", nil)
			resp, err := (&http.Client{Transport: client.Transport}).Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("subscriber %d: %v %v", i, err, resp)
			}
			defer resp.Body.Close()
		}

		browser := testkit.Browser(t)
		for i, n := range nodes {
			tab, cancelTab := chromedp.NewContext(browser)
			defer cancelTab()
			tab, cancelTimeout := context.WithTimeout(tab, time.Minute)
			defer cancelTimeout()
			origin := strings.TrimSuffix(n.url, "/.well-known/mercure")
			if err := chromedp.Do(tab, chromedp.Navigate(origin+"/.well-known/mercure/ui/dashboard/")); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(tab, chromedp.Poll[chromedp.Void](`document.body.dataset.ready === 'true'`)); err != nil {
				t.Fatal(err)
			}
			if _, err := chromedp.Run(tab, chromedp.Evaluate[any](fmt.Sprintf(`(() => { const t = document.querySelector('#token'); t.value = %q; document.querySelector('#connect').click(); })()`, tok))); err != nil {
				t.Fatal(err)
			}
			// Rows: tag, address, subscribers, and which one is this node.
			row := func(j int, subs int) string {
				self := "false"
				if i == j {
					self = "true"
				}
				return fmt.Sprintf("%s|%s|%d|%s", tags[j], addrs[j], subs, self)
			}
			want := []string{row(i, []int{2, 1}[i]), row(1-i, []int{2, 1}[1-i])}
			wantJSON, _ := json.Marshal(want)
			cond := `JSON.stringify([...document.querySelectorAll('#nodes tbody tr')].map((r) => [r.dataset.tag, r.cells[1].textContent, r.cells[2].textContent, String(r.classList.contains('self'))].join('|'))) === ` + fmt.Sprintf("%q", wantJSON)
			if _, err := chromedp.Run(tab, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
				rows, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('#nodes').innerText + '\n' + document.querySelector('#status').textContent`))
				t.Fatalf("node %d's dashboard: want rows %s; shows:\n%s", i, wantJSON, rows)
			}
		}

		// The transport goes away: the stats say so, then that it is back.
		b.server.Kill()
		waitFor(t, 10*time.Second, "the transport reported unreachable", func() bool {
			th := nodeStats(t, nodes[0], tok).TransportHealth
			return !th.Reachable && th.Error != ""
		})
		b.server.Start()
		waitFor(t, 20*time.Second, "the transport reported reachable again", func() bool {
			return nodeStats(t, nodes[0], tok).TransportHealth.Reachable
		})
	})
}
