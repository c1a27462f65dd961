package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/server"
)

const form = "application/x-www-form-urlencoded"

func TestPublishRefusals(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) {
		c.MaxBodyBytes = 8192
		c.PublishOrigins = []string{"https://app.example.com"}
	})
	all := mercureToken(t, []string{"*"}, nil)
	books := mercureToken(t, []string{"https://example.com/books/{id}"}, nil)
	expired := token(t, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}, "exp": time.Now().Add(-time.Minute).Unix()})
	wrongKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}).SignedString([]byte("another secret that is long enough!!"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	cookie := func(tok, origin string) http.Header {
		h := http.Header{"Cookie": {"mercureAuthorization=" + tok}}
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}

	tests := []struct {
		name        string
		contentType string
		body        string
		header      http.Header
		code        int
		reason      string // the body starts with it
	}{
		{"no token", form, "topic=a&data=x", nil, 401, "missing JWT"},
		{"malformed header", form, "topic=a", http.Header{"Authorization": {"Basic abc"}}, 401, ""},
		{"wrong key", form, "topic=a", bearer(wrongKey), 401, ""},
		{"alg none", form, "topic=a", bearer(none), 401, ""},
		{"expired", form, "topic=a", bearer(expired), 401, "token expired"},
		{"garbage token", form, "topic=a", bearer("not.a.jwt"), 401, ""},
		{"no publish claim", form, "topic=a", bearer(mercureToken(t, nil, []string{"*"})), 403, "token has no mercure.publish claim"},
		{"topic not allowed", form, "topic=https://example.com/authors/1", bearer(books), 403, `token may not publish to topic "https://example.com/authors/1"`},
		{"one of two topics not allowed", form, "topic=https://example.com/books/1&topic=https://example.com/authors/1", bearer(books), 403, "token may not publish"},
		{"cookie without origin", form, "topic=a", cookie(all, ""), 403, ""},
		{"cookie from another origin", form, "topic=a", cookie(all, "https://evil.example.com"), 403, ""},
		{"no topic", form, "data=x", bearer(all), 400, `Missing "topic" parameter`},
		{"empty topic", form, "topic=", bearer(all), 400, "empty topic"},
		{"topic too long", form, "topic=" + strings.Repeat("t", server.MaxTopicLength+1), bearer(all), 400, "topic longer than 4096 bytes"},
		{"control char in topic", form, "topic=a%01b", bearer(all), 400, ""},
		{"bad retry", form, "topic=a&retry=soon", bearer(all), 400, `Invalid "retry" parameter`},
		{"negative retry", form, "topic=a&retry=-1", bearer(all), 400, `Invalid "retry" parameter`},
		{"LF in id", form, "topic=a&id=x%0Aevent:+forged", bearer(all), 400, `Invalid "id" parameter`},
		{"CR in id", form, "topic=a&id=x%0D", bearer(all), 400, `Invalid "id" parameter`},
		{"NUL in id", form, "topic=a&id=x%00", bearer(all), 400, `Invalid "id" parameter`},
		{"id starting with #", form, "topic=a&id=%23x", bearer(all), 400, `Invalid "id" parameter`},
		{"id earliest", form, "topic=a&id=earliest", bearer(all), 400, `Invalid "id" parameter`},
		{"LF in type", form, "topic=a&type=x%0Adata:+forged", bearer(all), 400, `Invalid "type" parameter`},
		{"malformed form", form, "topic=%zz", bearer(all), 400, "malformed form body"},
		{"malformed json", "application/json", `{"topic":`, bearer(all), 400, "malformed JSON body"},
		{"json unknown field", "application/json", `{"topic":"a","dat":"x"}`, bearer(all), 400, "malformed JSON body"},
		{"json topic number", "application/json", `{"topic":3}`, bearer(all), 400, "malformed JSON body"},
		{"json two values", "application/json", `{"topic":"a"}{}`, bearer(all), 400, "malformed JSON body"},
		{"no content type", "", "topic=a", bearer(all), 415, ""},
		{"text body", "text/plain", "topic=a", bearer(all), 415, ""},
		{"too large", form, "topic=a&data=" + strings.Repeat("x", 9000), bearer(all), 413, "the body is larger than 8192 bytes"},
		// The draft's "Publication" and "Reserved Hub Namespace" rules, for both dialects.
		{"reserved namespace", form, "topic=https://example.com/.well-known/mercure/subscriptions/x", bearer(all), 400, `topic "https://example.com/.well-known/mercure/subscriptions/x" is in the hub's reserved /.well-known/mercure namespace`},
		{"reserved namespace, relative", form, "topic=/.well-known/mercure/subscriptions/x", bearer(all), 400, "topic \"/.well-known/mercure/subscriptions/x\" is in the hub's reserved"},
		{"reserved namespace, the hub itself", form, "topic=/.well-known/mercure", bearer(all), 400, "topic \"/.well-known/mercure\" is in the hub's reserved"},
		{"reserved namespace, percent-encoded", form, "topic=https://other.example/.well-known/%256Dercure/x", bearer(all), 400, "topic \"https://other.example/.well-known/%6Dercure/x\" is in the hub's reserved"},
		{"reserved namespace, dot segments", form, "topic=/foo/../.well-known/mercure/x", bearer(all), 400, "topic \"/foo/../.well-known/mercure/x\" is in the hub's reserved"},
		{"reserved namespace, json", "application/json", `{"topic":["a","/.well-known/mercure/x"]}`, bearer(all), 400, "topic \"/.well-known/mercure/x\" is in the hub's reserved"},
		{"wildcard topic", form, "topic=a&topic=*", bearer(all), 400, `topic "*" is reserved for the wildcard matcher`},
		{"type mercure", form, "topic=a&type=mercure", bearer(all), 400, `Invalid "type" parameter: "mercure" is reserved for the hub's own events`},
		{"retry with a sign", form, "topic=a&retry=%2B5", bearer(all), 400, `Invalid "retry" parameter`},
		{"retry with a space", form, "topic=a&retry=5+", bearer(all), 400, `Invalid "retry" parameter`},
		{"retry hex", form, "topic=a&retry=0x10", bearer(all), 400, `Invalid "retry" parameter`},
		{"format char in topic", form, "topic=a%E2%80%8Bb", bearer(all), 400, `topic "a\u200bb" contains a format character U+200B`},
		{"DEL in id", form, "topic=a&id=x%7F", bearer(all), 400, `Invalid "id" parameter: it contains a control or format character`},
		{"C1 in type", form, "topic=a&type=x%C2%85", bearer(all), 400, `Invalid "type" parameter: it contains a control or format character`},
		{"bidi control in id", form, "topic=a&id=x%E2%80%AE", bearer(all), 400, `Invalid "id" parameter: it contains a control or format character`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := th.post(t, tc.contentType, tc.body, tc.header)
			if code != tc.code || !strings.HasPrefix(body, tc.reason) {
				t.Errorf("got %d %q, want %d starting with %q", code, body, tc.code, tc.reason)
			}
			if head, _ := th.Transport.Head(context.Background()); head != 0 {
				t.Fatalf("a refused publish was stored (head %d)", head)
			}
		})
	}
}

