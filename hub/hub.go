package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/heraldhub/herald/metrics"
	"github.com/heraldhub/herald/sse"
	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// Defaults for Config's zero values.
const (
	DefaultQueueSize  = 1000
	DefaultQueueBytes = 16 << 20
	DefaultReadBatch  = 512
)

// Earliest is the Last-Event-ID value that asks for the whole retained history.
const Earliest = "earliest"

// Config is what a Hub needs. Transport and Matcher are required.
type Config struct {
	Transport transport.Transport
	Matcher   *topic.Matcher
	// QueueSize bounds the events queued for one subscriber; past it the subscriber is closed
	// with ErrSlow. Default DefaultQueueSize.
	QueueSize int
	// QueueBytes bounds the bytes of frames queued for one subscriber. Default DefaultQueueBytes.
	QueueBytes int
	// ReadBatch is how many updates the dispatch loop and history replay read at once.
	ReadBatch int
	// Subscriptions turns on subscription events (published when a subscription starts or
	// ends) and the table behind the subscriptions API.
	Subscriptions bool
	// SubscriptionEventsRate bounds how many subscription events per second new
	// subscriptions may write (one per selector), with bursts of SubscriptionEventsBurst; a
	// subscription that would wait longer than 5 s for its turn is refused with a BusyError.
	// Departures are not counted. Defaults DefaultSubscriptionEventsRate and
	// DefaultSubscriptionEventsBurst; a negative rate means no limit.
	SubscriptionEventsRate  float64
	SubscriptionEventsBurst int
	// Cluster turns on the hub-to-hub control updates that keep the table of active
	// subscriptions right across nodes sharing a transport (see cluster.go). It only matters
	// with Subscriptions.
	Cluster bool
	// NodeHeartbeat is how often a node says it is alive; NodeTTL how long after its last word
	// a node is taken for dead. Defaults DefaultNodeHeartbeat and DefaultNodeTTL.
	NodeHeartbeat time.Duration
	NodeTTL       time.Duration
	// NodeAddr is the address this node's heartbeats give, for the operator's dashboard.
	NodeAddr string
	// Metrics records transport errors; nil records nothing.
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Hub routes updates from the transport to subscribers. Create it with New, start Run, and
// stop it with Shutdown.
type Hub struct {
	cfg  Config
	log  *slog.Logger
	m    *topic.Matcher
	tr   transport.Transport
	reg  registry  // active subscriptions, from subscription events
	pres *presence // bound on the rate of subscription events (presence.go)
	node uint32    // this node's random tag, written in its subscribers' ids
	// helloSeen wakes the cluster loop when another node said hello (capacity 1).
	helloSeen chan struct{}
	start     uint64        // log head when the hub was created: Run dispatches what follows
	done      atomic.Uint64 // Seq of the last update dispatched by the dispatch loop
	wildDone  atomic.Uint64 // Seq of the last update the wild loop has offered (wild.go)
	wq        wildQueue     // updates handed from the dispatch loop to the wild loop
	wildSubs  atomic.Int64  // wild subscribers: the dispatch loop hands off updates only if some
	// wildCands is the wild loop's scratch list of candidate templates.
	wildCands []candidate
	// lastKey is the wild loop's memo of the last topic it resolved for the URL pattern index:
	// consecutive updates of one topic, the common case, resolve it once.
	lastKey struct {
		topic, key string
		ok, set    bool
	}
	// deliveries counts deliveries by topic while the dashboard watches (stats.go); nil
	// otherwise. Under watchMu: watchers counts the watches, and idleCounter is the counter of
	// the last watch, since idleSince, for a watch that starts soon after.
	deliveries  atomic.Pointer[deliveryCounter]
	watchMu     sync.Mutex
	watchers    int
	idleCounter *deliveryCounter
	idleSince   time.Time

	mu    sync.RWMutex
	exact map[string]map[*Subscriber]struct{} // topic → subscribers whose selectors are all exact
	count int                                 // subscribers in exact
	shut  bool

	// wmu guards wild, the subscribers with a "*" or a template selector, apart from mu so that
	// the dispatch loop never waits for the wild loop (see wild.go). No code holds both.
	wmu  sync.RWMutex
	wild wildIndex
}

// New checks cfg and returns a Hub. Call Run to start dispatching.
func New(cfg Config) (*Hub, error) {
	if cfg.Transport == nil {
		return nil, errors.New("hub: Config.Transport is required")
	}
	if cfg.Matcher == nil {
		return nil, errors.New("hub: Config.Matcher is required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = DefaultReadBatch
	}
	if cfg.SubscriptionEventsRate == 0 {
		cfg.SubscriptionEventsRate = DefaultSubscriptionEventsRate
	}
	if cfg.SubscriptionEventsBurst <= 0 {
		cfg.SubscriptionEventsBurst = DefaultSubscriptionEventsBurst
	}
	if cfg.NodeHeartbeat <= 0 {
		cfg.NodeHeartbeat = DefaultNodeHeartbeat
	}
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = 3 * cfg.NodeHeartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Subscribers may register before Run starts: take the log's position now, so that what is
	// appended meanwhile is dispatched rather than skipped.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start, err := cfg.Transport.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("hub: read the log head: %w", err)
	}
	return &Hub{
		start:     start,
		cfg:       cfg,
		log:       cfg.Logger,
		m:         cfg.Matcher,
		tr:        cfg.Transport,
		reg:       registry{subs: make(map[string]Subscription), seen: make(map[uint32]time.Time), peers: make(map[uint32]nodeStatus)},
		pres:      newPresence(cfg),
		node:      newNodeTag(),
		helloSeen: make(chan struct{}, 1),
		wq:        wildQueue{max: maxWildBacklog, maxBytes: maxWildBacklogBytes, wake: make(chan struct{}, 1)},
		exact:     make(map[string]map[*Subscriber]struct{}),
		wild:      newWildIndex(),
	}, nil
}

// Matcher returns the hub's selector matcher, so callers compile selectors into its cache.
func (h *Hub) Matcher() *topic.Matcher { return h.m }

// Publish appends u to the log, giving it a new urn:uuid ID when it has none. It returns once
// the transport has stored it; delivery to subscribers follows through Run.
func (h *Hub) Publish(ctx context.Context, u *transport.Update) error {
	if u.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("hub: new update id: %w", err)
		}
		u.ID = "urn:uuid:" + id.String()
	}
	if err := h.tr.Append(ctx, u); err != nil {
		if !errors.Is(err, transport.ErrDuplicateID) && ctx.Err() == nil {
			h.cfg.Metrics.TransportError("append")
		}
		return fmt.Errorf("hub: publish %q: %w", u.ID, err)
	}
	return nil
}

