package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/internal/testkit"
	"github.com/heraldhub/herald/ui"
)

// TestBrowser drives the UI in a headless Chromium against real hubs: one browser, one tab
// per subtest, one hub per subtest.
func TestBrowser(t *testing.T) {
	browser := testkit.Browser(t)
	t.Run("Debugger", func(t *testing.T) { testDebugger(t, browser) })
	t.Run("Draft08", func(t *testing.T) { testDraft08(t, browser) })
	t.Run("DescribeToken", func(t *testing.T) { testDescribeToken(t, browser) })
	t.Run("Reconnect", func(t *testing.T) { testReconnect(t, browser) })
	t.Run("Demo", func(t *testing.T) { testDemo(t, browser) })
	t.Run("SSEParser", func(t *testing.T) { testSSEParser(t, browser) })
	t.Run("Dashboard", func(t *testing.T) { testDashboard(t, browser) })
}

// testDashboard opens the dashboard of a dev hub: its token is minted by the button, the
// figures follow the hub's publishes, and the page logs nothing wrong (its CSP, its Trusted
// Types). A token for other topics gets the refusal in words.
func testDashboard(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{stats: true, ui: ui.Config{MintToken: mint}})
	tb := openTab(t, browser, th.UI+"dashboard/")
	tb.waitFor("the page", `document.body.dataset.ready === 'true' && !document.querySelector('#mint').hidden`)
	tb.do("minting a token", chromedp.Click(chromedp.CSS("#mint")))
	tb.waitFor("the stream", `document.querySelector('#status').dataset.state === 'live'`)
	if got := eval[string](tb, `document.querySelector('#token-info').textContent`); !strings.HasPrefix(got, "publish: nothing · subscribe: /.well-known/mercure/stats · expires in ") {
		t.Errorf("token line %q", got)
	}
	for i := range 3 {
		th.publish(t, url.Values{"topic": {"https://example.com/dash"}, "data": {strconv.Itoa(i)}})
	}
	tb.waitFor("the publishes", `document.querySelector('#total-published').textContent === '3' && Number(document.querySelector('#chart-published').dataset.points) >= 1`)
	if got := eval[string](tb, `document.querySelector('#now-version').textContent + ' ' + document.querySelector('#now-transport').textContent`); got != "v1.2.3 memory · reachable · lag 0" {
		t.Errorf("version and transport %q", got)
	}
	tb.do("stopping", chromedp.Click(chromedp.CSS("#connect")))
	tb.waitFor("the stop", `document.querySelector('#status').dataset.state === 'stopped'`)
	tb.do("entering a token for other topics", setValue("#token", mustToken(t, nil, []string{"https://example.com/{x}"}, time.Hour)),
		chromedp.Click(chromedp.CSS("#connect")))
	tb.waitFor("the refusal", `document.querySelector('#status').dataset.state === 'refused'`)
	want := "This token may not read the dashboard (403: token's mercure.subscribe claim does not match /.well-known/mercure/stats). Its mercure.subscribe claim must match /.well-known/mercure/stats, as * does."
	if got := eval[string](tb, `document.querySelector('#status').textContent`); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	tb.checkClean()
}

// parsed is what SSEParser reported for one input.
type parsed struct {
	Events   []sseEvent `json:"events"`
	Comments []string   `json:"comments"`
	LastID   string     `json:"lastID"`
}

type sseEvent struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	Data  string `json:"data"`
	Retry *int   `json:"retry"`
}

