package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzPublishBody sends arbitrary bodies, as form and JSON, to the publish endpoint: the hub
// must answer 200 or a 4xx, never panic or fail with a 5xx, and store an update only on 200.
func FuzzPublishBody(f *testing.F) {
	for _, seed := range []string{
		"topic=a&data=x",
		"topic=a&topic=b&private=&id=x&type=t&retry=10",
		"topic=a&id=%0Aevent:x",
		"topic=%zz",
		`{"topic":"a","data":"x"}`,
		`{"topic":["a","b"],"private":true,"retry":5,"id":"i","type":"t"}`,
		`{"topic":null}`,
		"",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	th := newTestHub(f, nil)
	auth := bearer(mercureToken(f, []string{"*"}, nil))
	f.Fuzz(func(t *testing.T, body string, asJSON bool) {
		ct := form
		if asJSON {
			ct = "application/json"
		}
		before, _ := th.Transport.Head(context.Background())
		code, reply := th.post(t, ct, body, auth)
		after, _ := th.Transport.Head(context.Background())
		switch {
		case code == http.StatusOK:
			if after != before+1 {
				t.Fatalf("200 but %d updates stored", after-before)
			}
		case code >= 400 && code < 500:
			if after != before {
				t.Fatalf("%d %q but an update was stored", code, reply)
			}
			if !strings.HasSuffix(reply, "\n") || strings.Count(reply, "\n") != 1 {
				t.Fatalf("the error body %q is not one short line", reply)
			}
		default:
			t.Fatalf("status %d %q", code, reply)
		}
	})
}
