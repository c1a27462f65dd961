package hub

import (
	"cmp"
	"container/heap"
	"slices"
	"sync"
	"time"
)

// What the operator's dashboard asks the hub. Everything here is computed when asked, about
// once a second while someone watches, and none of it costs the dispatch loops anything while
// nobody does: the deliveries by topic are counted only between WatchDeliveries and its stop.

// TopicCount is a topic or selector with a count: its subscribers, or the deliveries of
// updates whose canonical topic it is.
type TopicCount struct {
	Topic string `json:"topic"`
	Count uint64 `json:"count"`
}

// TopSubscribed returns the n selectors with the most subscribers, most first: exact topics
// from the index of exact subscribers and of wild ones, templates, URL patterns and "*" from
// the wild index (a template and a URL pattern of the same text are counted together).
// Ties are ordered by topic.
func (h *Hub) TopSubscribed(n int) []TopicCount {
	counts := map[string]uint64{}
	h.mu.RLock()
	for t, set := range h.exact {
		counts[t] += uint64(len(set))
	}
	h.mu.RUnlock()
	h.wmu.RLock()
	for t, set := range h.wild.exact {
		counts[t] += uint64(len(set))
	}
	for raw, e := range h.wild.tpls.entries {
		counts[raw] += uint64(len(e.subs))
	}
	for raw, e := range h.wild.pats.entries {
		counts[raw] += uint64(len(e.subs))
	}
	if len(h.wild.any) > 0 {
		counts["*"] += uint64(len(h.wild.any))
	}
	h.wmu.RUnlock()
	return topN(counts, n)
}

// topN returns the n largest counts, most first, ties by topic.
func topN(counts map[string]uint64, n int) []TopicCount {
	out := make([]TopicCount, 0, len(counts))
	for t, c := range counts {
		if c > 0 {
			out = append(out, TopicCount{Topic: t, Count: c})
		}
	}
	slices.SortFunc(out, func(a, b TopicCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Topic, b.Topic)
	})
	return out[:min(n, len(out))]
}

// QueueFill returns how many subscribers have more than half of their queue (QueueSize
// events) taken, and the queue size. It visits every subscriber: call it when asked only.
func (h *Hub) QueueFill() (aboveHalf, queueSize int) {
	h.eachSubscriber(func(s *Subscriber) {
		s.mu.Lock()
		if 2*len(s.queue) > s.maxQueue {
			aboveHalf++
		}
		s.mu.Unlock()
	})
	return aboveHalf, h.cfg.QueueSize
}

// Delivery counting by topic, while watched. The last minute is kept as deliveryWindows
// windows of deliveryWindow each, every one a bounded summary of at most deliveryTopics topics
// (the Space-Saving algorithm: a topic not yet counted replaces the least counted one, whose
// count it inherits, so that the counts of the busiest topics stay exact or a slight
// overestimate, whatever the number of distinct topics).
const (
	deliveryWindow  = 5 * time.Second
	deliveryWindows = 12
	deliveryTopics  = 512
)

// deliveryCounter counts deliveries by topic over the last minute, in bounded memory.
type deliveryCounter struct {
	mu      sync.Mutex
	windows [deliveryWindows]*topicSummary
	cur     int       // index of the current window
	curFrom time.Time // when the current window began
	started time.Time
	now     func() time.Time
}

func newDeliveryCounter(now func() time.Time) *deliveryCounter {
	c := &deliveryCounter{now: now, started: now()}
	c.curFrom = c.started
	for i := range c.windows {
		c.windows[i] = newTopicSummary(deliveryTopics)
	}
	return c
}

// rotateLocked moves to the window of now, emptying the windows it passes.
func (c *deliveryCounter) rotateLocked(now time.Time) {
	for steps := 0; now.Sub(c.curFrom) >= deliveryWindow; steps++ {
		c.curFrom = c.curFrom.Add(deliveryWindow)
		c.cur = (c.cur + 1) % deliveryWindows
		c.windows[c.cur].reset()
		if steps == deliveryWindows { // a long silence: every window is empty now
			c.curFrom = now
			break
		}
	}
}

// add counts n deliveries of an update whose canonical topic is t.
func (c *deliveryCounter) add(t string, n int) {
	c.mu.Lock()
	c.rotateLocked(c.now())
	c.windows[c.cur].add(t, uint64(n))
	c.mu.Unlock()
}

// top returns the n busiest topics of the windows kept, and how long they cover.
func (c *deliveryCounter) top(n int) ([]TopicCount, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.rotateLocked(now)
	sum := map[string]uint64{}
	for _, w := range c.windows {
		for _, e := range w.items {
			sum[e.topic] += e.count
		}
	}
	span := min(now.Sub(c.started), deliveryWindows*deliveryWindow)
	return topN(sum, n), span
}

// topicSummary is a Space-Saving summary: at most max topics with their counts, in a min-heap
// by count so that the least counted is found at once.
type topicSummary struct {
	max   int
	items []*summaryItem
	index map[string]*summaryItem
}

type summaryItem struct {
	topic string
	count uint64
	pos   int
}

func newTopicSummary(max int) *topicSummary {
	return &topicSummary{max: max, index: map[string]*summaryItem{}}
}