// testSSEParser feeds the page's event-stream parser (sse.js, loaded as the page loads it)
// with streams cut into chunks at every awkward place.
func testSSEParser(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{})
	tb := openTab(t, browser, th.UI)
	retry := func(n int) *int { return &n }
	cases := []struct {
		name   string
		chunks []string
		want   parsed
	}{
		{"hub frame", []string{":\n\nevent: book\nretry: 2500\nid: urn:1\ndata: {\n"}, parsed{Comments: []string{""}, LastID: ""}},
		{"hub frame, complete", []string{":\n", "event: book\nretry: 2500\nid: urn:1\ndata: {\ndata:   \"a\": 1\ndata: }\n\n"},
			parsed{Comments: []string{""}, LastID: "urn:1", Events: []sseEvent{{ID: "urn:1", Type: "book", Data: "{\n  \"a\": 1\n}", Retry: retry(2500)}}}},
		{"CRLF split between chunks, BOM", []string{"\ufeffdata: a\r", "\nid: 2\r", "\n\r", "\ndata:b\r\rdata\n\n"},
			parsed{LastID: "2", Events: []sseEvent{{ID: "2", Type: "message", Data: "a"}, {ID: "2", Type: "message", Data: "b"}, {ID: "2", Type: "message", Data: ""}}}},
		{"byte by byte", strings.Split("id: x\ndata: one\ndata: two\n\n: hi\n", ""),
			parsed{LastID: "x", Comments: []string{" hi"}, Events: []sseEvent{{ID: "x", Type: "message", Data: "one\ntwo"}}}},
		{"id without data moves the last id; NUL ids and bad retry are ignored", []string{"id: a\n\nid: b\u0000\nretry: 1s\ndata: d\n\nunknown: field\n\n"},
			parsed{LastID: "a", Events: []sseEvent{{ID: "a", Type: "message", Data: "d"}}}},
		{"incomplete event is not dispatched", []string{"data: never finished\n"}, parsed{}},
	}
	for _, c := range cases {
		chunks, _ := json.Marshal(c.chunks)
		got := evalAsync[parsed](tb, `import('./sse.js').then(({SSEParser}) => {
			const out = {events: [], comments: []};
			const p = new SSEParser((ev) => out.events.push(ev), (c) => out.comments.push(c));
			for (const chunk of `+string(chunks)+`) p.push(chunk);
			out.lastID = p.lastEventID;
			return out;
		})`)
		if !parsedEqual(got, c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	tb.checkClean()
}

func parsedEqual(a, b parsed) bool {
	return a.LastID == b.LastID && slices.Equal(a.Comments, b.Comments) && slices.EqualFunc(a.Events, b.Events, func(x, y sseEvent) bool {
		return x.ID == y.ID && x.Type == y.Type && x.Data == y.Data && (x.Retry == nil) == (y.Retry == nil) && (x.Retry == nil || *x.Retry == *y.Retry)
	})
}

// pageRow is an update row of the debugger's event list.
type pageRow struct {
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Data      string   `json:"data"`
	Selectors []string `json:"selectors"`
	Duplicate bool     `json:"duplicate"`
}

// pageNotice is a notice row of the event list: a connection, a reconnect, an error…
type pageNotice struct {
	Kind     string `json:"kind"`
	Selector string `json:"selector"`
	Message  string `json:"message"`
}

const (
	rowsJS = `[...document.querySelectorAll('#event-rows tr.update')].reverse().map(tr => ({
		id: tr.dataset.id,
		type: tr.querySelector('.c-type').textContent,
		data: tr.querySelector('.c-data pre').textContent,
		selectors: [...tr.querySelectorAll('.c-sub code')].map(c => c.textContent),
		duplicate: tr.querySelector('.badge.warn') !== null,
	}))`
	noticesJS = `[...document.querySelectorAll('#event-rows tr.notice')].reverse().map(tr => ({
		kind: [...tr.classList].find(c => c.startsWith('kind-')).slice(5),
		selector: tr.querySelector('.c-sub code').textContent,
		message: tr.querySelector('.c-msg').textContent,
	}))`
)

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// rowWith is a condition: an update row with this id exists.
func rowWith(id string) string {
	return `document.querySelector('#event-rows tr.update[data-id=' + CSS.escape(` + jsString(id) + `) + ']') !== null`
}

// noticeWith is a condition: a notice row of this kind contains text.
func noticeWith(kind, text string) string {
	return `[...document.querySelectorAll('#event-rows tr.notice.kind-` + kind + ` .c-msg')].some(td => td.textContent.includes(` + jsString(text) + `))`
}

// setValue sets a form field's value as typing would, with input and change events. (chromedp's
// SetValue cannot set an empty value.)
func setValue(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		ok, err := chromedp.Evaluate[bool](`((el, v) => {
			if (!el) return false;
			el.value = v;
			el.dispatchEvent(new Event('input', {bubbles: true}));
			el.dispatchEvent(new Event('change', {bubbles: true}));
			return true;
		})(document.querySelector(`+jsString(sel)+`), `+jsString(value)+`)`)(ctx, t)
		if err == nil && !ok {
			err = fmt.Errorf("no element %s", sel)
		}
		return err
	})
}