// Run tails the transport from where it was when New returned and dispatches every update, in
// log order, until ctx ends or the transport closes. Read errors are logged and retried with
// backoff. Call it once. It also runs the wild loop (wild.go), which serves the subscribers
// with "*" or template selectors, and returns once that has stopped too.
func (h *Hub) Run(ctx context.Context) error {
	if h.cfg.Cluster {
		clusterCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); h.runCluster(clusterCtx) }()
		defer func() { stop(); <-done }()
	}
	wildCtx, stopWild := context.WithCancel(ctx)
	wildDone := make(chan struct{})
	go func() { defer close(wildDone); h.runWild(wildCtx) }()
	defer func() { stopWild(); <-wildDone }()
	after := h.start
	backoff := 10 * time.Millisecond
	for {
		batch, err := h.tr.Read(ctx, after, h.cfg.ReadBatch, true)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, transport.ErrClosed):
			return nil
		case err != nil:
			h.cfg.Metrics.TransportError("read")
			h.log.Warn("reading the transport failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		for _, u := range batch {
			if ctx.Err() != nil {
				return nil
			}
			h.dispatch(u)
			after = u.Seq
		}
		h.done.Store(after)
		h.handOff(batch)
	}
}

// Lag returns how many updates the transport holds that this hub has not dispatched yet.
func (h *Hub) Lag(ctx context.Context) (uint64, error) {
	head, err := h.tr.Head(ctx)
	if err != nil {
		return 0, err
	}
	done := max(h.done.Load(), h.start)
	if h.wildSubs.Load() > 0 {
		done = min(done, max(h.wildDone.Load(), h.start))
	}
	if head < done {
		return 0, nil
	}
	return head - done, nil
}

