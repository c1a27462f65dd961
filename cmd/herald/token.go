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

	"github.com/heraldhub/herald/internal/cli"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// token implements `herald token`: it signs a JWT with mercure.publish / mercure.subscribe
// claims, for trying the hub locally and for scripts.
func token(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald token", flag.ContinueOnError)
	cli.SetUsage(fs, "token [flags]", "Mints a JWT with mercure.publish and mercure.subscribe claims and prints it: for trying a hub\nlocally and for scripts. Give at least one --publish or --subscribe selector.")
	var pub, sub stringList
	fs.Var(&pub, "publish", "topic selector the token may publish to (repeatable; * for all)")
	fs.Var(&sub, "subscribe", "topic selector the token may subscribe to, private updates included (repeatable)")
	key := fs.String("key", "", "HMAC secret (default: $MERCURE_PUBLISHER_JWT_KEY, then $MERCURE_JWT_KEY)")
	keyFile := fs.String("private-key", "", "PEM private key file, for RS*, PS*, ES* and EdDSA")
	alg := fs.String("alg", "HS256", "signing algorithm")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (0 = no exp claim)")
	payload := fs.String("payload", "", "JSON value for the mercure.payload claim")
	subject := fs.String("sub", "", "sub claim")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if len(pub) == 0 && len(sub) == 0 {
		return errors.New("give at least one --publish or --subscribe selector")
	}
	tok, err := mintToken(mintOptions{
		alg: *alg, key: firstNonEmpty(*key, getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY")),
		keyFile: *keyFile, publish: pub, subscribe: sub, ttl: *ttl, payload: *payload, subject: *subject,
	})
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
}

// mintToken signs the claims that mintOptions describe.
func mintToken(o mintOptions) (string, error) {
	method := jwt.GetSigningMethod(o.alg)
	if method == nil || o.alg == "none" {
		return "", fmt.Errorf("unknown algorithm %q", o.alg)
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
	return jwt.NewWithClaims(method, claims).SignedString(signKey)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
