// Package floorhub is the "floor" of the performance table: the least a Mercure-shaped hub
// can do, to measure what the machine and the load tool allow rather than what a hub costs.
//
// It is an exact-topic broadcaster speaking the same wire format as a Mercure hub, and
// nothing more: no authorisation (tokens are ignored), no history (Last-Event-ID is ignored),
// no selectors (a topic parameter matches that exact topic only), no private updates, no
// heartbeats, no stream lifetime. One goroutine per connection (net/http's handler):
//
//   - POST /.well-known/mercure with a form (topic, repeatable; data; id; type) appends the
//     encoded event to the queue of every subscriber of one of its topics, under one lock,
//     and answers 200 with the id ("urn:floor:N" when none was given);
//   - GET /.well-known/mercure?topic=T[&topic=…] answers an event stream that starts with a
//     ":" comment line, then the events, each written and flushed by the handler goroutine.
//
// A subscriber whose queue exceeds MaxQueue events is disconnected, as a real hub does with a
// slow client; since there is no history, what it missed is lost, and a bench reports it.
//
// Run it with `herald bench floorhub --listen 127.0.0.1:3001`.
package floorhub

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/heraldhub/herald/sse"
)

// Path is the only endpoint.
const Path = "/.well-known/mercure"

// MaxQueue bounds the events queued for one subscriber.
const MaxQueue = 10_000

// maxBody bounds a publish request's body.
const maxBody = 1 << 20

// Hub is the broadcaster; it is an http.Handler. Create it with New.
type Hub struct {
	mu     sync.Mutex
	topics map[string]map[*subscriber]struct{}
	count  int
	closed bool
	done   chan struct{}
	seq    atomic.Uint64
}

// New returns a Hub with no subscriber.
func New() *Hub {
	return &Hub{topics: make(map[string]map[*subscriber]struct{}), done: make(chan struct{})}
}

// Subscribers returns the number of open streams.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Close ends every stream (after writing what was queued) and refuses new ones.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

// subscriber is one stream's queue.
type subscriber struct {
	mu      sync.Mutex
	queue   [][]byte
	dropped bool
	ready   chan struct{} // one pending signal at most
}

func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.publish(w, r)
	case http.MethodGet:
		h.subscribe(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (h *Hub) publish(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form body", http.StatusBadRequest)
		return
	}
	topics := r.PostForm["topic"]
	if len(topics) == 0 {
		http.Error(w, `Missing "topic" parameter`, http.StatusBadRequest)
		return
	}
	id := r.PostForm.Get("id")
	if id == "" {
		id = "urn:floor:" + strconv.FormatUint(h.seq.Add(1), 10)
	}
	ev := sse.Event{ID: id, Type: r.PostForm.Get("type"), Data: r.PostForm.Get("data")}
	frame := sse.AppendEvent(make([]byte, 0, sse.EncodedLen(ev)), ev)

	h.mu.Lock()
	var seen map[*subscriber]struct{} // only needed when several topics may share a subscriber
	if len(topics) > 1 {
		seen = make(map[*subscriber]struct{})
	}
	for _, t := range topics {
		for s := range h.topics[t] {
			if seen != nil {
				if _, ok := seen[s]; ok {
					continue
				}
				seen[s] = struct{}{}
			}
			s.push(frame)
		}
	}
	h.mu.Unlock()

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, id)
}

// push queues a frame, or marks the subscriber dropped when its queue is full.
func (s *subscriber) push(frame []byte) {
	s.mu.Lock()
	if len(s.queue) >= MaxQueue {
		s.dropped = true
	} else if !s.dropped {
		s.queue = append(s.queue, frame)
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

func (h *Hub) subscribe(w http.ResponseWriter, r *http.Request) {
	topics := r.URL.Query()["topic"]
	if len(topics) == 0 {
		http.Error(w, `Missing "topic" parameter`, http.StatusBadRequest)
		return
	}
	s := &subscriber{ready: make(chan struct{}, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	for _, t := range topics {
		set := h.topics[t]
		if set == nil {
			set = make(map[*subscriber]struct{})
			h.topics[t] = set
		}
		set[s] = struct{}{}
	}
	h.count++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		for _, t := range topics {
			if set := h.topics[t]; set != nil {
				delete(set, s)
				if len(set) == 0 {
					delete(h.topics, t)
				}
			}
		}
		h.count--
		h.mu.Unlock()
	}()

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	if _, err := w.Write([]byte(sse.Comment)); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	var batch [][]byte
	for {
		select {
		case <-s.ready:
		case <-r.Context().Done():
			return
		case <-h.done: // write what is queued, then end
			h.flushQueue(w, rc, s, &batch)
			return
		}
		if !h.flushQueue(w, rc, s, &batch) {
			return
		}
	}
}

// flushQueue writes everything queued for s and flushes once. It returns false when the
// stream must end: a write failed, or s was dropped for being too slow.
func (h *Hub) flushQueue(w http.ResponseWriter, rc *http.ResponseController, s *subscriber, batch *[][]byte) bool {
	s.mu.Lock()
	frames, dropped := s.queue, s.dropped
	s.queue = (*batch)[:0]
	s.mu.Unlock()
	for _, f := range frames {
		if _, err := w.Write(f); err != nil {
			return false
		}
	}
	clear(frames)
	*batch = frames
	if len(frames) > 0 && rc.Flush() != nil {
		return false
	}
	return !dropped
}