// matcher is a line of the subscribe form: its type (topic, exact, urlpattern) and value.
type matcher struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// topics are 0.x lines of the subscribe form.
func topics(selectors ...string) []matcher {
	out := make([]matcher, len(selectors))
	for i, s := range selectors {
		out[i] = matcher{"topic", s}
	}
	return out
}

// setMatchers fills the subscribe form's lines as a person would: adding lines with the
// button, choosing each line's type, typing its value.
func setMatchers(lines []matcher) chromedp.Action[chromedp.Void] {
	list, _ := json.Marshal(lines)
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`((lines) => {
			const ol = document.querySelector('#matchers');
			while (ol.children.length < lines.length) document.querySelector('#add-matcher').click();
			while (ol.children.length > lines.length) ol.lastElementChild.querySelector('button').click();
			lines.forEach(({type, value}, i) => {
				const select = ol.children[i].querySelector('select'), input = ol.children[i].querySelector('input');
				select.value = type;
				select.dispatchEvent(new Event('change', {bubbles: true}));
				input.value = value;
				input.dispatchEvent(new Event('input', {bubbles: true}));
			});
			return true;
		})(`+string(list)+`)`)(ctx, t)
		return err
	})
}

// subscribe fills the subscribe form and waits until every stream is open.
func (tb *tab) subscribe(lines []matcher, from string) {
	tb.t.Helper()
	before := eval[int](tb, `document.querySelectorAll('#streams li').length`)
	tb.do("subscribing",
		setMatchers(lines),
		setValue("#from", from),
		chromedp.Click(chromedp.CSS("#subscribe-form button[type=submit]")))
	tb.waitFor("the subscriptions to open", fmt.Sprintf(
		`document.querySelectorAll('#streams li').length === %d && [...document.querySelectorAll('#streams li')].slice(%d).every(li => li.dataset.state === 'open')`,
		before+len(lines), before))
}