// Ready reports whether the transport answers.
func (h *Hub) Ready(ctx context.Context) error {
	_, err := h.tr.Head(ctx)
	return err
}

// SelectorKinds counts the selectors of registered subscribers by kind, for metrics.
func (h *Hub) SelectorKinds() map[string]float64 {
	out := map[string]float64{}
	h.eachSubscriber(func(s *Subscriber) {
		for _, sel := range s.Selectors {
			out[sel.Kind().String()]++
		}
	})
	return out
}

// eachSubscriber calls fn once for every registered subscriber, holding the lock of the index
// that has it: fn must not call back into the hub.
func (h *Hub) eachSubscriber(fn func(*Subscriber)) {
	h.wmu.RLock()
	h.wild.each(fn)
	h.wmu.RUnlock()
	h.mu.RLock()
	defer h.mu.RUnlock()
	eachExact(h.exact, fn)
}

// eachExact calls fn once for every subscriber of idx.
func eachExact(idx map[string]map[*Subscriber]struct{}, fn func(*Subscriber)) {
	seen := make(map[*Subscriber]struct{})
	for _, set := range idx {
		for s := range set {
			if _, ok := seen[s]; !ok {
				seen[s] = struct{}{}
				fn(s)
			}
		}
	}
}

// Encode returns the SSE frame of u.
func Encode(u *transport.Update) []byte {
	e := sse.Event{ID: u.ID, Type: u.Type, Retry: u.Retry, Data: u.Data}
	return sse.AppendEvent(make([]byte, 0, sse.EncodedLen(e)), e)
}

// dispatch offers u to every subscriber that may receive it. It runs on the Run goroutine only.
func (h *Hub) dispatch(u *transport.Update) {
	if isControl(u) {
		h.applyControl(u) // hub-to-hub: never delivered to subscribers
		return
	}
	// Record it first, so that whoever has received it also finds it in LastEventID and the
	// table of active subscriptions.
	h.reg.apply(u)
	var ev *Event
	n := 0
	h.mu.RLock()
	for _, t := range u.Topics {
		for s := range h.exact[t] {
			if ev == nil {
				ev = &Event{Update: u, Frame: Encode(u), Dispatched: time.Now()}
			}
			if h.offer(s, ev) {
				n++
			}
		}
	}
	h.mu.RUnlock()
	h.countDelivered(u.Topics, n)
}

// offer enqueues ev for s, which asked for one of its topics, when s may receive it, at most
// once per update, and reports whether it did. It runs on the loop that serves s.
func (h *Hub) offer(s *Subscriber, ev *Event) bool {
	if s.lastSeq == ev.Update.Seq {
		return false // already offered through another of the update's topics
	}
	s.lastSeq = ev.Update.Seq
	if s.MayReceive(h.m, ev.Update) {
		s.enqueue(ev)
		return true
	}
	return false
}

// LastEventID returns the ID of the last dispatched update, or Earliest when none was.
func (h *Hub) LastEventID() string {
	h.reg.mu.RLock()
	defer h.reg.mu.RUnlock()
	if h.reg.lastID == "" {
		return Earliest
	}
	return h.reg.lastID
}

