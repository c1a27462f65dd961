package hub

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/heraldhub/herald/topic"
	"github.com/heraldhub/herald/transport"
)

// Subscribers whose selectors are all exact are served by the dispatch loop through a hash of
// topics: a publish costs one lookup per topic. The others ("wild" subscribers: a "*" or a URI
// template among their selectors) are served by a second loop, the wild loop, which reads the
// same log behind the first one and never ahead of it. Matching templates may take long when a
// hostile client registers many of them; on its own goroutine it cannot delay the exact
// subscribers, and each subscriber still gets its updates in log order, as it is served by one
// loop only.

// cutLengths (read only) are the lengths at which the literal prefixes and suffixes of templates are
// indexed. A template is filed under its prefix and its suffix, each cut to the longest of
// these lengths that fits; a topic looks up its own prefix and suffix cut at the lengths in
// use. The steps are fine where real prefixes are (a scheme, a host and a path segment or two)
// and coarse beyond.
var cutLengths = [...]int{0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 56, 64, 72, 80, 96, 112, 128, 160, 192, 256, 384, 512, 1024, 2048}

// cutClass returns the index in cutLengths of the longest length that fits in n.
func cutClass(n int) uint8 {
	c := 0
	for i, l := range cutLengths {
		if l <= n {
			c = i
		}
	}
	return uint8(c)
}

// classPair names a bucket of the template index: the lengths (as indexes in cutLengths) at
// which its templates' prefixes and suffixes are cut.
type classPair struct{ pre, suf uint8 }

// cutKey is a template's prefix and suffix, cut to its bucket's lengths.
type cutKey struct{ pre, suf string }

// parallelCandidates is the number of (template, topic) pairs from which the wild loop spreads
// matching over the cores.
const parallelCandidates = 256

// tplEntry is one distinct template (or URL pattern) selector in use, shared by the subscribers
// that hold it.
type tplEntry struct {
	sel     *topic.Selector
	subs    map[*Subscriber]struct{}
	pair    classPair // its bucket
	key     cutKey    // its prefix and suffix, cut to the bucket's lengths
	matched uint64    // Seq of the last update it matched; wild loop only
	offered uint64    // Seq of the last update offered to its subscribers (a guard: candidates leaves matched entries out); wild loop only
}

// prefixIndex files distinct selectors under their literal prefix and suffix, cut to a few
// lengths, so that a key looks up only the selectors that may match it. Templates are filed by
// the literal text of the topics they match; URL patterns by the literal start and end of the
// resolved URLs they match (topic.Selector.PatternKey and PatternSuffix).
type prefixIndex struct {
	entries map[string]*tplEntry // by the selector's string
	// buckets files the entries by the lengths their prefix and suffix are cut to, then by
	// the cut prefix and suffix; pairs lists the buckets in use, which a lookup visits.
	buckets map[classPair]map[cutKey]map[*tplEntry]struct{}
	pairs   []classPair
}

func newPrefixIndex() prefixIndex {
	return prefixIndex{
		entries: make(map[string]*tplEntry),
		buckets: make(map[classPair]map[cutKey]map[*tplEntry]struct{}),
	}
}

// wildIndex finds the wild subscribers an update is for. It is guarded by Hub.wmu.
type wildIndex struct {
	shut  bool                                // Hub.Shutdown has begun: no new subscribers
	count int                                 // wild subscribers
	any   map[*Subscriber]struct{}            // subscribers with a "*" selector
	exact map[string]map[*Subscriber]struct{} // exact (and invalid) selectors of wild subscribers
	tpls  prefixIndex                         // URI templates, by the literal text of their topics
	pats  prefixIndex                         // URL patterns, by the literal start of their resolved URLs
}

func newWildIndex() wildIndex {
	return wildIndex{
		any:   make(map[*Subscriber]struct{}),
		exact: make(map[string]map[*Subscriber]struct{}),
		tpls:  newPrefixIndex(),
		pats:  newPrefixIndex(),
	}
}

// isWild reports whether a subscriber with these selectors is served by the wild loop.
func isWild(sels []*topic.Selector) bool {
	for _, sel := range sels {
		if k := sel.Kind(); k == topic.KindAny || k == topic.KindTemplate || k == topic.KindURLPattern {
			return true
		}
	}
	return false
}