func testDebugger(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{subscriptions: true, ui: ui.Config{Demo: true, MintToken: mint, MintAccessToken: mintAccess, Issuer: testIssuer}})
	tb := openTab(t, browser, th.UI)
	start := time.Now()
	tb.waitFor("the page to load its configuration", `document.body.dataset.ready === 'true'`)
	if hidden := eval[[]bool](tb, `[document.querySelector('#mint').hidden, document.querySelector('#mint-access').hidden, document.querySelector('#demo-link').hidden]`); slices.Contains(hidden, true) {
		t.Errorf("with MintToken, MintAccessToken and Demo, the mint buttons and the demo link must show (hidden: %v)", hidden)
	}
	if hub := eval[string](tb, `document.querySelector('#hub').value`); hub != th.URL {
		t.Errorf("default hub URL %q, want %q", hub, th.URL)
	}

	// Mint a dev token: the page shows what it allows.
	tb.do("minting a token", chromedp.Click(chromedp.CSS("#mint")))
	tb.waitFor("the token", `document.querySelector('#token').value.split('.').length === 3`)
	tb.waitFor("the token's description", `document.querySelector('#token-info').textContent.includes('publish: * · subscribe: * · expires in')`)

	// Two selectors, one stream each; both match books/1, one matches books/2.
	const (
		template = "https://example.com/books/{id}"
		exact    = "https://example.com/books/1"
	)
	tb.subscribe(topics(template, exact), "")

	// Publish from the page.
	tb.do("publishing from the page",
		setValue("#pub-topics", exact),
		setValue("#pub-data", `{"title":"From the page","copies":3}`),
		setValue("#pub-id", "urn:test:page-1"),
		setValue("#pub-type", "book"),
		chromedp.Click(chromedp.CSS("#publish-form button[type=submit]")))
	tb.waitFor("the publish result", `document.querySelector('#pub-result').dataset.id === 'urn:test:page-1'`)
	if got := eval[string](tb, `document.querySelector('#pub-result').textContent`); got != "Published urn:test:page-1" {
		t.Errorf("publish result %q", got)
	}

	// Publish from Go: one update for the template only, one for nobody, then one for both.
	th.publish(t, url.Values{"topic": {"https://example.com/books/2"}, "data": {"plain text\nsecond line"}, "id": {"urn:test:go-1"}})
	th.publish(t, url.Values{"topic": {"https://example.com/authors/1"}, "data": {"nobody's"}, "id": {"urn:test:go-2"}})
	th.publish(t, url.Values{"topic": {exact, "https://example.com/other"}, "data": {`[1,2]`}, "id": {"urn:test:go-3"}})
	tb.waitFor("the updates", rowWith("urn:test:go-3")+` && document.querySelector('#event-rows tr[data-id="urn:test:go-3"] .c-sub').children.length === 2`)
	rows := eval[[]pageRow](tb, rowsJS)
	want := []pageRow{
		{ID: "urn:test:page-1", Type: "book", Data: "{\n  \"title\": \"From the page\",\n  \"copies\": 3\n}", Selectors: []string{template, exact}},
		{ID: "urn:test:go-1", Type: "message", Data: "plain text\nsecond line", Selectors: []string{template}},
		{ID: "urn:test:go-3", Type: "message", Data: "[\n  1,\n  2\n]", Selectors: []string{template, exact}},
	}
	// The two streams deliver independently: a row's selectors come in either order, and
	// the rows too (the page lists updates as they first arrive, and the template stream may
	// get go-1 after the exact one got go-3).
	for i := range rows {
		if len(rows[i].Selectors) == 2 && rows[i].Selectors[0] == exact {
			slices.Reverse(rows[i].Selectors)
		}
	}
	order := func(r pageRow) int { return slices.IndexFunc(want, func(w pageRow) bool { return w.ID == r.ID }) }
	slices.SortStableFunc(rows, func(a, b pageRow) int { return order(a) - order(b) })
	if !slices.EqualFunc(rows, want, func(a, b pageRow) bool {
		return a.ID == b.ID && a.Type == b.Type && a.Data == b.Data && slices.Equal(a.Selectors, b.Selectors) && !a.Duplicate
	}) {
		t.Errorf("event rows:\n  %+v\nwant\n  %+v", rows, want)
	}
	notices := eval[[]pageNotice](tb, noticesJS)
	if len(notices) != 2 || notices[0].Kind != "open" || notices[0].Message != "connected" || notices[1].Kind != "open" {
		t.Errorf("notices: %+v, want two \"connected\"", notices)
	}
	t.Logf("subscribed, published and received after %v", time.Since(start).Round(time.Millisecond))

	// Active subscriptions: the page's own streams are listed, then a subscriber arrives and
	// leaves while the panel watches.
	tb.do("watching subscriptions", chromedp.Click(chromedp.CSS("#presence-watch")))
	tb.waitFor("the page's own subscriptions in the panel",
		`document.querySelector('#presence-rows tr[data-topic="https://example.com/books/{id}"]') !== null && document.querySelector('#presence-rows tr[data-topic="https://example.com/books/1"]') !== null`)
	const visitor = "https://example.com/visitors/{who}"
	req, err := http.NewRequestWithContext(tb.ctx, http.MethodGet, th.URL+"?topic="+url.QueryEscape(visitor), nil)
	if err != nil {
		t.Fatal(err)
	}
	visitorToken, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": map[string]any{"subscribe": []string{visitor}, "payload": map[string]string{"user": "alice"}},
	}).SignedString([]byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+visitorToken)
	resp, err := th.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the visitor's arrival",
		`[...document.querySelectorAll('#presence-log li.kind-arrived')].some(li => li.textContent.includes(`+jsString(visitor+` by `)+`) && li.textContent.endsWith(' payload {"user":"alice"}')) && document.querySelector('#presence-rows tr[data-topic=`+jsString(visitor)+`]') !== null`)
	if n := eval[int](tb, `document.querySelectorAll('#presence-rows tr').length`); n != 5 {
		t.Errorf("%d subscriptions listed, want 5: the page's two, the panel's own two (0.x and draft-08) and the visitor's", n)
	}
	tb.docsScreenshot("ui-debugger", 900)
	resp.Body.Close()
	tb.waitFor("the visitor's departure",
		`[...document.querySelectorAll('#presence-log li.kind-left')].some(li => li.textContent.includes(`+jsString(visitor)+`)) && document.querySelector('#presence-rows tr[data-topic=`+jsString(visitor)+`]') === null`)

	// Errors in words: the same id again,
	tb.do("publishing a duplicate id", chromedp.Click(chromedp.CSS("#publish-form button[type=submit]")))
	tb.waitFor("the refusal", `document.querySelector('#pub-result').textContent === 'Refused: 409: an update with id "urn:test:page-1" already exists'`)
	// an expired token, then a garbage one; both streams stop for good.
	tb.do("entering an expired token", setValue("#token", mustToken(t, nil, []string{"*"}, -time.Minute)))
	tb.do("subscribing with it",
		setMatchers(topics("https://example.com/expired")),
		chromedp.Click(chromedp.CSS("#subscribe-form button[type=submit]")))
	tb.waitFor("the 401", noticeWith("error", "401: token expired")+` && document.querySelector('#streams li[data-selector="https://example.com/expired"]').dataset.state === 'failed'`)
	tb.do("entering a garbage token", setValue("#token", "not.a.jwt"),
		setMatchers(topics("https://example.com/garbage")),
		chromedp.Click(chromedp.CSS("#subscribe-form button[type=submit]")))
	tb.waitFor("the 401", noticeWith("error", "401: malformed token"))
	tb.do("publishing with it", chromedp.Click(chromedp.CSS("#publish-form button[type=submit]")))
	tb.waitFor("the refusal", `document.querySelector('#pub-result').textContent === 'Refused: 401: malformed token'`)
	tb.screenshot("ui-debugger")
	tb.checkClean()
	t.Logf("debugger checks done after %v", time.Since(start).Round(time.Millisecond))
}

