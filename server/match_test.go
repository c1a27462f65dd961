package server_test

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/server"
)

const formType = "application/x-www-form-urlencoded"

// queryHeader is a header for a QUERY subscription with a form body.
func queryHeader() http.Header {
	return http.Header{"Content-Type": {formType}}
}

// TestSubscribeMatchRefusals checks the refusals of draft-08 subscribe requests (draft sections
// "Subscription" and "Matcher Types") and that 0.x requests keep their answers.
func TestSubscribeMatchRefusals(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) {
		c.Anonymous = true
		c.MaxSelectors = 3
		c.MaxBodyBytes = 8192
	})
	long := strings.Repeat("a", 4097)
	tests := []struct {
		name   string
		method string
		query  string
		body   string
		header http.Header
		code   int
		reason string
	}{
		// 0.x answers are unchanged.
		{"no topic nor match", "GET", "", "", nil, 400, "Missing \"topic\" parameter\n"},
		{"0.x too many", "GET", "topic=a&topic=b&topic=c&topic=d", "", nil, 400, "too many topic selectors: 4, at most 3\n"},
		{"0.x control character", "GET", "topic=a%0Ab", "", nil, 400, "invalid topic selector: topic \"a\\nb\" contains a control character\n"},
		// "Subscription": the reserved match namespace.
		{"unsupported matcher type", "GET", "match_regex=a", "", nil, 400, "unsupported matcher parameter \"match_regex\": use match, match_exact or match_urlpattern\n"},
		{"match prefix, any case", "GET", "topic=a&Match=a", "", nil, 400, "unsupported matcher parameter \"Match\": use match, match_exact or match_urlpattern\n"},
		{"match prefix, upper case type", "GET", "match=a&MATCH_EXACT=a", "", nil, 400, "unsupported matcher parameter \"MATCH_EXACT\": use match, match_exact or match_urlpattern\n"},
		{"unrelated name beginning with match", "GET", "match=a&matches=1", "", nil, 400, "unsupported matcher parameter \"matches\": use match, match_exact or match_urlpattern\n"},
		{"non-canonical type name", "GET", "match_urlPattern=a", "", nil, 400, "unsupported matcher parameter \"match_urlPattern\": use match, match_exact or match_urlpattern\n"},
		// "Subscription": limits, counted over topic and match parameters.
		{"too many matchers", "GET", "match=a&match_exact=b&match_urlpattern=/c&match=d", "", nil, 400, "too many topic matchers: 4, at most 3\n"},
		{"too many, topic and match", "GET", "topic=a&topic=b&match=c&match=d", "", nil, 400, "too many topic matchers: 4, at most 3\n"},
		{"too many, query and body", "QUERY", "match=a&match=b", "match=c&match=d", queryHeader(), 400, "too many topic matchers: 4, at most 3\n"},
		{"value too long", "GET", "match=" + long, "", nil, 400, "invalid exact matcher: longer than 4096 bytes\n"},
		{"pattern too long", "GET", "match_urlpattern=" + long, "", nil, 400, "invalid urlpattern matcher: longer than 4096 bytes\n"},
		// "Subscription": value constraints.
		{"C0 control", "GET", "match=a%01", "", nil, 400, "invalid exact matcher: control character U+0001\n"},
		{"DEL", "GET", "match_exact=a%7F", "", nil, 400, "invalid exact matcher: control character U+007F\n"},
		{"C1 control", "GET", "match_urlpattern=/a%C2%9F", "", nil, 400, "invalid urlpattern matcher: control character U+009F\n"},
		{"format character", "GET", "match=a%E2%80%8Fb", "", nil, 400, "invalid exact matcher: format character U+200F\n"},
		{"invalid UTF-8", "GET", "match=a%FFb", "", nil, 400, "invalid exact matcher: not valid UTF-8\n"},
		{"format character in the body", "QUERY", "", "match=a%EF%BB%BF", queryHeader(), 400, "invalid exact matcher: format character U+FEFF\n"},
		{"not a URL pattern", "GET", "match_urlpattern=https://example.com/(", "", nil, 400, "invalid urlpattern matcher: invalid URL pattern"},
		{"topic= of a draft request", "GET", "match=a&topic=a%0Ab", "", nil, 400, "invalid topic selector: topic \"a\\nb\" contains a control character\n"},
		// QUERY bodies.
		{"QUERY without a form", "QUERY", "", "match=a", http.Header{"Content-Type": {"application/json"}}, 415, "the body of a QUERY subscription must be application/x-www-form-urlencoded\n"},
		{"QUERY body too large", "QUERY", "", "match=" + strings.Repeat("a", 8200), queryHeader(), 413, "the body is larger than 8192 bytes\n"},
		{"QUERY malformed body", "QUERY", "", "match=%zz", queryHeader(), 400, "malformed form body"},
		{"QUERY without matchers", "QUERY", "", "last_event_id=x", queryHeader(), 400, "Missing \"topic\" parameter\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp := th.openMethod(t, tc.method, tc.query, body, tc.header)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.HasPrefix(string(b), tc.reason) {
				t.Errorf("got %d %q, want %d starting with %q", resp.StatusCode, b, tc.code, tc.reason)
			}
			if n := th.Hub.Subscribers(); n != 0 {
				t.Errorf("a refused subscriber was registered (%d)", n)
			}
		})
	}
}