// add files s under each of its selectors, replacing a selector by the equal one another
// subscriber already holds.
func (w *wildIndex) add(s *Subscriber) {
	w.count++
	for i, sel := range s.Selectors {
		switch sel.Kind() {
		case topic.KindAny:
			w.any[s] = struct{}{}
		case topic.KindTemplate:
			s.Selectors[i] = w.tpls.add(s, sel, sel.Prefix(), sel.Suffix())
		case topic.KindURLPattern:
			s.Selectors[i] = w.pats.add(s, sel, sel.PatternKey(), sel.PatternSuffix())
		default:
			addExact(w.exact, s, i)
		}
	}
}

// add files s under sel, whose literal prefix and suffix are pre and suf, and returns the
// selector to keep: the equal one already filed, if any.
func (x *prefixIndex) add(s *Subscriber, sel *topic.Selector, pre, suf string) *topic.Selector {
	e := x.entries[sel.Raw()]
	if e == nil {
		pair := classPair{pre: cutClass(len(pre)), suf: cutClass(len(suf))}
		key := cutKey{pre: pre[:cutLengths[pair.pre]], suf: suf[len(suf)-cutLengths[pair.suf]:]}
		e = &tplEntry{sel: sel, subs: make(map[*Subscriber]struct{}, 1), pair: pair, key: key}
		x.entries[sel.Raw()] = e
		b := x.buckets[e.pair]
		if b == nil {
			b = make(map[cutKey]map[*tplEntry]struct{})
			x.buckets[e.pair] = b
			x.pairs = append(x.pairs, e.pair)
		}
		set := b[e.key]
		if set == nil {
			set = make(map[*tplEntry]struct{})
			b[e.key] = set
		}
		set[e] = struct{}{}
	}
	e.subs[s] = struct{}{}
	return e.sel
}

// remove takes s out of the entry of sel; it reports whether s was there.
func (x *prefixIndex) remove(s *Subscriber, sel *topic.Selector) bool {
	e := x.entries[sel.Raw()]
	if e == nil {
		return false
	}
	if _, ok := e.subs[s]; !ok {
		return false
	}
	delete(e.subs, s)
	if len(e.subs) > 0 {
		return true
	}
	delete(x.entries, sel.Raw())
	b := x.buckets[e.pair]
	delete(b[e.key], e)
	if len(b[e.key]) == 0 {
		delete(b, e.key)
	}
	if len(b) == 0 {
		delete(x.buckets, e.pair)
		i := slices.Index(x.pairs, e.pair)
		x.pairs = slices.Delete(x.pairs, i, i+1)
	}
	return true
}

// remove takes s out of the index; it reports whether s was in it.
func (w *wildIndex) remove(s *Subscriber) bool {
	removed := false
	for _, sel := range s.Selectors {
		switch sel.Kind() {
		case topic.KindAny:
			if _, ok := w.any[s]; ok {
				delete(w.any, s)
				removed = true
			}
		case topic.KindTemplate:
			removed = w.tpls.remove(s, sel) || removed
		case topic.KindURLPattern:
			removed = w.pats.remove(s, sel) || removed
		default:
			removed = removeExact(w.exact, s, sel.Raw()) || removed
		}
	}
	if removed {
		w.count--
	}
	return removed
}

// each calls fn once for every subscriber of the index.
func (w *wildIndex) each(fn func(*Subscriber)) {
	seen := make(map[*Subscriber]struct{}, w.count)
	visit := func(s *Subscriber) {
		if _, ok := seen[s]; !ok {
			seen[s] = struct{}{}
			fn(s)
		}
	}
	for s := range w.any {
		visit(s)
	}
	for _, set := range w.exact {
		for s := range set {
			visit(s)
		}
	}
	for _, x := range []*prefixIndex{&w.tpls, &w.pats} {
		for _, e := range x.entries {
			for s := range e.subs {
				visit(s)
			}
		}
	}
}

// addExact files s under its i-th selector in idx, sharing the compiled selector with the
// subscribers already there.
func addExact(idx map[string]map[*Subscriber]struct{}, s *Subscriber, i int) {
	raw := s.Selectors[i].Raw()
	set := idx[raw]
	if set == nil {
		set = make(map[*Subscriber]struct{})
		idx[raw] = set
	} else if shared := sharedSelector(set, raw); shared != nil {
		s.Selectors[i] = shared
	}
	set[s] = struct{}{}
}

// removeExact takes s out of idx under raw; it reports whether s was there.
func removeExact(idx map[string]map[*Subscriber]struct{}, s *Subscriber, raw string) bool {
	set, ok := idx[raw]
	if !ok {
		return false
	}
	if _, in := set[s]; !in {
		return false
	}
	delete(set, s)
	if len(set) == 0 {
		delete(idx, raw)
	}
	return true
}

