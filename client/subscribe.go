package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/sse"
)

// Defaults of SubscribeOptions' zero values.
const (
	DefaultRetryDelay    = time.Second
	DefaultMaxRetryDelay = 30 * time.Second
	DefaultBuffer        = 64
)

// Event is one event received on a subscription.
type Event struct {
	// ID is the event's id (for a Mercure hub, the update's id). An event without an id field
	// carries the previous one, as in the EventSource API.
	ID string
	// Type is the event type; empty means the default, "message".
	Type string
	// Data is the payload: the event's data lines joined with "\n".
	Data string
}

// Connection describes one connection of a subscription, once the hub has started its stream.
type Connection struct {
	// Attempt is 0 for the first request of the subscription, then counts every later one,
	// the failed ones included.
	Attempt int
	// LastEventID is the Last-Event-ID the request sent (empty for none).
	LastEventID string
	// ResponseLastEventID is the Mercure-Last-Event-ID (draft-08) or Last-Event-ID (0.x)
	// header of the answer: with history requested, the id the hub resumed after, or "earliest" when it did not know the one sent and replayed
	// everything it retains (so updates may have been missed).
	ResponseLastEventID string
	// Header is the answer's header.
	Header http.Header
}

// SubscribeOptions describes a subscription.
type SubscribeOptions struct {
	// Topics are Mercure 0.x topic selectors (exact topics, "*" or URI templates), sent as
	// topic= parameters. A subscription needs at least one topic or matcher.
	Topics []string
	// Matchers are draft-08 topic matchers, sent as match= and match_<type>= parameters; a
	// hub that speaks both dialects accepts both kinds on one subscription.
	Matchers []Matcher
	// Token is the subscriber JWT, sent as "Authorization: Bearer" unless CookieName is set.
	// Empty subscribes anonymously.
	Token string
	// CookieName, when set, sends Token in that cookie instead (DefaultCookieName is the
	// protocol's), as a browser does.
	CookieName string
	// LastEventID asks for history on the first connection: the updates after that id, or
	// all the hub retains with "earliest". Empty starts with live updates only. Reconnections
	// always send the id of the last event received.
	LastEventID string
	// Header holds extra request headers.
	Header http.Header

	// Handler, when set, is called with every event, one at a time and in order, from the
	// subscription's goroutine; Events then returns nil. The stream is not read while it runs,
	// so it must return quickly. Without a Handler, events go to the Events channel.
	Handler func(Event)
	// Buffer is the capacity of the Events channel. Zero means DefaultBuffer.
	Buffer int
	// OnConnect, when set, is called from the subscription's goroutine each time a connection
	// is established: on the first bytes of its body (the hub's opening comment or first
	// event), the moment from which the hub certainly delivers to it.
	OnConnect func(Connection)

	// RetryDelay is the wait before reconnecting after a stream ended; a retry field sent by
	// the hub replaces it. Zero means DefaultRetryDelay.
	RetryDelay time.Duration
	// MaxRetryDelay caps the exponential backoff applied while attempts fail (network errors,
	// 5xx, 408, 429). Zero means DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration
}

// Subscription is a running subscription; create it with Subscribe. It reads the hub's
// stream, delivers events in order, and reconnects by itself when the stream ends or the
// network fails, sending the id of the last event received as Last-Event-ID, after a delay
// (the hub's retry field, or RetryDelay) that backs off exponentially while attempts fail.
//
// It stops when its context is cancelled, when Close is called, or on a permanent failure:
// an answer of 4xx other than 408 and 429 (a bad request, a missing or refused JWT: retrying
// would not help), 204, or an answer that is not an event stream. Err then tells why.
type Subscription struct {
	c      *Client
	url    string
	opts   SubscribeOptions
	events chan Event
	done   chan struct{}
	cancel context.CancelFunc

	retry    time.Duration // current base delay, owned by the run goroutine
	attempts int           // requests sent, owned by the run goroutine

	reconnects  atomic.Int64
	connections atomic.Int64

	mu         sync.Mutex
	lastID     string
	respLastID string
	err        error
	lastErr    error
}

