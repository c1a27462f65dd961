package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhub/herald/auth"
	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/client"
	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/internal/cli"
)

// subscribeCommand implements `herald subscribe`: it prints the events of the topics given,
// reconnecting with Last-Event-ID when the stream ends, until interrupted, --count events or
// --timeout.
func subscribeCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald subscribe", flag.ContinueOnError)
	cli.SetUsage(fs, "subscribe --topic SELECTOR | --match TOPIC | --match-urlpattern PATTERN [flags]", "Prints the events of a hub's topics as they come, reconnecting with Last-Event-ID when the\nstream ends, until interrupted, --count events or --timeout. --topic speaks Mercure 0.x;\n--match and --match-urlpattern speak draft-08, and the token minted for them is a draft-08\naccess token.")
	var topics, matches, patterns stringList
	fs.Var(&topics, "topic", "0.x topic selector: an exact topic, * or a URI template (repeatable)")
	fs.Var(&matches, "match", "draft-08 exact matcher: a topic, or * (repeatable)")
	fs.Var(&patterns, "match-urlpattern", "draft-08 URL pattern matcher (repeatable)")
	issuer := fs.String("issuer", config.DefaultTrustedIssuer, "draft-08: iss of the minted access token, an issuer the hub trusts")
	audience := fs.String("audience", "", "draft-08: aud of the minted access token, the hub's resource identifier (default: the --hub URL)")
	hubURL := fs.String("hub", bench.DefaultHub, "the hub's URL")
	lastEventID := fs.String("last-event-id", "", `start after this update id ("earliest" for all the history)`)
	count := fs.Int("count", 0, "exit after this many events (0 = no limit)")
	timeout := fs.Duration("timeout", 0, "exit after this long (0 = no limit)")
	jsonOut := fs.Bool("json", false, "print one JSON object per event")
	cookie := fs.Bool("cookie", false, "send the JWT in a cookie rather than the Authorization header: mercureAuthorization, or __Secure-mercure_access_token with draft-08 matchers")
	tok := fs.String("token", "", "subscriber JWT (default: minted from --key; none subscribes anonymously)")
	key := fs.String("key", "", "HMAC key to mint a JWT allowed to subscribe to the topics (default $MERCURE_SUBSCRIBER_JWT_KEY, $MERCURE_PUBLISHER_JWT_KEY, $MERCURE_JWT_KEY)")
	alg := fs.String("alg", "HS256", "algorithm of the minted JWT")
	retry := fs.Duration("retry", client.DefaultRetryDelay, "reconnection delay (the hub's retry field replaces it)")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if len(topics)+len(matches)+len(patterns) == 0 {
		return errors.New("give at least one --topic, --match or --match-urlpattern")
	}
	draft08 := len(matches)+len(patterns) > 0
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	token := *tok
	if k := firstNonEmpty(*key, getenv("MERCURE_SUBSCRIBER_JWT_KEY"), getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY")); token == "" && k != "" {
		var err error
		o := mintOptions{alg: *alg, key: k, subscribe: topics, ttl: 24 * time.Hour}
		if draft08 {
			// A draft-08 grant has no URI templates: 0.x selectors given beside the
			// matchers are granted as exact topics.
			aud := *audience
			if aud == "" {
				aud = bench.ResourceOf(*hubURL)
			}
			o.issuer, o.audience = *issuer, []string{aud}
			o.subscribe = append(append([]string(nil), topics...), matches...)
			o.subscribePatterns = patterns
		}
		if token, err = mintToken(o); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	opts := client.SubscribeOptions{
		Topics: topics, Matchers: matchers(matches, patterns), Token: token, LastEventID: *lastEventID, RetryDelay: *retry,
		OnConnect: func(c client.Connection) {
			if c.Attempt > 0 {
				fmt.Fprintf(stderr, "herald subscribe: reconnected after %q (hub answered Last-Event-ID %q)\n", c.LastEventID, c.ResponseLastEventID)
			}
		},
	}
	if *cookie {
		opts.CookieName = client.DefaultCookieName
		if draft08 {
			opts.CookieName = auth.AccessTokenCookie
		}
	}
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	sub := (&client.Client{HTTPClient: hc}).Subscribe(ctx, *hubURL, opts)
	defer sub.Close()
	enc := json.NewEncoder(stdout)
	n := 0
	for ev := range sub.Events() {
		var err error
		if *jsonOut {
			err = enc.Encode(ev)
		} else {
			err = writeEvent(stdout, ev)
		}
		if err != nil {
			return err
		}
		if n++; *count > 0 && n >= *count {
			return nil
		}
	}
	return sub.Err()
}

// matchers returns the draft-08 matchers of the exact topics and URL patterns given.
func matchers(exact, patterns []string) []client.Matcher {
	var out []client.Matcher
	for _, v := range exact {
		out = append(out, client.Matcher{Type: "exact", Value: v})
	}
	for _, v := range patterns {
		out = append(out, client.Matcher{Type: "urlpattern", Value: v})
	}
	return out
}

// writeEvent prints an event as the hub sent it.
func writeEvent(w io.Writer, ev client.Event) error {
	var b strings.Builder
	if ev.Type != "" {
		fmt.Fprintf(&b, "event: %s\n", ev.Type)
	}
	fmt.Fprintf(&b, "id: %s\n", ev.ID)
	for line := range strings.SplitSeq(ev.Data, "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
