package hub

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhub/herald/transport"
)

// Hubs that share one transport keep one table of active subscriptions between them: every
// node reads every subscription event from the log. Two things need more than that: a node
// that starts late has not seen the events of subscriptions made before it, and a node that
// dies never publishes the departures of its subscribers. Hubs therefore talk to each other
// through control updates in a reserved namespace, which the log carries like any update but
// which are never delivered to subscribers:
//
//   - every node publishes a heartbeat every Config.NodeHeartbeat;
//   - a starting node publishes "hello", and every other node answers with a snapshot of its
//     own active subscriptions;
//   - a node not heard from for Config.NodeTTL is dead: every node drops its subscriptions,
//     and the live node with the lowest tag publishes their departure events.
//
// Each node has a random 32-bit tag, chosen at start, which it also writes into the ids of its
// subscribers (UUIDv8), so every node knows which node holds which subscription.

// ClusterPath is the reserved namespace of hub-to-hub control updates.
const ClusterPath = "/.well-known/mercure/cluster/"

// Defaults of the cluster timers.
const (
	DefaultNodeHeartbeat = 5 * time.Second
	DefaultNodeTTL       = 3 * DefaultNodeHeartbeat
)

// Types of control updates.
const (
	ctlHeartbeat = "heartbeat"
	ctlHello     = "hello"
	ctlSnapshot  = "snapshot"
)

// controlMessage is the data of a control update.
type controlMessage struct {
	Node          string         `json:"node"`
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
	// What the operator's dashboard shows of the node (heartbeats and hello only): its
	// address, its subscribers and how far it is behind the log.
	Addr        string `json:"addr,omitempty"`
	Subscribers int    `json:"subscribers,omitempty"`
	Lag         uint64 `json:"lag,omitempty"`
}

// isControl reports whether u is a hub-to-hub control update.
func isControl(u *transport.Update) bool {
	return len(u.Topics) == 1 && strings.HasPrefix(u.Topics[0], ClusterPath)
}

// newNodeTag returns a random node tag.
func newNodeTag() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// tagHex formats a node tag.
func tagHex(tag uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], tag)
	return hex.EncodeToString(b[:])
}

// newSubscriberID returns "urn:uuid:" and a version 8 UUID whose first 32 bits are the node's
// tag and whose other bits are random.
func newSubscriberID(tag uint32) string {
	var u uuid.UUID
	_, _ = rand.Read(u[:])
	binary.BigEndian.PutUint32(u[:4], tag)
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return "urn:uuid:" + u.String()
}

// nodeOf returns the node tag written in a subscriber id by newSubscriberID.
func nodeOf(subscriber string) (uint32, bool) {
	u, err := uuid.Parse(strings.TrimPrefix(subscriber, "urn:uuid:"))
	if err != nil || u.Version() != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint32(u[:4]), true
}

// applyControl records what a control update says about its node. It runs on the dispatch
// goroutine; an answer that needs publishing is left to the cluster loop.
func (h *Hub) applyControl(u *transport.Update) {
	if !u.System {
		return // only hubs write control updates; a publisher's is dropped unread
	}
	var msg controlMessage
	if err := json.Unmarshal([]byte(u.Data), &msg); err != nil {
		return
	}
	b, err := hex.DecodeString(msg.Node)
	if err != nil || len(b) != 4 {
		return
	}
	tag := binary.BigEndian.Uint32(b)
	h.reg.mu.Lock()
	h.reg.seen[tag] = time.Now()
	if u.Type == ctlHeartbeat || u.Type == ctlHello {
		h.reg.peers[tag] = nodeStatus{addr: msg.Addr, subscribers: msg.Subscribers, lag: msg.Lag}
	}
	if u.Type == ctlSnapshot && tag != h.node {
		for _, s := range msg.Subscriptions {
			if owner, ok := nodeOf(s.Subscriber); ok && owner == tag && s.Active {
				s.Context = ""
				h.reg.subs[s.ID] = s
			}
		}
	}
	h.reg.mu.Unlock()
	if u.Type == ctlHello && tag != h.node {
		select {
		case h.helloSeen <- struct{}{}:
		default:
		}
	}
}

