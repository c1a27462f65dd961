package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/client"
	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/internal/cli"
)

// publishCommand implements `herald publish`: it publishes one update and prints its id.
func publishCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald publish", flag.ContinueOnError)
	cli.SetUsage(fs, "publish --topic TOPIC [flags]", "Publishes one update to a hub and prints its id.")
	var topics stringList
	fs.Var(&topics, "topic", "topic of the update (repeatable; the first is canonical)")
	hubURL := fs.String("hub", bench.DefaultHub, "the hub's URL")
	data := fs.String("data", "", "the update's data")
	dataFile := fs.String("data-file", "", "read the data from this file (- for standard input)")
	id := fs.String("id", "", "the update's id (default: chosen by the hub)")
	typ := fs.String("type", "", "the SSE event type")
	retry := fs.Uint64("retry", 0, "the SSE retry field, in milliseconds")
	private := fs.Bool("private", false, "a private update")
	tok := fs.String("token", "", "publisher JWT (default: minted from --key)")
	key := fs.String("key", "", "HMAC key to mint a JWT allowed to publish to the topics (default $MERCURE_PUBLISHER_JWT_KEY, then $MERCURE_JWT_KEY)")
	alg := fs.String("alg", "HS256", "algorithm of the minted JWT")
	draft08 := fs.Bool("draft-08", false, "mint a draft-08 access token (typ at+jwt) granting publish on the topics, rather than a 0.x JWT")
	issuer := fs.String("issuer", config.DefaultTrustedIssuer, "with --draft-08: iss of the minted access token, an issuer the hub trusts")
	audience := fs.String("audience", "", "with --draft-08: aud of the minted access token, the hub's resource identifier (default: the --hub URL)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound of the request")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if len(topics) == 0 {
		return errors.New("give at least one --topic")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *dataFile != "" {
		var b []byte
		var err error
		if *dataFile == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*dataFile)
		}
		if err != nil {
			return err
		}
		*data = string(b)
	}
	token := *tok
	if token == "" {
		k := firstNonEmpty(*key, getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY"))
		if k == "" {
			return errors.New("no JWT: give --token or --key (or set MERCURE_PUBLISHER_JWT_KEY)")
		}
		var err error
		o := mintOptions{alg: *alg, key: k, publish: topics, ttl: time.Hour}
		if *draft08 {
			o.issuer, o.audience = *issuer, []string{firstNonEmpty(*audience, bench.ResourceOf(*hubURL))}
		}
		if token, err = mintToken(o); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	got, err := (&client.Client{HTTPClient: hc}).Publish(ctx, *hubURL, token, client.Update{
		Topics: topics, Data: *data, Private: *private, ID: *id, Type: *typ, Retry: *retry,
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, got)
	return err
}