// candidate is a template or URL pattern that may match one of an update's topics.
type candidate struct {
	e     *tplEntry
	topic string
}

// candidates appends to dst the entries whose literal prefix and suffix key may start and end
// with: those filed under key's own prefix and suffix, cut at each pair of lengths in use, as
// candidates for topic (key is topic itself for templates, its resolved URL for patterns).
// Entries that already matched update seq (through another of its topics) are left out.
func (x *prefixIndex) candidates(dst []candidate, key, topic string, seq uint64) []candidate {
	for _, p := range x.pairs {
		pre, suf := cutLengths[p.pre], cutLengths[p.suf]
		if pre+suf > len(key) {
			continue
		}
		for e := range x.buckets[p][cutKey{pre: key[:pre], suf: key[len(key)-suf:]}] {
			if e.matched != seq {
				dst = append(dst, candidate{e: e, topic: topic})
			}
		}
	}
	return dst
}

// Bounds of the hand-off from the dispatch loop to the wild loop (see wildQueue).
const (
	maxWildBacklog      = 100_000
	maxWildBacklogBytes = 64 << 20
)

// wildQueue hands the updates the dispatch loop has gone past to the wild loop, in log order:
// the wild loop is never ahead of the dispatch loop, so the table of active subscriptions and
// LastEventID already include what a wild subscriber receives. It is bounded in updates and in
// bytes of data. When the wild loop falls that far behind (matching a flood of templates),
// the backlog is dropped and the wild subscribers that should have received it are closed as
// slow: they reconnect with Last-Event-ID and catch up from history, so nothing is lost
// without their knowing, and memory stays bounded.
type wildQueue struct {
	max, maxBytes int // the bounds: maxWildBacklog and maxWildBacklogBytes

	mu      sync.Mutex
	updates []*transport.Update
	bytes   int
	dropped uint64        // Seq of the last update dropped by an overflow not yet handled; 0 if none
	wake    chan struct{} // capacity 1: a token means "something to take"
}

// push appends updates (in log order) to the queue, or drops the backlog when it would exceed
// its bounds. It runs on the dispatch loop and never blocks on the wild loop.
func (q *wildQueue) push(updates []*transport.Update) {
	q.mu.Lock()
	for _, u := range updates {
		if len(q.updates) >= q.max || q.bytes+len(u.Data) > q.maxBytes {
			clear(q.updates)
			q.updates = q.updates[:0]
			q.bytes = 0
			q.dropped = u.Seq
			continue
		}
		q.updates = append(q.updates, u)
		q.bytes += len(u.Data)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns what the queue holds, and the Seq of the last update dropped since the last
// take (0 if none), emptying it; spare is a slice the queue may reuse.
func (q *wildQueue) take(spare []*transport.Update) (updates []*transport.Update, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	updates, dropped = q.updates, q.dropped
	clear(spare)
	if cap(spare) > 4096 {
		spare = nil // do not keep a burst's array
	}
	q.updates, q.bytes, q.dropped = spare[:0], 0, 0
	return updates, dropped
}

// handOff gives the wild loop the updates the dispatch loop has just dispatched, when there is
// a wild subscriber to serve: without one, nothing is kept (a wild subscriber registering later
// starts after what the dispatch loop has done; see register).
func (h *Hub) handOff(batch []*transport.Update) {
	if h.wildSubs.Load() == 0 {
		return
	}
	keep := batch[:0:0]
	for _, u := range batch {
		if !isControl(u) {
			keep = append(keep, u)
		}
	}
	if len(keep) > 0 {
		h.wq.push(keep)
	}
}

// runWild is the wild loop: it takes the updates the dispatch loop hands off and offers each
// to the wild subscribers.
func (h *Hub) runWild(ctx context.Context) {
	var updates []*transport.Update
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wq.wake:
		}
		var dropped uint64
		updates, dropped = h.wq.take(updates)
		if dropped > 0 {
			h.closeBehind(dropped)
		}
		for _, u := range updates {
			if ctx.Err() != nil {
				return
			}
			h.dispatchWild(ctx, u)
			h.wildDone.Store(u.Seq)
		}
	}
}

// closeBehind closes as slow the wild subscribers that registered before the update with Seq
// dropped, which the wild loop could not keep and they will not receive.
func (h *Hub) closeBehind(dropped uint64) {
	var behind []*Subscriber
	h.wmu.RLock()
	h.wild.each(func(s *Subscriber) {
		if s.since < dropped {
			behind = append(behind, s)
		}
	})
	h.wmu.RUnlock()
	h.log.Warn("template and * subscribers fell too far behind the log: closing them so that they reconnect and catch up from history",
		"subscribers", len(behind), "backlog", h.wq.max, "backlog_bytes", h.wq.maxBytes)
	for _, s := range behind {
		s.close(ErrSlow)
	}
}

