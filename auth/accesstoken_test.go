package auth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhub/herald/topic"
)

const (
	testIssuer   = "https://issuer.example"
	testResource = "https://hub.example/.well-known/mercure"
	detailType   = `"type":"https://mercure.rocks/authorization-detail"`
)

// accessClaims returns a draft-08 claim set with the claims RFC 9068 asks for, iss and aud
// set for the test hub, the given authorization_details (raw JSON, "" for none) and extra
// claims (raw JSON members, may be "").
func accessClaims(details, extra string) string {
	s := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"s","client_id":"c","iat":1,"jti":"j","exp":%d`, testIssuer, testResource, future())
	if details != "" {
		s += `,"authorization_details":` + details
	}
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func testIssuers(t *testing.T, pub, sub *Verifier) *Issuers {
	t.Helper()
	is, err := NewIssuers([]Issuer{{ID: testIssuer, Publisher: pub, Subscriber: sub}})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// TestAccessTokenValidation follows the draft's "Token Validation" section: typ at+jwt (or
// application/at+jwt, any case), the pinned algorithm, exp required, nbf, iss one of the
// trusted issuers, aud naming the hub.
func TestAccessTokenValidation(t *testing.T) {
	v := hs256Verifier(t)
	is := testIssuers(t, v, v)
	grant := `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"*"}]}]`
	hs := func(header, payload string) string {
		return signRaw(t, jwt.SigningMethodHS256, testHMACSecret, header, payload)
	}
	tests := []struct {
		name   string
		token  string
		reason string // "" = valid
	}{
		{"typ at+jwt", hs(`{"alg":"HS256","typ":"at+jwt"}`, accessClaims(grant, "")), ""},
		{"typ application/at+jwt", hs(`{"alg":"HS256","typ":"application/at+jwt"}`, accessClaims(grant, "")), ""},
		{"typ compared without case", hs(`{"alg":"HS256","typ":"Application/AT+JWT"}`, accessClaims(grant, "")), ""},
		{"aud array holding the hub", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), `"aud":"`+testResource+`"`, `"aud":["other","`+testResource+`"]`, 1)), ""},
		{"typ JWT is not an access token", hs(`{"alg":"HS256","typ":"JWT"}`, accessClaims(grant, "")), `typ must be "at+jwt"`},
		{"alg none", signRaw(t, nil, nil, `{"alg":"none","typ":"at+jwt"}`, accessClaims(grant, "")), "unexpected signing algorithm none"},
		{"other alg (confusion)", hs(`{"alg":"HS384","typ":"at+jwt"}`, accessClaims(grant, "")), "unexpected signing algorithm HS384"},
		{"bad signature", signRaw(t, jwt.SigningMethodHS256, []byte("another secret of thirty-two bytes!"), `{"alg":"HS256","typ":"at+jwt"}`, accessClaims(grant, "")), "signature is invalid"},
		{"no exp", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), fmt.Sprintf(`,"exp":%d`, future()), "", 1)), "no exp claim"},
		{"expired", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), fmt.Sprintf(`"exp":%d`, future()), fmt.Sprintf(`"exp":%d`, past()), 1)), "token expired"},
		{"nbf in the future", hs(`{"alg":"HS256","typ":"at+jwt"}`, accessClaims(grant, fmt.Sprintf(`"nbf":%d`, future()))), "not valid yet"},
		{"no iss", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), `"iss":"`+testIssuer+`",`, "", 1)), "no iss claim"},
		{"untrusted iss", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), testIssuer, "https://evil.example", 1)), "issuer is not trusted"},
		{"iss differing in case", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), testIssuer, strings.ToUpper(testIssuer), 1)), "issuer is not trusted"},
		{"no aud", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), `"aud":"`+testResource+`",`, "", 1)), "no aud claim"},
		{"aud of another hub", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), testResource, "https://other.example/.well-known/mercure", 1)), "aud does not name this hub"},
		{"aud a number", hs(`{"alg":"HS256","typ":"at+jwt"}`, strings.Replace(accessClaims(grant, ""), `"aud":"`+testResource+`"`, `"aud":1`, 1)), "aud claim must be"},
		{"crit header", hs(`{"alg":"HS256","typ":"at+jwt","crit":["x"]}`, accessClaims(grant, "")), "critical header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := is.Verify(tc.token, RolePublisher, testResource)
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Dialect != DialectDraft08 || c.Issuer != testIssuer || !c.HasPublish || len(c.Publish) != 1 || c.Publish[0] != (topic.Spec{Type: topic.MatchExact, Value: "*"}) {
				t.Fatalf("claims %+v", c)
			}
		})
	}
}

// TestAccessTokenIssuerKeys: "Token Validation" says a token is checked with the keys of the
// issuer it names only, never a pool spanning issuers, and the role's key of that issuer.
func TestAccessTokenIssuerKeys(t *testing.T) {
	a := newTestVerifier(t, Config{Key: "secret of issuer A, thirty-two bytes"})
	b := newTestVerifier(t, Config{Key: "secret of issuer B, thirty-two bytes"})
	is, err := NewIssuers([]Issuer{
		{ID: "https://a.example", Publisher: a, Subscriber: a},
		{ID: "https://b.example", Subscriber: b},
	})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(iss, key string) string {
		claims := strings.Replace(accessClaims(`[]`, ""), testIssuer, iss, 1)
		return signRaw(t, jwt.SigningMethodHS256, []byte(key), `{"alg":"HS256","typ":"at+jwt"}`, claims)
	}
	if _, err := is.Verify(mint("https://a.example", "secret of issuer A, thirty-two bytes"), RolePublisher, testResource); err != nil {
		t.Errorf("A's token with A's key: %v", err)
	}
	wantInvalid(t, func() error {
		_, err := is.Verify(mint("https://b.example", "secret of issuer A, thirty-two bytes"), RoleSubscriber, testResource)
		return err
	}(), "signature is invalid")
	wantInvalid(t, func() error {
		_, err := is.Verify(mint("https://b.example", "secret of issuer B, thirty-two bytes"), RolePublisher, testResource)
		return err
	}(), "not trusted for this role")
	if _, err := is.Verify(mint("https://b.example", "secret of issuer B, thirty-two bytes"), RoleSubscriber, testResource); err != nil {
		t.Errorf("B's subscriber token: %v", err)
	}
	if _, err := NewIssuers([]Issuer{{ID: "x"}, {ID: "x"}}); err == nil {
		t.Error("an issuer configured twice was accepted")
	}
	var none *Issuers
	wantInvalid(t, func() error {
		_, err := none.Verify(mint("https://a.example", "k"), RolePublisher, testResource)
		return err
	}(), "issuer is not trusted")
}

// TestAuthorizationDetails follows "Authorization Details" and "Topic Matcher List": Mercure
// entries validated whole (one bad entry invalidates the token), others ignored, unknown
// actions ignored, match_type exact by default, unknown match_type refused.
func TestAuthorizationDetails(t *testing.T) {
	v := hs256Verifier(t)
	is := testIssuers(t, v, v)
	exact := func(s string) topic.Spec { return topic.Spec{Type: topic.MatchExact, Value: s} }
	pattern := func(s string) topic.Spec { return topic.Spec{Type: topic.MatchURLPattern, Value: s} }
	tooMany := make([]string, MaxSelectors+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf(`{"match":"t%d"}`, i)
	}
	tests := []struct {
		name      string
		details   string
		publish   []topic.Spec
		subscribe []topic.Spec
		payloads  []string // of SubscribeDetails, in order; "" for none
		reason    string
	}{
		{name: "absent grants nothing", details: ""},
		{name: "null grants nothing", details: `null`},
		{name: "empty grants nothing", details: `[]`},
		{name: "publish and subscribe", details: `[{` + detailType + `,"actions":["publish","subscribe"],"topics":[{"match":"a"},{"match":"https://e.example/:id","match_type":"urlpattern"}]}]`,
			publish: []topic.Spec{exact("a"), pattern("https://e.example/:id")}, subscribe: []topic.Spec{exact("a"), pattern("https://e.example/:id")}, payloads: []string{""}},
		{name: "match_type exact given", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"a","match_type":"exact"}]}]`, publish: []topic.Spec{exact("a")}},
		{name: "payload on the subscribe detail", details: `[{` + detailType + `,"actions":["subscribe"],"topics":[{"match":"*"}],"payload":{"user":1}},{` + detailType + `,"actions":["subscribe"],"topics":[{"match":"b"}]}]`,
			subscribe: []topic.Spec{exact("*"), exact("b")}, payloads: []string{`{"user":1}`, ""}},
		{name: "other types ignored", details: `[{"type":"payment","actions":7,"topics":"x"},{` + detailType + `,"actions":["publish"],"topics":[{"match":"a"}]}]`, publish: []topic.Spec{exact("a")}},
		{name: "unknown action ignored", details: `[{` + detailType + `,"actions":["publish","delete"],"topics":[{"match":"a"}]}]`, publish: []topic.Spec{exact("a")}},
		{name: "only unknown actions grant nothing", details: `[{` + detailType + `,"actions":["delete"],"topics":[{"match":"a"}]}]`},
		{name: "type case matters", details: `[{"type":"https://mercure.rocks/Authorization-Detail","actions":["publish"],"topics":[{"match":"a"}]}]`},
		{name: "not an array", details: `{}`, reason: "authorization_details claim must be an array"},
		{name: "entry not an object", details: `["x"]`, reason: "authorization_details[0] must be an object"},
		{name: "entry without type", details: `[{"actions":["publish"]}]`, reason: "has no string type"},
		{name: "actions missing", details: `[{` + detailType + `,"topics":[{"match":"a"}]}]`, reason: "actions must be a non-empty array of strings"},
		{name: "actions empty", details: `[{` + detailType + `,"actions":[],"topics":[{"match":"a"}]}]`, reason: "actions must be a non-empty array"},
		{name: "action not a string", details: `[{` + detailType + `,"actions":["publish",1],"topics":[{"match":"a"}]}]`, reason: "actions must be a non-empty array of strings"},
		{name: "topics missing", details: `[{` + detailType + `,"actions":["publish"]}]`, reason: "topics must be a non-empty array"},
		{name: "topics empty", details: `[{` + detailType + `,"actions":["publish"],"topics":[]}]`, reason: "topics must be a non-empty array"},
		{name: "topic a bare string", details: `[{` + detailType + `,"actions":["publish"],"topics":["a"]}]`, reason: "topics[0]: a topic matcher must be an object"},
		{name: "topic without match", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match_type":"exact"}]}]`, reason: "match must be a string"},
		{name: "empty match", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":""}]}]`, reason: "match is empty"},
		{name: "control character", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"a\nb"}]}]`, reason: "control character"},
		{name: "unknown match_type", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"a","match_type":"regex"}]}]`, reason: "unsupported match_type"},
		{name: "match_type case-sensitive", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"a","match_type":"Exact"}]}]`, reason: "unsupported match_type"},
		{name: "payload not an object", details: `[{` + detailType + `,"actions":["subscribe"],"topics":[{"match":"a"}],"payload":"x"}]`, reason: "payload must be an object"},
		{name: "one bad entry voids the good ones", details: `[{` + detailType + `,"actions":["publish"],"topics":[{"match":"*"}]},{` + detailType + `,"actions":["publish"],"topics":[{"match":"a","match_type":"nope"}]}]`, reason: "authorization_details[1].topics[0]"},
	}
	// Past the limits (a token that long is refused for its length already; parseDetails
	// bounds them on its own all the same).
	_, err := parseDetails(json.RawMessage(`[{` + detailType + `,"actions":["publish"],"topics":[` + strings.Join(tooMany, ",") + `]}]`))
	wantInvalid(t, err, "too many topics")
	split := make([]string, 0, MaxSelectors+1)
	for i := range tooMany {
		split = append(split, `{`+detailType+`,"actions":["publish"],"topics":[`+tooMany[i]+`]}`)
	}
	_, err = parseDetails(json.RawMessage(`[` + strings.Join(split, ",") + `]`))
	wantInvalid(t, err, "too many Mercure authorization details")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`, accessClaims(tc.details, ""))
			c, err := is.Verify(token, RoleSubscriber, testResource)
			if tc.reason != "" {
				wantInvalid(t, err, tc.reason)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Publish, tc.publish) || c.HasPublish != (tc.publish != nil) {
				t.Errorf("publish %v (has %v), want %v", c.Publish, c.HasPublish, tc.publish)
			}
			if !slices.Equal(c.Subscribe, tc.subscribe) || c.HasSubscribe != (tc.subscribe != nil) {
				t.Errorf("subscribe %v (has %v), want %v", c.Subscribe, c.HasSubscribe, tc.subscribe)
			}
			var payloads []string
			for _, d := range c.SubscribeDetails {
				payloads = append(payloads, string(d.Payload))
			}
			if !slices.Equal(payloads, tc.payloads) {
				t.Errorf("payloads %q, want %q", payloads, tc.payloads)
			}
			if c.Payload != nil {
				t.Errorf("token-wide payload %s, want none", c.Payload)
			}
		})
	}
}

