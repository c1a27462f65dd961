package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// atHeader is the encoded protected header {"typ":"at+jwt"} of a draft-08 access token.
const atHeader = "eyJ0eXAiOiJhdCtqd3QifQ"

func TestFromRequest(t *testing.T) {
	type req struct {
		headers []string // Authorization values
		query   string   // raw query
		cookies []string // raw Cookie header values
	}
	tests := []struct {
		name       string
		req        req
		cookieName string
		token      string
		src        Source
		reason     string // non-empty: an error containing it
	}{
		{name: "nothing", src: SourceNone},
		{name: "header", req: req{headers: []string{"Bearer abc"}}, token: "abc", src: SourceHeader},
		{name: "query", req: req{query: "authorization=abc"}, token: "abc", src: SourceQuery},
		{name: "query escaped", req: req{query: "authorization=a%2Eb.c"}, token: "a.b.c", src: SourceQuery},
		{name: "default cookie", req: req{cookies: []string{"mercureAuthorization=abc"}}, token: "abc", src: SourceCookie},
		{name: "custom cookie", req: req{cookies: []string{"mercureAuthorization=no; herald=abc"}}, cookieName: "herald", token: "abc", src: SourceCookie},
		{name: "other cookies only", req: req{cookies: []string{"session=x"}}, src: SourceNone},

		{name: "header beats query and cookie",
			req:   req{headers: []string{"Bearer h"}, query: "authorization=q", cookies: []string{"mercureAuthorization=c"}},
			token: "h", src: SourceHeader},
		{name: "query beats cookie",
			req:   req{query: "authorization=q", cookies: []string{"mercureAuthorization=c"}},
			token: "q", src: SourceQuery},

		{name: "malformed header does not fall back",
			req: req{headers: []string{"Basic dXNlcjpwYXNz"}, query: "authorization=q", cookies: []string{"mercureAuthorization=c"}},
			src: SourceHeader, reason: `must use the "Bearer" scheme`},
		{name: "lower-case bearer", req: req{headers: []string{"bearer abc"}}, src: SourceHeader, reason: `"Bearer" scheme`},
		{name: "bearer without space", req: req{headers: []string{"Bearerabc"}}, src: SourceHeader, reason: `"Bearer" scheme`},
		{name: "empty header", req: req{headers: []string{""}}, src: SourceHeader, reason: `"Bearer" scheme`},
		{name: "empty bearer token", req: req{headers: []string{"Bearer "}}, src: SourceHeader, reason: "empty bearer token"},
		{name: "two headers", req: req{headers: []string{"Bearer a", "Bearer b"}}, src: SourceHeader, reason: "several Authorization headers"},
		{name: "two query values", req: req{query: "authorization=a&authorization=b"}, src: SourceQuery, reason: "several authorization query parameters"},
		{name: "empty query value", req: req{query: "authorization=", cookies: []string{"mercureAuthorization=c"}}, src: SourceQuery, reason: "empty authorization query parameter"},
		{name: "query name is case-sensitive", req: req{query: "Authorization=a"}, src: SourceNone},
		{name: "two cookies", req: req{cookies: []string{"mercureAuthorization=a; mercureAuthorization=b"}}, src: SourceCookie, reason: "several mercureAuthorization cookies"},
		{name: "empty cookie is absent", req: req{cookies: []string{"mercureAuthorization="}}, src: SourceNone},
		{name: "empty and full cookie", req: req{cookies: []string{"mercureAuthorization=; mercureAuthorization=a"}}, token: "a", src: SourceCookie},

		// Draft-08, "Presenting the Access Token" and "Cookie".
		{name: "access token cookie", req: req{cookies: []string{"__Secure-mercure_access_token=abc"}}, token: "abc", src: SourceAccessTokenCookie},
		{name: "access token cookie beats the 0.x cookie",
			req:   req{cookies: []string{"mercureAuthorization=old; __Secure-mercure_access_token=new"}},
			token: "new", src: SourceAccessTokenCookie},
		{name: "header beats the access token cookie",
			req:   req{headers: []string{"Bearer h"}, cookies: []string{"__Secure-mercure_access_token=c"}},
			token: "h", src: SourceHeader},
		{name: "empty access token cookie is absent", req: req{cookies: []string{"__Secure-mercure_access_token=; mercureAuthorization=old"}}, token: "old", src: SourceCookie},
		{name: "two access token cookies", req: req{cookies: []string{"__Secure-mercure_access_token=a; __Secure-mercure_access_token=b"}}, src: SourceAccessTokenCookie, reason: "several __Secure-mercure_access_token cookies"},
		{name: "scheme in any case for an access token", req: req{headers: []string{"bEARER " + atHeader + ".e30.sig"}}, token: atHeader + ".e30.sig", src: SourceHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/.well-known/mercure?"+tc.req.query, nil)
			for _, h := range tc.req.headers {
				r.Header.Add("Authorization", h)
			}
			for _, c := range tc.req.cookies {
				r.Header.Add("Cookie", c)
			}
			token, src, err := FromRequest(r, tc.cookieName)
			if src != tc.src {
				t.Errorf("source = %v, want %v", src, tc.src)
			}
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				if token != "" {
					t.Errorf("token = %q with an error", token)
				}
				return
			}
			if err != nil {
				t.Fatalf("FromRequest: %v", err)
			}
			if token != tc.token {
				t.Errorf("token = %q, want %q", token, tc.token)
			}
		})
	}
}

func TestSourceString(t *testing.T) {
	for src, want := range map[Source]string{
		SourceNone:   "none",
		SourceHeader: "header",
		SourceQuery:  "query",
		SourceCookie: "cookie",
		Source(9):    "Source(9)",
	} {
		if got := src.String(); got != want {
			t.Errorf("Source(%d).String() = %q, want %q", int(src), got, want)
		}
	}
}