func (s *topicSummary) reset() {
	clear(s.items)
	s.items = s.items[:0]
	clear(s.index)
}

func (s *topicSummary) add(t string, n uint64) {
	if e := s.index[t]; e != nil {
		e.count += n
		heap.Fix(s, e.pos)
		return
	}
	if len(s.items) < s.max {
		e := &summaryItem{topic: t, count: n}
		heap.Push(s, e)
		s.index[t] = e
		return
	}
	e := s.items[0] // the least counted gives its place, and its count, to t
	delete(s.index, e.topic)
	e.topic = t
	e.count += n
	s.index[t] = e
	heap.Fix(s, 0)
}

// heap.Interface, by count.
func (s *topicSummary) Len() int           { return len(s.items) }
func (s *topicSummary) Less(i, j int) bool { return s.items[i].count < s.items[j].count }
func (s *topicSummary) Swap(i, j int) {
	s.items[i], s.items[j] = s.items[j], s.items[i]
	s.items[i].pos, s.items[j].pos = i, j
}
func (s *topicSummary) Push(x any) {
	e := x.(*summaryItem)
	e.pos = len(s.items)
	s.items = append(s.items, e)
}
func (s *topicSummary) Pop() any {
	e := s.items[len(s.items)-1]
	s.items[len(s.items)-1] = nil
	s.items = s.items[:len(s.items)-1]
	return e
}

// watchGrace is how long the counts of a watch that ended are kept for the next one: a
// dashboard whose stream the hub ended (write_timeout, token expiry) reconnects within a
// second, and finds the minute it had.
const watchGrace = 10 * time.Second

// WatchDeliveries starts counting deliveries by topic, for TopDelivered, until stop is
// called. Watches nest: counting stops when the last one stops; a watch that starts within
// watchGrace of that takes the counts over (what was delivered in between is not counted),
// later ones start afresh.
func (h *Hub) WatchDeliveries() (stop func()) {
	h.watchMu.Lock()
	h.watchers++
	if h.watchers == 1 {
		c := h.idleCounter
		if c == nil || time.Since(h.idleSince) > watchGrace {
			c = newDeliveryCounter(time.Now)
		}
		h.idleCounter = nil
		h.deliveries.Store(c)
	}
	h.watchMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.watchMu.Lock()
			h.watchers--
			if h.watchers == 0 {
				h.idleCounter, h.idleSince = h.deliveries.Load(), time.Now()
				h.deliveries.Store(nil)
			}
			h.watchMu.Unlock()
		})
	}
}

// TopDelivered returns the n topics with the most deliveries (events queued for subscribers)
// in the last minute, counted by the updates' canonical (first) topic, and the time they
// cover: since the first WatchDeliveries, up to a minute. Nil while nobody watches.
func (h *Hub) TopDelivered(n int) ([]TopicCount, time.Duration) {
	c := h.deliveries.Load()
	if c == nil {
		return nil, 0
	}
	return c.top(n)
}

// countDelivered records n deliveries of u's canonical topic when someone watches: a single
// atomic load otherwise.
func (h *Hub) countDelivered(topics []string, n int) {
	if n == 0 || len(topics) == 0 {
		return
	}
	if c := h.deliveries.Load(); c != nil {
		c.add(topics[0], n)
	}
}

// NodeInfo is what the dashboard shows of a node of the cluster: from its last heartbeat, or,
// for this node, as it is now.
type NodeInfo struct {
	Tag         string `json:"tag"`
	Addr        string `json:"addr,omitempty"`
	Subscribers int    `json:"subscribers"`
	Lag         uint64 `json:"lag"`
	// SeenSecondsAgo is how long ago its last heartbeat arrived; zero for this node.
	SeenSecondsAgo float64 `json:"seen_seconds_ago"`
	Self           bool    `json:"self,omitempty"`
}

// nodeStatus is what a heartbeat said.
type nodeStatus struct {
	addr        string
	subscribers int
	lag         uint64
}

// Nodes returns the nodes of the cluster, this one first (with selfLag, as Lag said), then
// the others by tag, as their heartbeats describe them. Without a shared transport, the list
// holds this node only.
func (h *Hub) Nodes(selfLag uint64) []NodeInfo {
	out := []NodeInfo{{Tag: tagHex(h.node), Addr: h.cfg.NodeAddr, Subscribers: h.Subscribers(), Lag: selfLag, Self: true}}
	now := time.Now()
	var others []NodeInfo
	h.reg.mu.RLock()
	for tag, at := range h.reg.seen {
		if tag == h.node {
			continue
		}
		st := h.reg.peers[tag]
		others = append(others, NodeInfo{Tag: tagHex(tag), Addr: st.addr, Subscribers: st.subscribers, Lag: st.lag, SeenSecondsAgo: now.Sub(at).Seconds()})
	}
	h.reg.mu.RUnlock()
	slices.SortFunc(others, func(a, b NodeInfo) int { return cmp.Compare(a.Tag, b.Tag) })
	return append(out, others...)
}

// Tag returns this node's tag as shown in Nodes, and in its subscribers' ids.
func (h *Hub) Tag() string { return tagHex(h.node) }
