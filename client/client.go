// Package client is a small Go client for Mercure-protocol hubs (Herald, the reference hub, or
// any other): Publish posts an update, Subscribe opens an event stream that reconnects by
// itself with Last-Event-ID, so that no update is missed while the hub keeps enough history.
//
//	id, err := client.Publish(ctx, hubURL, publisherJWT, client.Update{
//		Topics: []string{"https://example.com/books/1"},
//		Data:   `{"title":"Hello"}`,
//	})
//
//	sub := client.Subscribe(ctx, hubURL, client.SubscribeOptions{
//		Topics: []string{"https://example.com/books/{id}"},
//		Token:  subscriberJWT,
//	})
//	defer sub.Close()
//	for ev := range sub.Events() {
//		fmt.Println(ev.ID, ev.Data)
//	}
//	if err := sub.Err(); err != nil { // the hub refused the subscription (4xx)
//		log.Fatal(err)
//	}
//
// The package-level functions use http.DefaultClient; a Client with its own *http.Client
// (timeouts, TLS, a tuned Transport) serves programs that open many connections.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultCookieName is the cookie a hub reads a subscriber JWT from, as the protocol names it.
const DefaultCookieName = "mercureAuthorization"

// maxReason bounds how much of an error answer's body is kept as its reason.
const maxReason = 1 << 10

// Update is one update to publish.
type Update struct {
	// Topics are the update's topics; the first is its canonical topic. At least one.
	Topics []string
	// Data is the payload (the SSE data field).
	Data string
	// Private updates only reach subscribers whose JWT allows one of their topics.
	Private bool
	// ID is the update's id; empty lets the hub choose one (Publish returns it).
	ID string
	// Type is the SSE event field; empty means the default, "message".
	Type string
	// Retry is the SSE retry field, in milliseconds; zero leaves it out.
	Retry uint64
}

// HTTPError is a hub's answer other than success: its status code and the reason it gave
// (the first line of the body, or the status text when the body was empty).
type HTTPError struct {
	Status int
	Reason string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("hub answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// Client publishes and subscribes through an *http.Client. The zero value uses
// http.DefaultClient. A Client is safe for concurrent use.
type Client struct {
	// HTTPClient sends the requests; nil means http.DefaultClient. A subscription holds one
	// connection for as long as it lasts: give many concurrent subscriptions a Transport whose
	// MaxConnsPerHost is 0 (unlimited), and no Client.Timeout, which would cut streams.
	HTTPClient *http.Client
}

// defaultClient serves the package-level functions.
var defaultClient Client

// Publish publishes u with the default Client; see Client.Publish.
func Publish(ctx context.Context, hubURL, token string, u Update) (string, error) {
	return defaultClient.Publish(ctx, hubURL, token, u)
}

// Subscribe subscribes with the default Client; see Client.Subscribe.
func Subscribe(ctx context.Context, hubURL string, opts SubscribeOptions) *Subscription {
	return defaultClient.Subscribe(ctx, hubURL, opts)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// Publish posts u to the hub at hubURL (its /.well-known/mercure endpoint) as a form, with
// token as a bearer JWT (none when empty), and returns the update's id as the hub answered it.
// An answer other than 200 is returned as an *HTTPError.
func (c *Client) Publish(ctx context.Context, hubURL, token string, u Update) (string, error) {
	if len(u.Topics) == 0 {
		return "", errors.New("client: an update needs at least one topic")
	}
	form := url.Values{"topic": u.Topics, "data": {u.Data}}
	if u.Private {
		form.Set("private", "on")
	}
	if u.ID != "" {
		form.Set("id", u.ID)
	}
	if u.Type != "" {
		form.Set("type", u.Type)
	}
	if u.Retry > 0 {
		form.Set("retry", strconv.FormatUint(u.Retry, 10))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hubURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return "", fmt.Errorf("client: publish: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", responseError(resp)
	}
	// An id is short; reading a bounded body to its end lets the connection be reused.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("client: publish: reading the answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return strings.TrimRight(string(body), "\r\n"), nil
}

// responseError turns a failed answer into an *HTTPError, reading a bounded part of its body.
func responseError(resp *http.Response) *HTTPError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxReason))
	reason := strings.TrimSpace(string(b))
	if i := strings.IndexAny(reason, "\r\n"); i >= 0 {
		reason = reason[:i]
	}
	for !utf8.ValidString(reason) { // a cut in the middle of a character
		reason = reason[:len(reason)-1]
	}
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	return &HTTPError{Status: resp.StatusCode, Reason: reason}
}