// Subscribe starts a subscription to the hub at hubURL. It returns at once; the connection
// is made in the background (set OnConnect to learn when it is established).
func (c *Client) Subscribe(ctx context.Context, hubURL string, opts SubscribeOptions) *Subscription {
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: c, opts: opts, done: make(chan struct{}), cancel: cancel, lastID: opts.LastEventID}
	if s.opts.RetryDelay <= 0 {
		s.opts.RetryDelay = DefaultRetryDelay
	}
	if s.opts.MaxRetryDelay <= 0 {
		s.opts.MaxRetryDelay = DefaultMaxRetryDelay
	}
	s.retry = s.opts.RetryDelay
	if opts.Handler == nil {
		n := opts.Buffer
		if n <= 0 {
			n = DefaultBuffer
		}
		s.events = make(chan Event, n)
	}
	u, err := subscribeURL(hubURL, opts.Topics, opts.Matchers)
	if err != nil {
		s.stop(err)
		return s
	}
	s.url = u
	go s.run(ctx)
	return s
}

// Matcher is a draft-08 topic matcher.
type Matcher struct {
	// Type is the matcher type: "exact" (the default, when empty) or "urlpattern".
	Type string
	// Value is the topic, or the URL pattern, or "*" for every topic.
	Value string
}

// param returns the query parameter that carries m.
func (m Matcher) param() string {
	if m.Type == "" || m.Type == "exact" {
		return "match"
	}
	return "match_" + m.Type
}

// subscribeURL adds the topic selectors and matchers to the hub URL's query.
func subscribeURL(hubURL string, topics []string, matchers []Matcher) (string, error) {
	if len(topics) == 0 && len(matchers) == 0 {
		return "", errors.New("client: a subscription needs at least one topic selector or matcher")
	}
	u, err := url.Parse(hubURL)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("client: hub URL %q is not http or https", hubURL)
	}
	q := u.Query()
	for _, t := range topics {
		q.Add("topic", t)
	}
	for _, m := range matchers {
		q.Add(m.param(), m.Value)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Events returns the channel events are delivered on, in order; it is closed when the
// subscription stops. It is nil when SubscribeOptions.Handler is set.
func (s *Subscription) Events() <-chan Event { return s.events }

// Done is closed when the subscription has stopped (after the Events channel is closed).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription stopped: nil while it runs and after Close or a
// cancelled context; an *HTTPError for a refusal (401, 403, 400…), or another error for an
// answer that is not an event stream or an invalid URL.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close stops the subscription, waits until its goroutine has returned, and returns Err().
func (s *Subscription) Close() error {
	s.cancel()
	<-s.done
	return s.Err()
}

// LastEventID returns the id of the last event received, the Last-Event-ID the next
// reconnection sends (or SubscribeOptions.LastEventID while nothing was received).
func (s *Subscription) LastEventID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

// ResponseLastEventID returns the Last-Event-ID header of the latest connection's answer
// (see Connection.ResponseLastEventID).
func (s *Subscription) ResponseLastEventID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.respLastID
}

// LastError returns the error that ended the latest connection or attempt (nil after a clean
// end of stream), to tell why a subscription keeps reconnecting or never connects.
func (s *Subscription) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Reconnects returns how many requests were sent after the first one: every reconnection
// attempt, successful or not.
func (s *Subscription) Reconnects() int { return int(s.reconnects.Load()) }

// Connections returns how many connections were established (streams started).
func (s *Subscription) Connections() int { return int(s.connections.Load()) }

// stop records the final error (if any) and marks the subscription done.
func (s *Subscription) stop(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	s.cancel()
	if s.events != nil {
		close(s.events)
	}
	close(s.done)
}

// run connects, reads, and reconnects until the context ends or a permanent failure.
func (s *Subscription) run(ctx context.Context) {
	failures := 0 // consecutive attempts that did not start a stream
	for {
		if s.attempts > 0 {
			t := time.NewTimer(s.delay(failures))
			select {
			case <-ctx.Done():
				t.Stop()
				s.stop(nil)
				return
			case <-t.C:
			}
			s.reconnects.Add(1)
		}
		opened, err := s.connect(ctx)
		s.attempts++
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if ctx.Err() != nil {
			s.stop(nil)
			return
		}
		if permanent(err) {
			s.stop(err)
			return
		}
		if opened {
			failures = 0
		} else {
			failures++
		}
	}
}

