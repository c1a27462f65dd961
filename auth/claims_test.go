package auth

import (
	"fmt"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/topic"
)

func TestVerifyClaims(t *testing.T) {
	v := hs256Verifier(t)
	many := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprint(i)
		}
		return s
	}
	tests := []struct {
		name        string
		payload     string // the claim set, literal JSON
		want        Claims
		reason      string // non-empty: Verify must fail with it
		wantPayload string // expected Payload when it differs from nil
	}{
		{name: "no mercure claim", payload: `{"sub":"bob"}`, want: Claims{Subject: "bob"}},
		{name: "empty mercure claim", payload: `{"mercure":{}}`, want: Claims{}},
		{name: "null mercure claim", payload: `{"mercure":null}`, want: Claims{}},
		{
			name:    "publish and subscribe",
			payload: `{"mercure":{"publish":["https://example.com/a","*"],"subscribe":["https://example.com/{id}"]}}`,
			want: Claims{
				Publish: specs("https://example.com/a", "*"), HasPublish: true,
				Subscribe: specs("https://example.com/{id}"), HasSubscribe: true,
			},
		},
		{
			name:    "empty arrays are present",
			payload: `{"mercure":{"publish":[],"subscribe":[]}}`,
			want:    Claims{Publish: specs(), HasPublish: true, Subscribe: specs(), HasSubscribe: true},
		},
		{
			name:    "null arrays are absent",
			payload: `{"mercure":{"publish":null,"subscribe":null}}`,
			want:    Claims{},
		},
		{
			name:        "payload object kept verbatim",
			payload:     `{"mercure":{"subscribe":["a"],"payload":{"user":"https://example.com/users/1","n":[1,2.5]}}}`,
			want:        Claims{Subscribe: specs("a"), HasSubscribe: true},
			wantPayload: `{"user":"https://example.com/users/1","n":[1,2.5]}`,
		},
		{name: "payload string", payload: `{"mercure":{"payload":"hi"}}`, wantPayload: `"hi"`},
		{name: "payload null is present", payload: `{"mercure":{"payload":null}}`, wantPayload: `null`},
		{
			name:    "mercure.rocks overrides mercure",
			payload: `{"mercure":{"publish":["old"],"payload":1},"https://mercure.rocks/":{"publish":["new"]}}`,
			want:    Claims{Publish: specs("new"), HasPublish: true},
		},
		{
			name:    "mercure.rocks alone",
			payload: `{"https://mercure.rocks/":{"subscribe":["s"]}}`,
			want:    Claims{Subscribe: specs("s"), HasSubscribe: true},
		},
		{
			name:    "null mercure.rocks falls back to mercure",
			payload: `{"mercure":{"publish":["p"]},"https://mercure.rocks/":null}`,
			want:    Claims{Publish: specs("p"), HasPublish: true},
		},
		{
			name:    "claim names are case-sensitive",
			payload: `{"Mercure":{"publish":["p"]},"mercure":{"subscribe":["s"]}}`,
			want:    Claims{Subscribe: specs("s"), HasSubscribe: true},
		},
		{
			name:    "unknown mercure fields ignored",
			payload: `{"mercure":{"publish":["p"],"extra":{"x":1}}}`,
			want:    Claims{Publish: specs("p"), HasPublish: true},
		},
		{name: "1000 entries", payload: mustJSON(t, map[string]any{"mercure": map[string]any{"publish": many(1000)}}),
			want: Claims{Publish: specs(many(1000)...), HasPublish: true}},
		{name: "1001 publish entries", payload: mustJSON(t, map[string]any{"mercure": map[string]any{"publish": many(1001)}}),
			reason: "mercure.publish claim has 1001 entries; at most 1000 are allowed"},
		{name: "1001 subscribe entries", payload: mustJSON(t, map[string]any{"mercure": map[string]any{"subscribe": many(1001)}}),
			reason: "mercure.subscribe claim has 1001 entries"},
		{name: "1001 entries in mercure.rocks", payload: mustJSON(t, map[string]any{"https://mercure.rocks/": map[string]any{"subscribe": many(1001)}}),
			reason: "https://mercure.rocks/.subscribe claim has 1001 entries"},
		{name: "publish is a string", payload: `{"mercure":{"publish":"*"}}`, reason: "mercure.publish claim must be an array of strings"},
		{name: "subscribe holds a number", payload: `{"mercure":{"subscribe":["a",1]}}`, reason: "mercure.subscribe claim must be an array of strings"},
		{name: "subscribe holds null", payload: `{"mercure":{"subscribe":[null]}}`, reason: "mercure.subscribe claim must be an array of strings"},
		{name: "subscribe holds an object", payload: `{"mercure":{"subscribe":[{}]}}`, reason: "mercure.subscribe claim must be an array of strings"},
		{name: "mercure is an array", payload: `{"mercure":["publish"]}`, reason: "mercure claim must be a JSON object"},
		{name: "mercure is a string", payload: `{"mercure":"x"}`, reason: "mercure claim must be a JSON object"},
		{name: "mercure.rocks is a number", payload: `{"mercure":{},"https://mercure.rocks/":3}`, reason: "https://mercure.rocks/ claim must be a JSON object"},
		{name: "sub is a number", payload: `{"sub":42}`, reason: "sub claim must be a string"},
		{name: "sub null", payload: `{"sub":null}`, want: Claims{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"JWT"}`, tc.payload)
			got, err := v.Verify(token)
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				if got != nil {
					t.Errorf("got claims %+v with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			wantClaims(t, got, tc.want, tc.wantPayload)
		})
	}
}

func wantClaims(t *testing.T, got *Claims, want Claims, payload string) {
	t.Helper()
	if got.HasPublish != want.HasPublish || !sameStrings(got.Publish, want.Publish) {
		t.Errorf("publish = %q (has %v), want %q (has %v)", got.Publish, got.HasPublish, want.Publish, want.HasPublish)
	}
	if got.HasSubscribe != want.HasSubscribe || !sameStrings(got.Subscribe, want.Subscribe) {
		t.Errorf("subscribe = %q (has %v), want %q (has %v)", got.Subscribe, got.HasSubscribe, want.Subscribe, want.HasSubscribe)
	}
	if got.Subject != want.Subject {
		t.Errorf("subject = %q, want %q", got.Subject, want.Subject)
	}
	if payload == "" {
		if got.Payload != nil {
			t.Errorf("payload = %s, want nil", got.Payload)
		}
	} else if string(got.Payload) != payload {
		t.Errorf("payload = %s, want %s", got.Payload, payload)
	}
}

// sameStrings compares two selector lists, telling nil from empty.
func sameStrings(a, b []topic.Spec) bool {
	return (a == nil) == (b == nil) && slices.Equal(a, b)
}

// specs returns 0.x topic selectors as the specs Claims holds them in: a non-nil slice, empty
// when no selector is given.
func specs(selectors ...string) []topic.Spec {
	out := make([]topic.Spec, 0, len(selectors))
	for _, s := range selectors {
		out = append(out, topic.Spec{Type: topic.MatchTopic, Value: s})
	}
	return out
}

func TestVerifyClaimsFromJWTLibrary(t *testing.T) {
	// Tokens made the usual way (jwt.MapClaims with Go slices) read back.
	v := hs256Verifier(t)
	token := sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{
		"mercure": map[string]any{
			"publish":   []string{"https://example.com/books/{id}"},
			"subscribe": []string{},
			"payload":   map[string]string{"name": "Ada"},
		},
	}, "")
	got, err := v.Verify(token)
	if err != nil {
		t.Fatal(err)
	}
	wantClaims(t, got, Claims{
		Publish: specs("https://example.com/books/{id}"), HasPublish: true,
		Subscribe: specs(), HasSubscribe: true,
	}, `{"name":"Ada"}`)
}