// SubscribeOptions describe a new subscriber.
type SubscribeOptions struct {
	Selectors []*topic.Selector
	Allowed   []*topic.Selector
	Payload   []byte
	// Payloads, when set, holds one payload per selector (a draft-08 token's are per
	// subscription); it replaces Payload in their subscription events.
	Payloads []json.RawMessage
	// Replay registers the subscriber in replay mode: the owner must call Replay before
	// draining the queue, so that live updates racing the replay are neither lost nor doubled.
	Replay bool
	// Notify, when set, is called instead of signalling the Ready channel: when the queue
	// goes from empty to non-empty, and when the hub closes the subscriber. It runs on the
	// hub's goroutines and must not block. It lets one pool of writers serve many
	// subscribers instead of one goroutine each. Such a subscriber has no Ready or Done
	// channel: an interface rather than a func, and no channels, keep an idle subscriber to
	// the few allocations that tens of thousands of them can afford.
	Notify Notifier
}

// Notifier is told when a subscriber's queue or state changes: see SubscribeOptions.Notify.
type Notifier interface {
	Notify()
}

// Subscribe registers a subscriber for live updates and, with Config.Subscriptions, announces
// its subscriptions. It fails with ErrShutdown once Shutdown has begun, and with a BusyError
// when subscription events are at their rate limit. Callers must Unsubscribe it when the
// connection ends.
func (h *Hub) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscriber, error) {
	if h.cfg.Subscriptions {
		if err := h.admit(ctx, len(opts.Selectors)); err != nil {
			return nil, err
		}
	}
	s := &Subscriber{
		ID:            newSubscriberID(h.node),
		Selectors:     opts.Selectors,
		Allowed:       opts.Allowed,
		Payload:       opts.Payload,
		Payloads:      opts.Payloads,
		maxQueue:      h.cfg.QueueSize,
		maxQueueBytes: h.cfg.QueueBytes,
		replaying:     opts.Replay,
		notify:        opts.Notify,
	}
	if s.notify == nil {
		s.ready = make(chan struct{}, 1)
		s.done = make(chan struct{})
	}
	if err := h.register(s); err != nil {
		return nil, err
	}
	if h.cfg.Subscriptions {
		h.announce(ctx, s, true)
	}
	return s, nil
}

// register adds s to the index of exact topics, or to the wild index when it has a "*" or a
// template selector.
func (h *Hub) register(s *Subscriber) error {
	if s.wild = isWild(s.Selectors); s.wild {
		h.wmu.Lock()
		defer h.wmu.Unlock()
		if h.wild.shut {
			return ErrShutdown
		}
		// The wild loop may lag: what the dispatch loop had gone past when s registered was
		// published before it subscribed, and is not for it (its replay, if any, reads it
		// from history). Counted first, so that the dispatch loop hands off what follows.
		h.wildSubs.Add(1)
		s.since = h.done.Load()
		s.mu.Lock()
		s.replayed = max(s.replayed, s.since)
		s.mu.Unlock()
		h.wild.add(s)
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shut {
		return ErrShutdown
	}
	for i := range s.Selectors {
		addExact(h.exact, s, i)
	}
	h.count++
	return nil
}

// sharedSelector returns the selector raw of one of the subscribers in set, all of
// which have it. Subscribers of a topic then hold one compiled selector between them rather
// than one each: with tens of thousands of idle subscribers, that is a good part of what each
// one costs. Its lifetime stays that of the subscribers, unlike a cache's.
func sharedSelector(set map[*Subscriber]struct{}, raw string) *topic.Selector {
	for other := range set {
		for _, sel := range other.Selectors {
			// A URL pattern or template with the same text matches other topics.
			if k := sel.Kind(); sel.Raw() == raw && (k == topic.KindExact || k == topic.KindInvalid) {
				return sel
			}
		}
		return nil
	}
	return nil
}

// Unsubscribe removes s from the hub. It is safe to call more than once.
func (h *Hub) Unsubscribe(s *Subscriber) {
	removed := false
	if s.wild {
		h.wmu.Lock()
		if removed = h.wild.remove(s); removed {
			h.wildSubs.Add(-1)
		}
		h.wmu.Unlock()
	} else {
		h.mu.Lock()
		for _, sel := range s.Selectors {
			removed = removeExact(h.exact, s, sel.Raw()) || removed
		}
		if removed {
			h.count--
		}
		h.mu.Unlock()
	}
	s.close(ErrShutdown)
	if removed && h.cfg.Subscriptions {
		ctx, cancel := context.WithTimeout(context.Background(), announceTimeout)
		defer cancel()
		h.announce(ctx, s, false)
	}
}

// Subscribers returns the number of registered subscribers.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	n := h.count
	h.mu.RUnlock()
	h.wmu.RLock()
	defer h.wmu.RUnlock()
	return n + h.wild.count
}