func testReconnect(t *testing.T, browser context.Context) {
	// Streams last 0.8–1 s; no subscriptions API; no token minting; no demo.
	th := startHub(t, hubOptions{writeTimeout: time.Second})
	tb := openTab(t, browser, th.UI)
	start := time.Now()
	tb.waitFor("the page to load its configuration", `document.body.dataset.ready === 'true'`)
	if hidden := eval[[]bool](tb, `[document.querySelector('#mint').hidden, document.querySelector('#mint-access').hidden, document.querySelector('#demo-link').hidden]`); slices.Contains(hidden, false) {
		t.Errorf("without MintToken, MintAccessToken and Demo, the mint buttons and the demo link must be hidden (hidden: %v)", hidden)
	}

	// Anonymous subscription; the hub ends the stream within a second and the page resumes.
	const ticks = "https://example.com/ticks"
	tb.subscribe(topics(ticks), "")
	th.publish(t, url.Values{"topic": {ticks}, "data": {"a"}, "id": {"urn:test:a"}})
	tb.waitFor("update a", rowWith("urn:test:a"))
	tb.waitFor("a reconnect after a", noticeWith("reconnect", "reconnected, resuming after urn:test:a (the hub ended the stream)"))
	th.publish(t, url.Values{"topic": {ticks}, "data": {"b"}, "id": {"urn:test:b"}})
	tb.waitFor("update b", rowWith("urn:test:b"))
	// One more reconnect, resuming after b, must not bring b again.
	tb.waitFor("a reconnect after b", noticeWith("reconnect", "reconnected, resuming after urn:test:b"))
	rows := eval[[]pageRow](tb, rowsJS)
	if len(rows) != 2 || rows[0].ID != "urn:test:a" || rows[0].Data != "a" || rows[1].ID != "urn:test:b" || rows[1].Data != "b" || rows[1].Duplicate {
		t.Errorf("rows after reconnects: %+v, want a then b, once each", rows)
	}
	t.Logf("reconnects checked after %v", time.Since(start).Round(time.Millisecond))

	// From history, with an id the hub does not know: it replays what it has and says
	// "earliest", which the page flags.
	tb.subscribe(topics("https://example.com/{what}"), "urn:test:unknown")
	tb.waitFor("the warning", noticeWith("warning", "the hub no longer had urn:test:unknown: updates may have been missed"))
	tb.waitFor("the replay", `document.querySelector('#event-rows tr[data-id="urn:test:b"] .c-sub').children.length === 2`)

	// No subscriptions API on this hub: said in words.
	tb.do("watching subscriptions", chromedp.Click(chromedp.CSS("#presence-watch")))
	tb.waitFor("the 404", `document.querySelector('#presence-status').textContent.includes('This hub does not serve the active subscriptions API: it runs without the subscriptions directive')`)
	if got := eval[string](tb, `document.querySelector('#presence-status').textContent`); !strings.HasPrefix(got, "404 page not found. ") {
		t.Errorf("presence status %q, want it to start with the hub's answer", got)
	}
	tb.screenshot("ui-reconnect")
	tb.checkClean()
}