// delay is the wait before the next attempt: the base retry delay after a stream that
// started, then doubling per failed attempt up to MaxRetryDelay, with jitter so that many
// clients do not come back at once.
func (s *Subscription) delay(failures int) time.Duration {
	d := s.retry
	if failures == 0 {
		return d
	}
	for i := 1; i < failures && d < s.opts.MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxRetryDelay)
	return d/2 + rand.N(d/2+1)
}

// permanentError marks failures a reconnection would not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// connect makes one request and reads its stream to the end. opened reports whether the
// stream started (its first bytes arrived).
func (s *Subscription) connect(ctx context.Context) (opened bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return false, &permanentError{fmt.Errorf("client: %w", err)}
	}
	for k, vs := range s.opts.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.opts.Token != "" {
		if s.opts.CookieName != "" {
			req.AddCookie(&http.Cookie{Name: s.opts.CookieName, Value: s.opts.Token})
		} else {
			req.Header.Set("Authorization", "Bearer "+s.opts.Token)
		}
	}
	sentID := s.LastEventID()
	if sentID != "" {
		req.Header.Set("Last-Event-ID", sentID)
	}
	resp, err := s.c.httpClient().Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return false, responseError(resp)
	default: // 204 means "stop" for an EventSource; other 4xx will not get better
		return false, &permanentError{responseError(resp)}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, &permanentError{fmt.Errorf("client: the answer is %q, not an event stream", resp.Header.Get("Content-Type"))}
	}
	respLastID := responseLastEventID(resp.Header)
	s.mu.Lock()
	s.respLastID = respLastID
	s.mu.Unlock()

	body := &firstRead{r: resp.Body}
	body.fn = func() {
		opened = true
		s.connections.Add(1)
		if s.opts.OnConnect != nil {
			s.opts.OnConnect(Connection{Attempt: s.attempts, LastEventID: sentID,
				ResponseLastEventID: respLastID, Header: resp.Header})
		}
	}
	r := sse.NewReader(body)
	// A new Reader starts without a last event id, while the stream's carries over from the
	// previous connection: events without an id field keep the previous connection's.
	sawID := false
	for {
		m, err := r.Next()
		if err != nil {
			if sawID || r.LastEventID() != "" {
				s.setLastID(r.LastEventID())
			}
			if err == io.EOF {
				err = nil
			}
			return opened, err
		}
		sawID = sawID || m.HasID || r.LastEventID() != ""
		id := m.ID
		if !sawID {
			id = sentID
		} else {
			s.setLastID(id)
		}
		if m.Retry > 0 {
			s.retry = time.Duration(min(m.Retry, uint64(24*time.Hour/time.Millisecond))) * time.Millisecond
		}
		ev := Event{ID: id, Type: m.Type, Data: m.Data}
		if s.opts.Handler != nil {
			s.opts.Handler(ev)
			continue
		}
		select {
		case s.events <- ev:
		case <-ctx.Done():
			return opened, ctx.Err()
		}
	}
}

func (s *Subscription) setLastID(id string) {
	s.mu.Lock()
	s.lastID = id
	s.mu.Unlock()
}

// firstRead calls fn once, when the first bytes are read.
type firstRead struct {
	r     io.Reader
	fn    func()
	fired bool
}

func (f *firstRead) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.fired {
		f.fired = true
		f.fn()
	}
	return n, err
}

// responseLastEventID returns the position a hub says it resumed from: draft-08 hubs answer
// with Mercure-Last-Event-ID, 0.x hubs with Last-Event-ID.
func responseLastEventID(h http.Header) string {
	if id := h.Get("Mercure-Last-Event-ID"); id != "" {
		return id
	}
	return h.Get("Last-Event-ID")
}