// runCluster is the cluster loop: hello, heartbeats, snapshots for newcomers, and the expiry
// of dead nodes' subscriptions. It runs until ctx ends. Heartbeats also tell the other nodes'
// dashboards how this node does; without Config.Subscriptions there are no snapshots.
func (h *Hub) runCluster(ctx context.Context) {
	h.publishControl(ctx, ctlHello, nil)
	t := time.NewTicker(h.cfg.NodeHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.helloSeen:
			if h.cfg.Subscriptions {
				h.publishSnapshot(ctx)
			}
		case <-t.C:
			h.publishControl(ctx, ctlHeartbeat, nil)
			h.expireDeadNodes(ctx)
		}
	}
}

// publishControl appends a control update of this node. Heartbeats and hello carry the
// node's figures for the dashboards.
func (h *Hub) publishControl(ctx context.Context, typ string, subs []Subscription) {
	msg := controlMessage{Node: tagHex(h.node), Subscriptions: subs}
	if typ != ctlSnapshot {
		msg.Addr, msg.Subscribers = h.cfg.NodeAddr, h.Subscribers()
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		msg.Lag, _ = h.Lag(lctx)
		cancel()
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return
	}
	u := &transport.Update{Topics: []string{ClusterPath + "nodes/" + tagHex(h.node)}, Private: true, System: true, Type: typ, Data: string(data)}
	if err := h.Publish(ctx, u); err != nil && ctx.Err() == nil {
		h.pres.failed("publishing cluster updates failed", "type", typ, "err", err)
	}
}

// publishSnapshot sends this node's active subscriptions, in chunks, for a newcomer.
func (h *Hub) publishSnapshot(ctx context.Context) {
	const chunk = 500
	own := h.ownSubscriptions()
	for len(own) > 0 {
		n := min(chunk, len(own))
		h.publishControl(ctx, ctlSnapshot, own[:n])
		own = own[n:]
	}
}

// ownSubscriptions lists the subscriptions of this node's registered subscribers.
func (h *Hub) ownSubscriptions() []Subscription {
	var out []Subscription
	add := func(s *Subscriber) {
		for i, sel := range s.Selectors {
			out = append(out, newSubscription(sel, s.ID, s.payload(i)))
		}
	}
	h.eachSubscriber(add)
	return out
}

// expireDeadNodes drops the subscriptions of nodes not heard from for NodeTTL. The live node
// with the lowest tag publishes their departure events, so that watchers learn of them once.
func (h *Hub) expireDeadNodes(ctx context.Context) {
	now := time.Now()
	var gone []Subscription
	leader := true
	h.reg.mu.Lock()
	dead := map[uint32]bool{}
	for tag, at := range h.reg.seen {
		switch {
		case tag == h.node:
		case now.Sub(at) > h.cfg.NodeTTL:
			dead[tag] = true
			delete(h.reg.seen, tag)
			delete(h.reg.peers, tag)
		case tag < h.node:
			leader = false
		}
	}
	for id, s := range h.reg.subs {
		tag, ok := nodeOf(s.Subscriber)
		if !ok || tag == h.node {
			continue
		}
		if _, known := h.reg.seen[tag]; dead[tag] || !known {
			delete(h.reg.subs, id)
			gone = append(gone, s)
		}
	}
	h.reg.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	h.log.Info("dropped the subscriptions of unresponsive nodes", "subscriptions", len(gone), "announcing", leader)
	if !leader {
		return
	}
	for _, s := range gone {
		s.Active = false
		u, err := s.event()
		if err != nil {
			continue
		}
		if err := h.Publish(ctx, u); err != nil && ctx.Err() == nil {
			h.pres.failed("publishing departures for a dead node failed", "subscription", s.ID, "err", err)
		}
	}
}