// TestAccessTokenAndOldTokenApart: an old token still verifies as before through Verify, and
// the cache of one path never answers the other.
func TestAccessTokenAndOldTokenApart(t *testing.T) {
	v := hs256Verifier(t)
	is := testIssuers(t, v, v)
	old := sign(t, jwt.SigningMethodHS256, testHMACSecret, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}}, "")
	if IsAccessToken(old) {
		t.Fatal("an old token taken for an access token")
	}
	c, err := v.Verify(old)
	if err != nil || c.Dialect != Dialect0x || c.Publish[0] != (topic.Spec{Type: topic.MatchTopic, Value: "*"}) {
		t.Fatalf("old token: %+v, %v", c, err)
	}
	wantInvalid(t, func() error { _, err := is.Verify(old, RolePublisher, testResource); return err }(), "no iss claim")

	at := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`, accessClaims(`[]`, ""))
	if !IsAccessToken(at) {
		t.Fatal("access token not recognised")
	}
	for range 2 { // the second time from the cache
		if c, err := is.Verify(at, RolePublisher, testResource); err != nil || c.Dialect != DialectDraft08 {
			t.Fatalf("access token: %+v, %v", c, err)
		}
	}
	if c, err := v.Verify(at); err != nil || c.Dialect != Dialect0x {
		t.Fatalf("0.x Verify of a cached access token: %+v, %v", c, err)
	}
	if c, err := v.VerifyAccessToken(at); err != nil || c.Dialect != DialectDraft08 {
		t.Fatalf("VerifyAccessToken after the 0.x path: %+v, %v", c, err)
	}
}

// TestAccessTokenExpiryFromCache: a cached access token past its exp is refused.
func TestAccessTokenExpiryFromCache(t *testing.T) {
	v := hs256Verifier(t)
	exp := time.Now().Add(1100 * time.Millisecond).Unix()
	claims := strings.Replace(accessClaims(`[]`, ""), fmt.Sprintf(`"exp":%d`, future()), fmt.Sprintf(`"exp":%d`, exp), 1)
	at := signRaw(t, jwt.SigningMethodHS256, testHMACSecret, `{"alg":"HS256","typ":"at+jwt"}`, claims)
	if _, err := v.VerifyAccessToken(at); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Unix(exp, 0)) + 10*time.Millisecond)
	wantInvalid(t, func() error { _, err := v.VerifyAccessToken(at); return err }(), "token expired")
}

func TestIsAccessToken(t *testing.T) {
	enc := func(h string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(h)) + ".e30.sig"
	}
	for h, want := range map[string]bool{
		`{"typ":"at+jwt"}`:             true,
		`{"typ":"AT+JWT"}`:             true,
		`{"typ":"application/at+jwt"}`: true,
		`{"typ":"JWT"}`:                false,
		`{"typ":"application/"}`:       false,
		`{"typ":1}`:                    false,
		`{"TYP":"at+jwt"}`:             false, // jwt reads "typ" exactly, so must routing
		`{"typ":"at+jwt","Typ":"JWT"}`: true,
		`{}`:                           false,
		`[]`:                           false,
	} {
		if got := IsAccessToken(enc(h)); got != want {
			t.Errorf("IsAccessToken(%s) = %v, want %v", h, got, want)
		}
	}
	for _, tok := range []string{"", "x", "!!!.a.b", "e30"} {
		if IsAccessToken(tok) {
			t.Errorf("IsAccessToken(%q) = true", tok)
		}
	}
}
