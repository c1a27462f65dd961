package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCheckOrigin(t *testing.T) {
	tests := []struct {
		name    string
		origin  string
		referer string
		allowed []string
		ok      bool
	}{
		{"exact origin", "https://app.example.com", "", []string{"https://app.example.com"}, true},
		{"one of several", "https://b.example", "", []string{"https://a.example", "https://b.example"}, true},
		{"other origin", "https://evil.example", "", []string{"https://app.example.com"}, false},
		{"scheme matters", "http://app.example.com", "", []string{"https://app.example.com"}, false},
		{"port matters", "https://app.example.com:8443", "", []string{"https://app.example.com"}, false},
		{"explicit port", "https://app.example.com:8443", "", []string{"https://app.example.com:8443"}, true},
		{"default port in entry", "https://app.example.com", "", []string{"https://app.example.com:443"}, true},
		{"default http port in origin", "http://app.example.com:80", "", []string{"http://app.example.com"}, true},
		{"trailing slash in entry", "https://app.example.com", "", []string{"https://app.example.com/"}, true},
		{"case-insensitive", "HTTPS://App.Example.COM", "", []string{"https://app.example.com"}, true},
		{"suffix is not enough", "https://app.example.com.evil.example", "", []string{"https://app.example.com"}, false},

		{"referer fallback", "", "https://app.example.com/page?x=1#frag", []string{"https://app.example.com"}, true},
		{"referer with port", "", "http://localhost:3000/", []string{"http://localhost:3000"}, true},
		{"referer other site", "", "https://evil.example/https://app.example.com", []string{"https://app.example.com"}, false},
		{"referer userinfo ignored", "", "https://app.example.com@evil.example/", []string{"https://app.example.com"}, false},
		{"origin wins over referer", "https://evil.example", "https://app.example.com/", []string{"https://app.example.com"}, false},
		{"relative referer", "", "/page", []string{"https://app.example.com"}, false},
		{"unparsable referer", "", "http://[::1", []string{"*"}, false},
		{"neither header", "", "", []string{"*"}, false},

		{"star allows any", "https://anything.example", "", []string{"*"}, true},
		{"star allows null origin", "null", "", []string{"*"}, true},
		{"null origin otherwise refused", "null", "", []string{"https://app.example.com"}, false},
		{"wildcard subdomain", "https://a.example.com", "", []string{"https://*.example.com"}, true},
		{"wildcard nested subdomain", "https://a.b.example.com", "", []string{"https://*.example.com"}, true},
		{"wildcard needs a label", "https://example.com", "", []string{"https://*.example.com"}, false},
		{"wildcard keeps the scheme", "http://a.example.com", "", []string{"https://*.example.com"}, false},
		{"wildcard does not cross a port", "https://a.example.com:8443", "", []string{"https://*.example.com"}, false},
		{"wildcard is not a suffix match", "https://evilexample.com", "", []string{"https://*.example.com"}, false},
		{"wildcard does not swallow a slash", "https://evil.example/x.example.com", "", []string{"https://*.example.com"}, false},
		{"wildcard port", "http://localhost:5173", "", []string{"http://localhost:*"}, true},
		{"wildcard in referer fallback", "", "https://docs.example.com/a", []string{"https://*.example.com"}, true},
		{"two wildcards never match", "https://a.b.example.com", "", []string{"https://*.*.example.com"}, false},

		{"empty list", "https://app.example.com", "", nil, false},
		{"empty list with referer", "", "https://app.example.com/", []string{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/.well-known/mercure", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.referer != "" {
				r.Header.Set("Referer", tc.referer)
			}
			err := CheckOrigin(r, tc.allowed)
			if tc.ok {
				if err != nil {
					t.Errorf("CheckOrigin: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckOrigin accepted the request")
			}
			if !errors.Is(err, ErrOriginNotAllowed) {
				t.Errorf("error %q does not wrap ErrOriginNotAllowed", err)
			}
		})
	}
}