// Shutdown refuses new subscribers and closes every registered one with ErrShutdown; their
// owners flush what is queued and end their streams.
func (h *Hub) Shutdown() {
	h.wmu.Lock()
	h.wild.shut = true
	var subs []*Subscriber
	h.wild.each(func(s *Subscriber) { subs = append(subs, s) })
	h.wmu.Unlock()
	h.mu.Lock()
	h.shut = true
	eachExact(h.exact, func(s *Subscriber) { subs = append(subs, s) })
	h.mu.Unlock()
	for _, s := range subs {
		s.close(ErrShutdown)
	}
}

// Resolve turns a requested Last-Event-ID into the Seq to replay after and the value of the
// Last-Event-ID response header. Earliest replays everything retained. A retained ID replays
// what follows it. An unknown ID (never seen, or dropped by retention) also replays everything
// retained, and the header says Earliest so the client knows updates may have been missed.
func (h *Hub) Resolve(ctx context.Context, lastEventID string) (after uint64, header string, err error) {
	if lastEventID == Earliest {
		return 0, Earliest, nil
	}
	seq, err := h.tr.Lookup(ctx, lastEventID)
	switch {
	case err == nil:
		return seq, lastEventID, nil
	case errors.Is(err, transport.ErrUnknownID):
		return 0, Earliest, nil
	default:
		return 0, "", fmt.Errorf("hub: look up last event id: %w", err)
	}
}

// Replay sends s the retained updates after the given Seq that it may receive, in log order,
// by calling write with batches of events, then takes s out of replay mode. Live updates that
// were queued meanwhile and already replayed are removed from the queue, so the owner then
// drains only what is new: no gap and no duplicate. Memory stays bounded: history is read in
// pages of Config.ReadBatch.
func (h *Hub) Replay(ctx context.Context, s *Subscriber, after uint64, write func([]*Event) error) error {
	h.cfg.Metrics.ReplayStarted()
	var batch []*Event
	for {
		updates, err := h.tr.Read(ctx, after, h.cfg.ReadBatch, false)
		if err != nil {
			return fmt.Errorf("hub: replay history: %w", err)
		}
		if len(updates) == 0 {
			s.mu.Lock()
			if s.overflowed {
				// Live updates were dropped while we replayed: the log has them, read on.
				s.overflowed = false
				s.mu.Unlock()
				continue
			}
			s.replaying = false
			s.replayed = after
			pending := s.dropUpToLocked(after)
			s.mu.Unlock()
			if pending {
				s.signal()
			}
			return nil
		}
		batch = batch[:0]
		for _, u := range updates {
			if !isControl(u) && s.CanReceive(h.m, u) {
				batch = append(batch, &Event{Update: u, Frame: Encode(u)})
			}
		}
		after = updates[len(updates)-1].Seq
		if len(batch) > 0 {
			if err := write(batch); err != nil {
				return err
			}
			h.cfg.Metrics.Replayed(len(batch))
		}
		if err := s.Err(); err != nil {
			return err
		}
	}
}

// dropUpToLocked removes queued events with Seq ≤ seq and reports whether some remain. s.mu
// must be held.
func (s *Subscriber) dropUpToLocked(seq uint64) bool {
	keep := s.queue[:0]
	bytes := 0
	for _, e := range s.queue {
		if e.Update.Seq > seq {
			keep = append(keep, e)
			bytes += len(e.Frame)
		}
	}
	clear(s.queue[len(keep):])
	s.queue = keep
	s.queueBytes = bytes
	return len(keep) > 0
}
