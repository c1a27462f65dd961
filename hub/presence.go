package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhub/herald/internal/loglimit"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// SubscriptionsPath is the root of the draft's "active subscriptions" resources and of the
// topics of subscription events.
const SubscriptionsPath = "/.well-known/mercure/subscriptions"

// JSONLDContext is the @context of subscription documents.
const JSONLDContext = "https://mercure.rocks/"

// Subscription describes one subscription (one selector of one subscriber), in subscription
// events and in the subscriptions API. It has two forms, chosen by the dialect the selector
// came in, so that each watcher finds the events it knows: a Mercure 0.x topic selector gives
// the JSON-LD document (@context, type "Subscription", topic) under
// SubscriptionsPath/{topic}/{subscriber}; a draft-08 matcher gives the plain JSON document
// (type "subscription", match_type, match) under SubscriptionsPath/{match_type}/{match}/{subscriber},
// sent with the SSE event type "mercure".
type Subscription struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic,omitempty"`
	MatchType   string          `json:"match_type,omitempty"`
	Match       string          `json:"match,omitempty"`
	Active      bool            `json:"active"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	LastEventID string          `json:"lastEventID,omitempty"`
}

// Document types and event type of the two forms of Subscription.
const (
	docSubscription       = "Subscription" // 0.x, JSON-LD
	docSubscription08     = "subscription" // draft-08
	SubscriptionEventType = "mercure"      // SSE event of draft-08 subscription events
)

// Draft08 reports whether s is in the draft-08 form.
func (s *Subscription) Draft08() bool { return s.Type == docSubscription08 }

// newSubscription returns the active subscription of sel by subscriber, in the form of the
// dialect sel came in.
func newSubscription(sel *topic.Selector, subscriber string, payload json.RawMessage) Subscription {
	if t := sel.Type(); t != topic.MatchTopic {
		return Subscription{
			ID: SubscriptionID08(t.String(), sel.Raw(), subscriber), Type: docSubscription08,
			Subscriber: subscriber, MatchType: t.String(), Match: sel.Raw(), Active: true, Payload: payload,
		}
	}
	return Subscription{
		ID: SubscriptionID(sel.Raw(), subscriber), Type: docSubscription,
		Subscriber: subscriber, Topic: sel.Raw(), Active: true, Payload: payload,
	}
}

// event returns the subscription event that publishes s: private, a system update, and for
// the draft-08 form the "mercure" event type.
func (s Subscription) event() (*transport.Update, error) {
	u := &transport.Update{Topics: []string{s.ID}, Private: true, System: true}
	if s.Draft08() {
		s.Context = ""
		u.Type = SubscriptionEventType
	} else {
		s.Context = JSONLDContext
	}
	s.LastEventID = ""
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("hub: encoding subscription event %s: %w", s.ID, err)
	}
	u.Data = string(data)
	return u, nil
}

// SubscriptionID returns the IRI of a 0.x subscription: the subscriptions path, then the
// selector and the subscriber id, each percent-encoded once as an RFC 6570 simple expansion does.
func SubscriptionID(selector, subscriber string) string {
	return SubscriptionsPath + "/" + EscapeSegment(selector) + "/" + EscapeSegment(subscriber)
}

// SubscriptionID08 returns the topic of a draft-08 subscription:
// SubscriptionsPath/{match_type}/{match}/{subscriber}, each variable percent-encoded once.
func SubscriptionID08(matchType, match, subscriber string) string {
	return SubscriptionsPath + "/" + EscapeSegment(matchType) + "/" + EscapeSegment(match) + "/" + EscapeSegment(subscriber)
}

// EscapeSegment percent-encodes every byte of s except RFC 3986 unreserved characters.
func EscapeSegment(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// registry is the table of active subscriptions, built from the subscription events read from
// the log. Because every node reads the same log, every node's table lists the subscriptions
// of all nodes.
type registry struct {
	mu     sync.RWMutex
	subs   map[string]Subscription // by subscription ID
	lastID string                  // ID of the last dispatched update, updated with subs
	seen   map[uint32]time.Time    // node tag → when it was last heard of (cluster.go)
	peers  map[uint32]nodeStatus   // node tag → what its last heartbeat said (cluster.go, stats.go)
}

// apply records u when it is a subscription event. It runs on the dispatch goroutine.
func (r *registry) apply(u *transport.Update) {
	var s Subscription
	// Only the hub writes subscription events (System): a publisher's update never counts as
	// one, even on a topic that got past the reserved namespace check.
	isEvent := u.System && len(u.Topics) == 1 && strings.HasPrefix(u.Topics[0], SubscriptionsPath+"/") && u.Private
	if isEvent {
		err := json.Unmarshal([]byte(u.Data), &s)
		isEvent = err == nil && s.ID == u.Topics[0] &&
			(s.Type == docSubscription || s.Type == docSubscription08 && u.Type == SubscriptionEventType)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastID = u.ID
	if !isEvent {
		return
	}
	if s.Active {
		s.Context = ""
		r.subs[s.ID] = s
		if tag, ok := nodeOf(s.Subscriber); ok {
			if _, known := r.seen[tag]; !known {
				r.seen[tag] = time.Now()
			}
		}
	} else {
		delete(r.subs, s.ID)
	}
}

// SubscriptionFilter selects subscriptions in SubscriptionsSnapshot; its zero value selects
// them all. Topic selects the 0.x subscriptions of one topic selector, MatchType and Match
// the draft-08 subscriptions of one matcher; Subscriber narrows either to one subscriber.
type SubscriptionFilter struct {
	Topic      string
	MatchType  string
	Match      string
	Subscriber string
}

func (f SubscriptionFilter) keep(s *Subscription) bool {
	switch {
	case f.MatchType != "":
		if !s.Draft08() || s.MatchType != f.MatchType || s.Match != f.Match {
			return false
		}
	case f.Topic != "":
		if s.Draft08() || s.Topic != f.Topic {
			return false
		}
	}
	return f.Subscriber == "" || s.Subscriber == f.Subscriber
}

// SubscriptionsSnapshot lists the active subscriptions that f selects, sorted by ID, with
// the ID of the last update dispatched when the list was taken (Earliest when none was).
func (h *Hub) SubscriptionsSnapshot(f SubscriptionFilter) (subs []Subscription, lastEventID string) {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	for _, s := range h.reg.subs {
		if f.keep(&s) {
			subs = append(subs, s)
		}
	}
	slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.ID, b.ID) })
	lastEventID = h.reg.lastID
	if lastEventID == "" {
		lastEventID = Earliest
	}
	return subs, lastEventID
}

// announce publishes one subscription event per selector of s, active or not, each in the
// form of the dialect its selector came in. Failures are logged: presence is best effort and
// must not refuse or hold a subscriber.
func (h *Hub) announce(ctx context.Context, s *Subscriber, active bool) {
	for i, sel := range s.Selectors {
		doc := newSubscription(sel, s.ID, s.payload(i))
		doc.Active = active
		u, err := doc.event()
		if err != nil {
			h.log.Error("encoding a subscription event failed", "err", err)
			continue
		}
		if err := h.Publish(ctx, u); err != nil {
			h.pres.failed("publishing subscription events failed", "subscription", doc.ID, "active", active, "err", err)
		}
	}
}

// Defaults of the bound on the rate of subscription events (Config).
const (
	DefaultSubscriptionEventsRate  = 1000
	DefaultSubscriptionEventsBurst = 10_000
)

// admitWait bounds how long a new subscription waits for the rate of subscription events to
// allow its announcement before it is refused with a BusyError.
const admitWait = 5 * time.Second

// BusyError is returned by Subscribe, with Config.Subscriptions on, when subscription events
// are already written as fast as Config.SubscriptionEventsRate allows and the new
// subscription's would have to wait longer than admitWait: nothing was registered or
// announced, and the client may retry after RetryAfter. This bounds what a flood of
// subscriptions writes to the log.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("hub: subscription events at their rate limit; retry in %v", e.RetryAfter.Round(time.Millisecond))
}

// presence is the hub's guard on subscription events: the token bucket that bounds the rate
// of arrivals' events, and the rate-limited log of failures to publish them.
type presence struct {
	bucket bucket
	fail   *loglimit.Limiter
}

// newPresence returns the guard for cfg, whose rate, burst and logger have their defaults
// applied.
func newPresence(cfg Config) *presence {
	return &presence{
		bucket: bucket{rate: cfg.SubscriptionEventsRate, burst: float64(cfg.SubscriptionEventsBurst), tokens: float64(cfg.SubscriptionEventsBurst), now: time.Now},
		fail:   loglimit.New(loglimit.Config{Logger: cfg.Logger}),
	}
}

// admit takes one token per selector of a new subscription, waiting for them when the
// bucket is short, for at most admitWait and as long as ctx lasts. Departures take none:
// there are never more of them than arrivals.
func (h *Hub) admit(ctx context.Context, selectors int) error {
	wait, ok := h.pres.bucket.reserve(selectors, admitWait)
	if !ok {
		return &BusyError{RetryAfter: wait}
	}
	if wait == 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		h.pres.bucket.cancel(selectors)
		return fmt.Errorf("hub: waiting to announce a subscription: %w", ctx.Err())
	}
}

// failed logs a failure to publish presence (subscription events, control updates) at most
// once per second per message, with the number of failures held back since the previous
// line: a transport that refuses every event must not turn each into a log line.
func (p *presence) failed(msg string, args ...any) {
	p.fail.Log(context.Background(), slog.LevelWarn, msg, msg, args...)
}

// bucket is a token bucket that may go into debt: reserve takes the tokens at once and says
// how long until they would have been there, so that waiting callers are served in order.
// A rate of zero or less means no limit.
type bucket struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64   // may be negative: tokens promised to waiting callers
	at     time.Time // when tokens was last brought up to date
}

// reserve takes n tokens (at most a full bucket) and returns how long the caller must wait
// before using them. When that would be longer than maxWait it takes nothing and returns
// false with the wait it would have needed.
func (b *bucket) reserve(n int, maxWait time.Duration) (time.Duration, bool) {
	if b.rate <= 0 {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.at.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
	need := min(float64(n), b.burst)
	var wait time.Duration
	if short := need - b.tokens; short > 0 {
		wait = time.Duration(math.Ceil(short / b.rate * float64(time.Second)))
	}
	if wait > maxWait {
		return wait, false
	}
	b.tokens -= need
	return wait, true
}

// cancel gives back the n tokens of a reservation that its caller gave up.
func (b *bucket) cancel(n int) {
	if b.rate <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+min(float64(n), b.burst))
}

// announceTimeout bounds the publication of a departure event.
const announceTimeout = 5 * time.Second
