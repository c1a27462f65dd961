package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/internal/cli"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// token implements `herald token`: it signs a JWT with mercure.publish / mercure.subscribe
// claims, or with --issuer and --audience a draft-08 access token, for trying the hub locally
// and for scripts.
func token(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald token", flag.ContinueOnError)
	cli.SetUsage(fs, "token [flags]", "Mints a JWT with mercure.publish and mercure.subscribe claims and prints it: for trying a hub\nlocally and for scripts. Give at least one --publish or --subscribe selector.\n"+
		"With --issuer and --audience it mints a draft-08 access token instead (typ at+jwt, RFC 9068), its\n"+
		"grants in authorization_details: --publish and --subscribe are exact matchers there (* for all),\n"+
		"--publish-urlpattern and --subscribe-urlpattern URL patterns.")
	var pub, sub, pubPattern, subPattern, aud stringList
	fs.Var(&pub, "publish", "topic selector the token may publish to (repeatable; * for all)")
	fs.Var(&sub, "subscribe", "topic selector the token may subscribe to, private updates included (repeatable)")
	fs.Var(&pubPattern, "publish-urlpattern", "draft-08: URL pattern of topics the token may publish to (repeatable)")
	fs.Var(&subPattern, "subscribe-urlpattern", "draft-08: URL pattern of topics the token may subscribe to (repeatable)")
	issuer := fs.String("issuer", "", "draft-08: iss claim, an issuer the hub trusts (with --audience, mints a draft-08 access token)")
	fs.Var(&aud, "audience", "draft-08: aud claim, the hub's resource identifier, e.g. https://localhost/.well-known/mercure (repeatable)")
	key := fs.String("key", "", "HMAC secret (default: $MERCURE_PUBLISHER_JWT_KEY, then $MERCURE_JWT_KEY)")
	keyFile := fs.String("private-key", "", "PEM private key file, for RS*, PS*, ES* and EdDSA")
	alg := fs.String("alg", "HS256", "signing algorithm")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (0 = no exp claim)")
	payload := fs.String("payload", "", "JSON value for the mercure.payload claim (draft-08: a JSON object, the subscribe detail's payload)")
	subject := fs.String("sub", "", "sub claim")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if len(pub)+len(pubPattern) == 0 && len(sub)+len(subPattern) == 0 {
		return errors.New("give at least one --publish or --subscribe selector")
	}
	o := mintOptions{
		alg: *alg, key: firstNonEmpty(*key, getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY")),
		keyFile: *keyFile, publish: pub, subscribe: sub, ttl: *ttl, payload: *payload, subject: *subject,
	}
	if *issuer != "" || len(aud) > 0 {
		if *issuer == "" || len(aud) == 0 {
			return errors.New("a draft-08 access token needs both --issuer and --audience")
		}
		o.issuer, o.audience = *issuer, aud
		o.publishPatterns, o.subscribePatterns = pubPattern, subPattern
	} else if len(pubPattern)+len(subPattern) > 0 {
		return errors.New("--publish-urlpattern and --subscribe-urlpattern need a draft-08 access token: give --issuer and --audience")
	}
	tok, err := mintToken(o)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

type mintOptions struct {
	alg, key, keyFile  string
	publish, subscribe []string
	ttl                time.Duration
	payload, subject   string

	// A draft-08 access token when issuer is set: publish and subscribe are exact matchers,
	// the patterns urlpattern ones.
	issuer                             string
	audience                           []string
	publishPatterns, subscribePatterns []string
}

// mintToken signs the claims that mintOptions describe.
func mintToken(o mintOptions) (string, error) {
	method := jwt.GetSigningMethod(o.alg)
	if method == nil || o.alg == "none" {
		return "", fmt.Errorf("unknown algorithm %q", o.alg)
	}
	if o.issuer != "" {
		claims, err := accessTokenClaims(o)
		if err != nil {
			return "", err
		}
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["typ"] = "at+jwt"
		return sign(tok, o)
	}
	mercure := map[string]any{}
	if o.publish != nil {
		mercure["publish"] = o.publish
	}
	if o.subscribe != nil {
		mercure["subscribe"] = o.subscribe
	}
	if o.payload != "" {
		if !json.Valid([]byte(o.payload)) {
			return "", errors.New("--payload is not valid JSON")
		}
		mercure["payload"] = json.RawMessage(o.payload)
	}
	claims := jwt.MapClaims{"mercure": mercure}
	if o.ttl > 0 {
		claims["exp"] = time.Now().Add(o.ttl).Unix()
	}
	if o.subject != "" {
		claims["sub"] = o.subject
	}
	return sign(jwt.NewWithClaims(method, claims), o)
}

// accessTokenClaims builds the claims of a draft-08 access token: those RFC 9068 asks issuers
// for (iss, exp, aud, sub, client_id, iat, jti) and one Mercure authorization detail per action.
func accessTokenClaims(o mintOptions) (jwt.MapClaims, error) {
	if o.ttl <= 0 {
		return nil, errors.New("a draft-08 access token needs an exp: give a positive --ttl")
	}
	matchers := func(exact, patterns []string) []map[string]string {
		var out []map[string]string
		for _, m := range exact {
			out = append(out, map[string]string{"match": m, "match_type": "exact"})
		}
		for _, m := range patterns {
			out = append(out, map[string]string{"match": m, "match_type": "urlpattern"})
		}
		return out
	}
	var details []map[string]any
	if t := matchers(o.publish, o.publishPatterns); t != nil {
		details = append(details, map[string]any{"type": auth.AuthorizationDetailType, "actions": []string{"publish"}, "topics": t})
	}
	if t := matchers(o.subscribe, o.subscribePatterns); t != nil {
		d := map[string]any{"type": auth.AuthorizationDetailType, "actions": []string{"subscribe"}, "topics": t}
		if o.payload != "" {
			var obj map[string]json.RawMessage
			if json.Unmarshal([]byte(o.payload), &obj) != nil || obj == nil {
				return nil, errors.New("--payload must be a JSON object in a draft-08 access token")
			}
			d["payload"] = json.RawMessage(o.payload)
		}
		details = append(details, d)
	} else if o.payload != "" {
		return nil, errors.New("--payload goes with a --subscribe or --subscribe-urlpattern grant")
	}
	now := time.Now()
	var aud any = o.audience
	if len(o.audience) == 1 {
		aud = o.audience[0]
	}
	return jwt.MapClaims{
		"iss":                   o.issuer,
		"aud":                   aud,
		"sub":                   firstNonEmpty(o.subject, o.issuer),
		"client_id":             o.issuer,
		"iat":                   now.Unix(),
		"exp":                   now.Add(o.ttl).Unix(),
		"jti":                   uuid.NewString(),
		"authorization_details": details,
	}, nil
}

// sign signs tok with the key mintOptions give: an HMAC secret or a PEM private key file.
func sign(tok *jwt.Token, o mintOptions) (string, error) {
	var signKey any
	switch {
	case strings.HasPrefix(o.alg, "HS"):
		if o.key == "" {
			return "", errors.New("no key: give --key or set MERCURE_PUBLISHER_JWT_KEY")
		}
		signKey = []byte(o.key)
	default:
		if o.keyFile == "" {
			return "", fmt.Errorf("%s needs --private-key FILE", o.alg)
		}
		pem, err := os.ReadFile(o.keyFile)
		if err != nil {
			return "", fmt.Errorf("reading private key: %w", err)
		}
		switch {
		case strings.HasPrefix(o.alg, "RS"), strings.HasPrefix(o.alg, "PS"):
			signKey, err = jwt.ParseRSAPrivateKeyFromPEM(pem)
		case strings.HasPrefix(o.alg, "ES"):
			signKey, err = jwt.ParseECPrivateKeyFromPEM(pem)
		default:
			signKey, err = jwt.ParseEdPrivateKeyFromPEM(pem)
		}
		if err != nil {
			return "", fmt.Errorf("parsing private key: %w", err)
		}
	}
	return tok.SignedString(signKey)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