// dispatchWild offers u to every wild subscriber it is for. It runs on the wild loop only.
func (h *Hub) dispatchWild(ctx context.Context, u *transport.Update) {
	start := time.Now()
	var ev *Event
	n := 0
	offer := func(s *Subscriber) {
		if ev == nil {
			ev = &Event{Update: u, Frame: Encode(u), Dispatched: time.Now()}
		}
		if h.offer(s, ev) {
			n++
		}
	}
	h.wmu.RLock()
	w := &h.wild
	for s := range w.any {
		offer(s)
	}
	for _, t := range u.Topics {
		for s := range w.exact[t] {
			offer(s)
		}
	}
	templates, patterns := len(w.tpls.entries) > 0, len(w.pats.entries) > 0
	h.wmu.RUnlock()
	if !templates && !patterns {
		h.countDelivered(u.Topics, n)
		return
	}
	// One topic at a time, so that the lock is held briefly and the candidates of an update
	// with many topics are never all in memory at once. Matching is done without the lock, so
	// that subscribers coming and going do not wait for it; an entry whose last subscriber
	// leaves meanwhile keeps its selector, and matching it is harmless.
	evaluated := 0
	cands := h.wildCands[:0]
	for _, t := range u.Topics {
		// A URL pattern is looked up by the topic resolved against the hub's URL, parsed
		// once per topic, outside the lock; a topic that is no URL reference matches none.
		key, resolved := "", false
		if patterns {
			key, resolved = h.topicKey(t)
		}
		h.wmu.RLock()
		cands = w.tpls.candidates(cands[:0], t, t, u.Seq)
		if resolved {
			cands = w.pats.candidates(cands, key, t, u.Seq)
		}
		h.wmu.RUnlock()
		if len(cands) == 0 {
			continue
		}
		evaluated += len(cands)
		if !h.match(ctx, u.Seq, cands) {
			break // shutting down
		}
		h.wmu.RLock()
		for _, c := range cands {
			if c.e.matched == u.Seq && c.e.offered != u.Seq {
				c.e.offered = u.Seq
				for s := range c.e.subs {
					offer(s)
				}
			}
		}
		h.wmu.RUnlock()
	}
	clear(cands)
	if cap(cands) > 4096 {
		cands = nil // do not keep a hostile burst's array
	}
	h.wildCands = cands[:0]
	h.countDelivered(u.Topics, n)
	if evaluated > 0 {
		h.cfg.Metrics.Matched(evaluated, time.Since(start))
	}
}

// topicKey returns the key of topic in the URL pattern index (see topic.Matcher.TopicKey),
// remembering the last one. It runs on the wild loop only.
func (h *Hub) topicKey(t string) (string, bool) {
	if m := &h.lastKey; m.set && m.topic == t {
		return m.key, m.ok
	}
	key, ok := h.m.TopicKey(t)
	h.lastKey.topic, h.lastKey.key, h.lastKey.ok, h.lastKey.set = t, key, ok, true
	return key, ok
}

// match sets e.matched = seq on the candidates' entries that match their topic, on several
// goroutines when there are many candidates. It gives up and returns false when ctx ends.
func (h *Hub) match(ctx context.Context, seq uint64, cands []candidate) bool {
	workers := runtime.GOMAXPROCS(0)
	if len(cands) < parallelCandidates || workers == 1 {
		for i, c := range cands {
			if i%checkEvery == checkEvery-1 && ctx.Err() != nil {
				return false
			}
			if c.e.matched != seq && h.m.Match(c.e.sel, c.topic) {
				c.e.matched = seq
			}
		}
		return true
	}
	// Each worker writes the results of its own slice of candidates (an entry appears once in
	// the candidates of a topic), marked afterwards on this goroutine.
	ok := make([]bool, len(cands))
	var wg sync.WaitGroup
	chunk := (len(cands) + workers - 1) / workers
	for lo := 0; lo < len(cands); lo += chunk {
		hi := min(lo+chunk, len(cands))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				if (i-lo)%checkEvery == checkEvery-1 && ctx.Err() != nil {
					return
				}
				ok[i] = h.m.Match(cands[i].e.sel, cands[i].topic)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return false
	}
	for i, c := range cands {
		if ok[i] {
			c.e.matched = seq
		}
	}
	return true
}

// checkEvery is how many candidates are matched between two looks at the context.
const checkEvery = 4096