// TestDialectsOnOneHub subscribes in both dialects to the topics of one publish, made with a
// 0.x token, then of another made with a draft-08 access token: each subscriber gets each
// exactly once, whichever (and however many) of its selectors match; the ones whose selectors
// do not match get nothing.
func TestDialectsOnOneHub(t *testing.T) {
	th := newDraft08Hub(t, func(c *server.Config) { c.Anonymous = true })
	const topic = "https://example.com/books/1"
	get := func(q url.Values) *stream { return th.subscribe(t, q.Encode(), nil) }
	receivers := map[string]*stream{
		"0.x topic":                 get(url.Values{"topic": {topic}}),
		"0.x template":              get(url.Values{"topic": {"https://example.com/books/{id}"}}),
		"match":                     get(url.Values{"match": {topic}}),
		"match_exact":               get(url.Values{"match_exact": {topic}}),
		"match_urlpattern":          get(url.Values{"match_urlpattern": {"https://example.com/books/:id"}}),
		"match *":                   get(url.Values{"match": {"*"}}),
		"match_urlpattern *":        get(url.Values{"match_urlpattern": {"*"}}),
		"match_urlpattern wildcard": get(url.Values{"match_urlpattern": {"https://*.com/*"}}),
		"several that match":        get(url.Values{"match": {topic}, "match_urlpattern": {"https://example.com/books/:id", "https://example.com/*"}, "topic": {topic}}),
		"mixed, topic= matches":     get(url.Values{"topic": {topic}, "match": {"other"}}),
		"mixed, match= matches":     get(url.Values{"topic": {"other"}, "match_urlpattern": {"https://example.com/books/(\\d+)"}}),
	}
	deaf := map[string]*stream{
		"exact is no template":     get(url.Values{"match": {"https://example.com/books/{id}"}}),
		"other path":               get(url.Values{"match_urlpattern": {"https://example.com/authors/:id"}}),
		"regexp group":             get(url.Values{"match_urlpattern": {"https://example.com/books/([a-z]+)"}}),
		"case of the path":         get(url.Values{"match_urlpattern": {"https://example.com/Books/:id"}}),
		"relative to the hub host": get(url.Values{"match_urlpattern": {"/books/:id"}}),
	}
	id := th.publish(t, publishForm("topic", topic, "data", "one"))
	code, id08 := th.post(t, "application/x-www-form-urlencoded", publishForm("topic", topic, "data", "one, draft-08").Encode(),
		bearer(accessToken(t, th.URL, grant([]string{"publish"}, nil, exact(topic)))))
	if code != http.StatusOK {
		t.Fatalf("publish with a draft-08 access token: %d %s", code, id08)
	}
	for name, s := range receivers {
		if m := s.next(t); m.ID != id || m.Data != "one" {
			t.Errorf("%s: got %+v, want id %q", name, m, id)
		}
		if m := s.next(t); m.ID != id08 || m.Data != "one, draft-08" {
			t.Errorf("%s: got %+v, want id %q", name, m, id08)
		}
	}
	// A second publish on another topic: had any subscriber got the first twice, the duplicate
	// would come before this one.
	second := th.publish(t, publishForm("topic", "urn:z", "data", "two"))
	for name, s := range map[string]*stream{"match *": receivers["match *"], "match_urlpattern *": receivers["match_urlpattern *"]} {
		if m := s.next(t); m.ID != second {
			t.Errorf("%s: got %+v, want id %q", name, m, second)
		}
	}
	for name, s := range receivers {
		if name == "match *" || name == "match_urlpattern *" {
			continue
		}
		select {
		case m := <-s.events:
			t.Errorf("%s: unexpected %+v", name, m)
		default:
		}
	}
	for name, s := range deaf {
		select {
		case m := <-s.events:
			t.Errorf("%s: unexpected %+v", name, m)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestURLPatternRelativeTopics checks that relative patterns and topics are resolved against the
// hub's URL (draft "URL Pattern"): a relative pattern matches a relative topic, and a topic that
// is no URL reference matches no pattern but still reaches exact matchers.
func TestURLPatternRelativeTopics(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	rel := th.subscribe(t, url.Values{"match_urlpattern": {"/books/:id"}}.Encode(), nil)
	exact := th.subscribe(t, url.Values{"match": {"http://[bad"}}.Encode(), nil)
	any := th.subscribe(t, url.Values{"match_urlpattern": {"http://*"}}.Encode(), nil)
	id := th.publish(t, publishForm("topic", "/books/1"))
	if m := rel.next(t); m.ID != id {
		t.Fatalf("relative pattern: got %+v, want %q", m, id)
	}
	bad := th.publish(t, publishForm("topic", "http://[bad"))
	if m := exact.next(t); m.ID != bad {
		t.Fatalf("exact matcher of a topic that is no URL: got %+v, want %q", m, bad)
	}
	good := th.publish(t, publishForm("topic", "http://ok.example/x"))
	if m := any.next(t); m.ID != good {
		t.Fatalf("http://* got %+v, want %q", m, good)
	}
	exact.expectNothing(t, 20*time.Millisecond)
	any.expectNothing(t, 0)
	rel.expectNothing(t, 0)
}

// TestSubscribeQueryMethod subscribes with QUERY, matchers in the body and in the query
// (draft "Subscription": the union of both).
func TestSubscribeQueryMethod(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	body := url.Values{"match_urlpattern": {"https://example.com/books/:id"}}.Encode()
	resp := th.openMethod(t, server.MethodQuery, "match=urn:a", strings.NewReader(body), queryHeader())
	s := th.stream(t, resp, readOpening(t, th, resp))
	a := th.publish(t, publishForm("topic", "urn:a"))
	b := th.publish(t, publishForm("topic", "https://example.com/books/7"))
	th.publish(t, publishForm("topic", "urn:c"))
	for _, want := range []string{a, b} {
		if m := s.next(t); m.ID != want {
			t.Fatalf("got %+v, want %q", m, want)
		}
	}
	s.expectNothing(t, 20*time.Millisecond)
}

// TestLastEventIDDialects checks the draft's "Reconciliation" section: last_event_id beside the
// 0.x lastEventID, the query's last_event_id over the body's, the header over both, the reserved
// "earliest", and Mercure-Last-Event-ID on the response (Last-Event-ID for 0.x requests only).
func TestLastEventIDDialects(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.Anonymous = true })
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = th.publish(t, publishForm("topic", "urn:t"))
	}
	tests := []struct {
		name        string
		method      string
		query, body string
		header      string // Last-Event-ID request header
		want        []string
		mercure     string // Mercure-Last-Event-ID
		legacy      string // Last-Event-ID response header
	}{
		{"draft, last_event_id", "GET", "match=urn:t&last_event_id=" + ids[0], "", "", ids[1:], ids[0], ""},
		{"draft, lastEventID too", "GET", "match=urn:t&lastEventID=" + ids[1], "", "", ids[2:], ids[1], ""},
		{"0.x, lastEventID", "GET", "topic=urn:t&lastEventID=" + ids[1], "", "", ids[2:], ids[1], ids[1]},
		{"0.x, last_event_id", "GET", "topic=urn:t&last_event_id=" + ids[0], "", "", ids[1:], ids[0], ids[0]},
		{"last_event_id over lastEventID", "GET", "match=urn:t&lastEventID=" + ids[0] + "&last_event_id=" + ids[1], "", "", ids[2:], ids[1], ""},
		{"header over the query", "GET", "match=urn:t&last_event_id=" + ids[0], "", ids[1], ids[2:], ids[1], ""},
		{"earliest", "GET", "match=urn:t&last_event_id=earliest", "", "", ids, "earliest", ""},
		{"unknown id", "GET", "match=urn:t&last_event_id=nope", "", "", ids, "earliest", ""},
		{"QUERY, id in the body", "QUERY", "", "match=urn:t&last_event_id=" + ids[1], "", ids[2:], ids[1], ""},
		{"QUERY, the query's id over the body's", "QUERY", "last_event_id=" + ids[0], "match=urn:t&last_event_id=" + ids[1], "", ids[1:], ids[0], ""},
		{"QUERY, the header over both", "QUERY", "last_event_id=" + ids[0], "match=urn:t&last_event_id=" + ids[0], ids[1], ids[2:], ids[1], ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			var body io.Reader
			if tc.method == server.MethodQuery {
				h = queryHeader()
				body = strings.NewReader(tc.body)
			}
			if tc.header != "" {
				h.Set("Last-Event-ID", tc.header)
			}
			resp := th.openMethod(t, tc.method, tc.query, body, h)
			if got := resp.Header.Get("Mercure-Last-Event-ID"); got != tc.mercure {
				t.Errorf("Mercure-Last-Event-ID = %q, want %q", got, tc.mercure)
			}
			if got := resp.Header.Values("Last-Event-ID"); tc.legacy == "" && len(got) != 0 || tc.legacy != "" && (len(got) != 1 || got[0] != tc.legacy) {
				t.Errorf("Last-Event-ID = %q, want %q", got, tc.legacy)
			}
			s := th.stream(t, resp, readOpening(t, th, resp))
			for _, want := range tc.want {
				if m := s.next(t); m.ID != want {
					t.Fatalf("got %+v, want %q", m, want)
				}
			}
			s.expectNothing(t, 10*time.Millisecond)
		})
	}
	// Without a last event id, no such header.
	resp, _ := th.rawSubscribe(t, "match=urn:t", nil)
	if v := resp.Header.Values("Mercure-Last-Event-ID"); len(v) != 0 {
		t.Errorf("Mercure-Last-Event-ID %q without a last event id", v)
	}
}

// readOpening checks that resp is a stream and returns a reader after its opening comment.
func readOpening(t *testing.T, th *testHub, resp *http.Response) *bufio.Reader {
	t.Helper()
	_, br := th.opened(t, resp.Request.Method, resp)
	return br
}