func testDemo(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{subscriptions: true, ui: ui.Config{Demo: true, MintToken: mint}})
	tb := openTab(t, browser, th.UI+"demo/")
	start := time.Now()
	tb.waitFor("the page to mint its token", `document.body.dataset.ready === 'true'`)
	if !eval[bool](tb, `document.querySelector('#token-field').hidden`) {
		t.Error("the token field shows although the hub mints tokens")
	}
	tb.waitFor("the panes to connect", `[...document.querySelectorAll('.pane')].every(p => p.dataset.state === 'open')`)
	tb.do("starting the publisher",
		setValue("#rate", "25"),
		chromedp.Click(chromedp.CSS("#start")))
	tb.waitFor("every pane to receive updates",
		`[...document.querySelectorAll('.pane')].every(p => Number(p.dataset.count) >= 3) && Number(document.querySelector('#published').dataset.total) >= 20`)
	tb.do("stopping the publisher", chromedp.Click(chromedp.CSS("#start")))
	tb.waitFor("the publisher to stop", `document.querySelector('#start').getAttribute('aria-pressed') === 'false'`)
	// Every pane ends with exactly what matches its selector; * with everything.
	tb.waitFor("the panes to catch up", `(() => {
		const p = document.querySelector('#published').dataset;
		const c = [...document.querySelectorAll('.pane')].map(e => e.dataset.count);
		return c[0] === p.sensor1 && c[1] === p.sensors && c[2] === p.stocks && c[3] === p.total;
	})()`)
	counts := eval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('.pane')].map(e => [e.dataset.selector, e.dataset.count]))`)
	total, _ := strconv.Atoi(counts["*"])
	t.Logf("demo: pane counts %v (published %d) after %v", counts, total, time.Since(start).Round(time.Millisecond))
	tb.waitFor("the counters' animations to end", `document.getAnimations().length === 0`)
	tb.docsScreenshot("ui-demo", 660)
	tb.screenshot("ui-demo")
	tb.checkClean()
}

// testDraft08 drives the debugger in the draft-08 dialect: the page reads the hub's resource
// identifier from its metadata, mints an access token with it, subscribes with match= and
// match_urlpattern=, publishes with the access token, receives the hub's own events (type
// mercure), and its presence panel lists draft-08 subscriptions from the API and from events.
func testDraft08(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{subscriptions: true, publishOrigins: []string{"*"}, ui: ui.Config{MintToken: mint, MintAccessToken: mintAccess, Issuer: testIssuer}})
	tb := openTab(t, browser, th.UI)
	tb.waitFor("the page to load its configuration", `document.body.dataset.ready === 'true' && !document.querySelector('#mint-access').hidden`)
	if got, want := eval[string](tb, `document.querySelector('#resource-info').textContent`),
		"draft-08: aud "+th.URL+" · matcher types exact, urlpattern · tokens minted here: iss "+testIssuer; got != want {
		t.Errorf("resource line %q, want %q", got, want)
	}

	tb.do("minting a draft-08 token", chromedp.Click(chromedp.CSS("#mint-access")))
	tb.waitFor("the token", `document.querySelector('#token').value.split('.').length === 3`)
	info := eval[string](tb, `document.querySelector('#token-info').textContent`)
	if !strings.HasPrefix(info, "draft-08 access token · publish: * · subscribe: * · expires in ") || !strings.HasSuffix(info, " · iss "+testIssuer+" · aud "+th.URL) {
		t.Errorf("token line %q", info)
	}

	const (
		pattern  = "https://example.com/books/:id"
		exact    = "https://example.com/books/1"
		presence = "/.well-known/mercure/subscriptions/:type/:match/:subscriber"
	)
	tb.subscribe([]matcher{{"urlpattern", pattern}, {"exact", exact}, {"urlpattern", presence}}, "")
	if got := eval[[]string](tb, `[...document.querySelectorAll('#streams li')].map(li => li.dataset.selector)`); !slices.Equal(got, []string{"urlpattern: " + pattern, "exact: " + exact, "urlpattern: " + presence}) {
		t.Errorf("streams %q", got)
	}

	// Publish from the page with the access token: books/7 reaches the pattern only, books/1 both.
	for _, p := range []struct{ topic, id string }{{"https://example.com/books/7", "urn:test:d08-7"}, {exact, "urn:test:d08-1"}} {
		tb.do("publishing from the page",
			setValue("#pub-topics", p.topic),
			setValue("#pub-data", "for "+p.topic),
			setValue("#pub-id", p.id),
			chromedp.Click(chromedp.CSS("#publish-form button[type=submit]")))
		tb.waitFor("the publish result", `document.querySelector('#pub-result').dataset.id === `+jsString(p.id))
	}
	tb.waitFor("the updates", rowWith("urn:test:d08-1")+` && document.querySelector('#event-rows tr[data-id="urn:test:d08-1"] .c-sub').children.length === 2`)
	var rows []pageRow
	for _, r := range eval[[]pageRow](tb, rowsJS) {
		if r.Type != "mercure" {
			rows = append(rows, r)
		}
	}
	want := []pageRow{
		{ID: "urn:test:d08-7", Type: "message", Data: "for https://example.com/books/7", Selectors: []string{"urlpattern: " + pattern}},
		{ID: "urn:test:d08-1", Type: "message", Data: "for " + exact, Selectors: []string{"exact: " + exact, "urlpattern: " + pattern}},
	}
	// The streams deliver independently: rows and a row's selectors come in any order.
	for _, r := range rows {
		slices.Sort(r.Selectors)
	}
	slices.SortFunc(rows, func(a, b pageRow) int { return strings.Compare(b.ID, a.ID) })
	if !slices.EqualFunc(rows, want, func(a, b pageRow) bool {
		return a.ID == b.ID && a.Type == b.Type && a.Data == b.Data && slices.Equal(a.Selectors, b.Selectors) && !a.Duplicate
	}) {
		t.Errorf("event rows:\n  %+v\nwant\n  %+v", rows, want)
	}

	// Presence with the access token: the API answers draft-08 documents (the cursor, the last
	// update dispatched, in the Link header); the page's streams are listed by match type and
	// match, then the panel's own two (0.x and draft-08) as their events come.
	tb.do("watching subscriptions", chromedp.Click(chromedp.CSS("#presence-watch")))
	tb.waitFor("the page's own subscriptions in the panel",
		`document.querySelector('#presence-rows tr[data-match-type="urlpattern"][data-match=`+jsString(pattern)+`]') !== null && document.querySelector('#presence-rows tr[data-match-type="exact"][data-match=`+jsString(exact)+`]') !== null`)
	if got := eval[string](tb, `document.querySelector('#presence-status').textContent`); got != "3 active when loaded; following arrivals and departures after urn:test:d08-1." {
		t.Errorf("presence status %q", got)
	}
	// A draft-08 visitor and a 0.x one arrive, listed as events of both forms come.
	visitors := map[string]string{"match_urlpattern": "https://example.com/authors/:id", "topic": "https://example.com/authors/{id}"}
	var bodies []*http.Response
	for param, v := range visitors {
		resp, err := th.Client.Get(th.URL + "?" + param + "=" + url.QueryEscape(v))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp)
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	arrived := func(label string) string {
		return `[...document.querySelectorAll('#presence-log li.kind-arrived')].some(li => li.textContent.includes(` + jsString(label+" by ") + `))`
	}
	tb.waitFor("the visitors' arrival", arrived("urlpattern: "+visitors["match_urlpattern"])+" && "+arrived(visitors["topic"])+
		` && document.querySelector('#presence-rows tr[data-match=`+jsString(visitors["match_urlpattern"])+`]') !== null && document.querySelector('#presence-rows tr[data-topic=`+jsString(visitors["topic"])+`]') !== null`)
	if n := eval[int](tb, `document.querySelectorAll('#presence-rows tr').length`); n != 7 {
		t.Errorf("%d subscriptions listed, want 7: the page's three, the panel's two and the visitors'", n)
	}
	// The page's stream of draft-08 subscription events shows them, with the type mercure.
	tb.waitFor("the draft-08 visitor's event in the list", `[...document.querySelectorAll('#event-rows tr.update')].some(tr => tr.querySelector('.c-type').textContent === 'mercure' && tr.querySelector('.c-data pre').textContent.includes('"match": "https://example.com/authors/:id"'))`)
	for _, resp := range bodies {
		resp.Body.Close()
	}
	tb.waitFor("the visitors' departure", `[...document.querySelectorAll('#presence-log li.kind-left')].length === 2 && document.querySelector('#presence-rows tr[data-match=`+jsString(visitors["match_urlpattern"])+`]') === null`)

	// The cookie option: the access token travels in the __Secure-mercure_access_token cookie
	// only; a private update reaches the stream it authorised, published with the cookie too.
	tb.do("choosing the cookie", chromedp.Click(chromedp.CSS("#use-cookie")))
	if !eval[bool](tb, `document.cookie.split('; ').includes('__Secure-mercure_access_token=' + document.querySelector('#token').value.trim())`) {
		t.Fatal("the page did not set the cookie")
	}
	tb.subscribe([]matcher{{"urlpattern", "https://example.com/cookie/:n"}}, "")
	tb.do("publishing a private update with the cookie",
		setValue("#pub-topics", "https://example.com/cookie/1"),
		setValue("#pub-data", "by cookie"),
		setValue("#pub-id", "urn:test:cookie"),
		chromedp.Click(chromedp.CSS("#pub-private")),
		chromedp.Click(chromedp.CSS("#publish-form button[type=submit]")))
	tb.waitFor("the private update", `document.querySelector('#event-rows tr[data-id="urn:test:cookie"] .c-sub')?.textContent === 'urlpattern: https://example.com/cookie/:n'`)
	tb.do("unticking the cookie", chromedp.Click(chromedp.CSS("#use-cookie")))
	if eval[bool](tb, `document.cookie.includes('__Secure-mercure_access_token')`) {
		t.Error("the page did not clear the cookie")
	}
	tb.screenshot("ui-draft08")
	tb.checkClean()
}

// testDescribeToken checks the page's one-line description of tokens of both dialects
// (lib.js, loaded as the page loads it); the signatures do not matter to it.
func testDescribeToken(t *testing.T, browser context.Context) {
	th := startHub(t, hubOptions{})
	tb := openTab(t, browser, th.UI)
	exp := time.Now().Add(time.Hour - 10*time.Second).Unix() // "60 min" for the next 20 s
	sign := func(header map[string]any, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString([]byte(testKey))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	detail := func(actions []string, topics ...map[string]string) map[string]any {
		return map[string]any{"type": "https://mercure.rocks/authorization-detail", "actions": actions, "topics": topics}
	}
	withPayload := detail([]string{"subscribe"}, map[string]string{"match": "/books/:id", "match_type": "urlpattern"})
	withPayload["payload"] = map[string]string{"user": "alice"}
	cases := []struct {
		name, token, want string
		bad               bool
	}{
		{"0.x", sign(nil, jwt.MapClaims{"exp": exp, "mercure": map[string]any{"publish": []string{"*"}, "payload": 1}}),
			"publish: * · subscribe: nothing · expires in 60 min · payload 1", false},
		{"draft-08", sign(map[string]any{"typ": "at+jwt"}, jwt.MapClaims{"exp": exp, "iss": "https://localhost", "aud": []string{"https://h/.well-known/mercure"},
			"authorization_details": []any{
				detail([]string{"publish", "subscribe"}, map[string]string{"match": "*"}, map[string]string{"match": "urn:x", "match_type": "exact"}),
				withPayload,
				map[string]any{"type": "other", "actions": "ignored"},
			}}),
			`draft-08 access token · publish: *, urn:x · subscribe: *, urn:x, urlpattern: /books/:id · expires in 60 min · iss https://localhost · aud https://h/.well-known/mercure · payload {"user":"alice"}`, false},
		{"draft-08 without aud, typ in another form", sign(map[string]any{"typ": "Application/AT+JWT"}, jwt.MapClaims{"exp": exp, "iss": "https://localhost"}),
			"draft-08 access token · publish: nothing · subscribe: nothing · expires in 60 min · iss https://localhost · aud missing · the hub will refuse it: a malformed Mercure detail, or iss, aud or exp missing", true},
		{"draft-08, malformed detail", sign(map[string]any{"typ": "at+jwt"}, jwt.MapClaims{"exp": exp, "iss": "i", "aud": "a",
			"authorization_details": []any{map[string]any{"type": "https://mercure.rocks/authorization-detail", "actions": "publish"}}}),
			"draft-08 access token · publish: nothing · subscribe: nothing · expires in 60 min · iss i · aud a · the hub will refuse it: a malformed Mercure detail, or iss, aud or exp missing", true},
	}
	for _, c := range cases {
		got := evalAsync[map[string]any](tb, `import('./lib.js').then(({describeToken}) => describeToken(`+jsString(c.token)+`))`)
		if got["text"] != c.want || got["bad"] != c.bad {
			t.Errorf("%s: %v, want %q bad %v", c.name, got, c.want, c.bad)
		}
	}
	tb.checkClean()
}
