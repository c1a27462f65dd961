package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhub/herald/transport"
)

// SubscriptionsPath is the root of the draft's "active subscriptions" resources and of the
// topics of subscription events.
const SubscriptionsPath = "/.well-known/mercure/subscriptions"

// JSONLDContext is the @context of subscription documents.
const JSONLDContext = "https://mercure.rocks/"

// Subscription is the JSON-LD document that describes one subscription (one selector of one
// subscriber), in subscription events and in the subscriptions API.
type Subscription struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic"`
	Active      bool            `json:"active"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	LastEventID string          `json:"lastEventID,omitempty"`
}

// SubscriptionID returns the IRI of a subscription: the subscriptions path, then the selector
// and the subscriber id, each percent-encoded once as an RFC 6570 simple expansion does.
func SubscriptionID(selector, subscriber string) string {
	return SubscriptionsPath + "/" + EscapeSegment(selector) + "/" + EscapeSegment(subscriber)
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
}

// apply records u when it is a subscription event. It runs on the dispatch goroutine.
func (r *registry) apply(u *transport.Update) {
	var s Subscription
	isEvent := len(u.Topics) == 1 && strings.HasPrefix(u.Topics[0], SubscriptionsPath+"/") && u.Private
	if isEvent {
		if err := json.Unmarshal([]byte(u.Data), &s); err != nil || s.Type != "Subscription" || s.ID != u.Topics[0] {
			isEvent = false
		}
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

// SubscriptionsSnapshot lists active subscriptions, optionally only those of one selector
// (topic != "") and one subscriber (subscriber != ""), sorted by ID, with the ID of the last
// update dispatched when the list was taken.
func (h *Hub) SubscriptionsSnapshot(topic, subscriber string) (subs []Subscription, lastEventID string) {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	for _, s := range h.reg.subs {
		if (topic == "" || s.Topic == topic) && (subscriber == "" || s.Subscriber == subscriber) {
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

// announce publishes one subscription event per selector of s, active or not. Failures are
// logged: presence is best effort and must not refuse or hold a subscriber.
func (h *Hub) announce(ctx context.Context, s *Subscriber, active bool) {
	for _, sel := range s.Selectors {
		doc := Subscription{
			Context:    JSONLDContext,
			ID:         SubscriptionID(sel.Raw(), s.ID),
			Type:       "Subscription",
			Subscriber: s.ID,
			Topic:      sel.Raw(),
			Active:     active,
			Payload:    s.Payload,
		}
		data, err := json.Marshal(doc)
		if err != nil {
			h.log.Error("encoding a subscription event failed", "err", err)
			continue
		}
		u := &transport.Update{Topics: []string{doc.ID}, Private: true, Data: string(data)}
		if err := h.Publish(ctx, u); err != nil {
			h.log.Warn("publishing a subscription event failed", "subscription", doc.ID, "active", active, "err", fmt.Errorf("%w", err))
		}
	}
}

// announceTimeout bounds the publication of a departure event.
const announceTimeout = 5 * time.Second