func TestPublishAccepted(t *testing.T) {
	th := newTestHub(t, func(c *server.Config) { c.PublishOrigins = []string{"https://app.example.com"} })
	ctx := context.Background()
	all := mercureToken(t, []string{"*"}, nil)

	t.Run("form with generated id", func(t *testing.T) {
		code, id := th.post(t, form, "topic=https://example.com/books/1&topic=https://example.com/books&data=hello&private=&type=update&retry=1500", bearer(all))
		if code != http.StatusOK || !strings.HasPrefix(id, "urn:uuid:") || len(id) != len("urn:uuid:")+36 {
			t.Fatalf("got %d %q, want 200 and a urn:uuid id", code, id)
		}
		seq, err := th.Transport.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := th.Transport.Read(ctx, seq-1, 1, false)
		u := got[0]
		if u.Data != "hello" || !u.Private || u.Type != "update" || u.Retry != 1500 ||
			len(u.Topics) != 2 || u.Topics[0] != "https://example.com/books/1" || u.Topics[1] != "https://example.com/books" {
			t.Fatalf("stored %+v", u)
		}
	})
	t.Run("json with custom id", func(t *testing.T) {
		code, id := th.post(t, "application/json; charset=utf-8", `{"topic":["a","b"],"data":"{\"x\":1}","id":"custom-1","private":true,"retry":10}`, bearer(all))
		if code != http.StatusOK || id != "custom-1" {
			t.Fatalf("got %d %q", code, id)
		}
	})
	t.Run("json single topic", func(t *testing.T) {
		if code, id := th.post(t, "application/json", `{"topic":"a","data":"x"}`, bearer(all)); code != http.StatusOK {
			t.Fatalf("got %d %q", code, id)
		}
	})
	t.Run("duplicate id is a conflict", func(t *testing.T) {
		before, _ := th.Transport.Head(ctx)
		code, body := th.post(t, form, "topic=a&id=custom-1", bearer(all))
		if code != http.StatusConflict || body != "an update with id \"custom-1\" already exists\n" {
			t.Fatalf("got %d %q", code, body)
		}
		if after, _ := th.Transport.Head(ctx); after != before {
			t.Fatal("the duplicate was stored")
		}
	})
	t.Run("template publish claim", func(t *testing.T) {
		tok := mercureToken(t, []string{"https://example.com/books/{id}"}, nil)
		if code, body := th.post(t, form, "topic=https://example.com/books/42", bearer(tok)); code != http.StatusOK {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("token in query parameter", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, th.URL+"?authorization="+all, strings.NewReader("topic=a"))
		req.Header.Set("Content-Type", form)
		resp, err := th.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d", resp.StatusCode)
		}
	})
	t.Run("cookie from an allowed origin", func(t *testing.T) {
		h := http.Header{"Cookie": {"mercureAuthorization=" + all}, "Origin": {"https://app.example.com"}}
		if code, body := th.post(t, form, "topic=a", h); code != http.StatusOK {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("cookie with a referer from an allowed origin", func(t *testing.T) {
		h := http.Header{"Cookie": {"mercureAuthorization=" + all}, "Referer": {"https://app.example.com/page?x=1"}}
		if code, body := th.post(t, form, "topic=a", h); code != http.StatusOK {
			t.Fatalf("got %d %q", code, body)
		}
	})
}

func TestMethodNotAllowed(t *testing.T) {
	th := newTestHub(t, nil)
	for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodOptions} {
		req, _ := http.NewRequest(m, th.URL, nil)
		resp, err := th.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD, POST, QUERY" {
			t.Errorf("%s: got %d Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// publishForm is a shorthand for building publish forms in tests.
func publishForm(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}
