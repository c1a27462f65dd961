package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/client"
)

// Subscriber group modes.
const (
	modeFanout = "fanout" // check and time every event
	modeIdle   = "idle"   // hold the connection, count events
)

// groupSpec is one share of a run's subscribers: subscriber i (First ≤ i < First+Count)
// listens to Topics[i mod len(Topics)]. It travels to worker processes as JSON.
type groupSpec struct {
	Mode           string        `json:"mode"`
	Hub            string        `json:"hub"`
	Hubs           []string      `json:"hubs,omitempty"` // subscribers spread over these when set
	Token          string        `json:"token,omitempty"`
	First          int           `json:"first"`
	Count          int           `json:"count"`
	Topics         []string      `json:"topics"`
	Plan           plan          `json:"plan"`
	Concurrency    int           `json:"concurrency"`
	ReconnectDelay time.Duration `json:"reconnect_delay"`
	Insecure       bool          `json:"insecure,omitempty"`
	HTTP2          bool          `json:"http2,omitempty"`
	Streams        int           `json:"streams,omitempty"` // subscribers per HTTP/2 connection
	Resume         bool          `json:"resume,omitempty"`  // resume TLS sessions from tickets
	Dialect        string        `json:"dialect,omitempty"` // Options.Dialect

	// Selectors, when set, replaces Topics: subscriber i subscribes to all the selectors of
	// Selectors[i mod len(Selectors)] at once, and is checked as a subscriber of topic i mod
	// len(Selectors) of the Plan.
	Selectors [][]string `json:"selectors,omitempty"`
	// Split, when positive, times apart (groupResult.Latency2) the deliveries of the updates
	// from that index on, publisher p's j-th update having index p + j×Plan.Publishers.
	Split int64 `json:"split,omitempty"`
}

// readyInfo is how the opening of a group's subscribers went.
type readyInfo struct {
	Connected   int     `json:"connected"`
	Failed      int     `json:"failed"` // stopped before connecting: refused by the hub
	FirstError  string  `json:"first_error,omitempty"`
	OpenSeconds float64 `json:"open_seconds"` // from the first request to the last connection
}

// groupResult is what a group's subscribers saw, once stopped.
type groupResult struct {
	Check      Check  `json:"check"`
	Latency    []byte `json:"latency,omitempty"` // encoded histogram, microseconds
	Reconnects int64  `json:"reconnects"`
	Events     int64  `json:"events"`     // every event received (idle mode)
	LastAt     int64  `json:"last_at"`    // unix nanos of the latest new delivery
	StillOpen  int    `json:"still_open"` // subscribers still on their first connection
	Stopped    int    `json:"stopped"`    // subscriptions that ended with an error
	FirstError string `json:"first_error,omitempty"`

	// Latency2 is the encoded histogram of the updates from groupSpec.Split on.
	Latency2 []byte `json:"latency2,omitempty"`
}

// group is a share of subscribers, in this process or in a worker process.
type group interface {
	// open starts the subscribers and returns once each is connected or refused, or ctx ends.
	open(ctx context.Context) (readyInfo, error)
	// progress returns the new deliveries and the connections so far.
	progress() (unique, connected int64)
	// stop ends the subscribers and accounts for them, given what each publisher published.
	stop(published []int64) (groupResult, error)
	// close releases everything; it may be called after stop, and more than once.
	close()
}

// localGroup runs its subscribers in this process.
type localGroup struct {
	spec   groupSpec
	conns  *connPool
	ctx    context.Context
	cancel context.CancelFunc
	rec    *recorder
	rec2   *recorder // updates from spec.Split on

	subs      []*benchSub
	unique    atomic.Int64
	connected atomic.Int64
	stopOnce  sync.Once
	result    groupResult
}

// benchSub is one subscriber; its fields are owned by its subscription's goroutine until
// the subscription is closed.
type benchSub struct {
	id     int
	sub    *client.Subscription
	check  *streamCheck
	events int64
	opened chan struct{}
	isOpen bool
}

// streams is the number of distinct subscriptions of the spec: subscriber i has the i mod
// streams-th.
func (s groupSpec) streams() int {
	if len(s.Selectors) > 0 {
		return len(s.Selectors)
	}
	return len(s.Topics)
}

// selectors returns the selectors of the t-th subscription.
func (s groupSpec) selectors(t int) []string {
	if len(s.Selectors) > 0 {
		return s.Selectors[t]
	}
	return []string{s.Topics[t]}
}

func newLocalGroup(spec groupSpec) *localGroup {
	ctx, cancel := context.WithCancel(context.Background())
	return &localGroup{
		spec: spec, conns: newConnPool(spec),
		ctx: ctx, cancel: cancel, rec: newRecorder(), rec2: newRecorder(),
	}
}

func (g *localGroup) open(ctx context.Context) (readyInfo, error) {
	start := time.Now()
	conc := g.spec.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	sem := make(chan struct{}, conc)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		info     readyInfo
		lastOpen time.Time
	)
	g.subs = make([]*benchSub, 0, g.spec.Count)
loop:
	for i := range g.spec.Count {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		b := g.subscribe(g.spec.First + i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			select {
			case <-b.opened:
				g.connected.Add(1)
				mu.Lock()
				info.Connected++
				lastOpen = time.Now()
				mu.Unlock()
			case <-b.sub.Done():
				mu.Lock()
				info.Failed++
				if info.FirstError == "" && b.sub.Err() != nil {
					info.FirstError = b.sub.Err().Error()
				}
				mu.Unlock()
			case <-ctx.Done():
				if err := b.sub.LastError(); err != nil {
					mu.Lock()
					if info.FirstError == "" {
						info.FirstError = err.Error()
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if !lastOpen.IsZero() {
		info.OpenSeconds = lastOpen.Sub(start).Seconds()
	}
	return info, nil
}

// subscribe starts subscriber id.
func (g *localGroup) subscribe(id int) *benchSub {
	b := &benchSub{id: id, opened: make(chan struct{})}
	t := id % g.spec.streams()
	topics, matchers := subscribeTo(g.spec.Dialect, g.spec.selectors(t))
	opts := client.SubscribeOptions{
		Topics:     topics,
		Matchers:   matchers,
		Token:      g.spec.Token,
		RetryDelay: g.spec.ReconnectDelay,
		OnConnect: func(client.Connection) {
			if !b.isOpen {
				b.isOpen = true
				close(b.opened)
			}
		},
	}
	if g.spec.Mode == modeFanout {
		b.check = newStreamCheck(g.spec.Plan, t)
		pl := g.spec.Plan
		opts.Handler = func(ev client.Event) {
			now := time.Now().UnixNano()
			if sent, fresh := b.check.receive(pl, ev.Data, now); fresh {
				g.unique.Add(1)
				rec := g.rec
				if g.spec.Split > 0 && b.check.last >= g.spec.Split {
					rec = g.rec2
				}
				rec.record(b.id, (now-sent)/1000)
			}
		}
	} else {
		opts.Handler = func(client.Event) { b.events++ }
	}
	hubURL := g.spec.Hub
	if len(g.spec.Hubs) > 0 {
		hubURL = g.spec.Hubs[b.id%len(g.spec.Hubs)]
	}
	b.sub = g.conns.client(id-g.spec.First).Subscribe(g.ctx, hubURL, opts)
	g.subs = append(g.subs, b)
	return b
}

func (g *localGroup) progress() (int64, int64) { return g.unique.Load(), g.connected.Load() }

func (g *localGroup) stop(published []int64) (groupResult, error) {
	g.stopOnce.Do(func() {
		g.cancel()
		r := &g.result
		for _, b := range g.subs {
			err := b.sub.Close() // waits for its goroutine: b's fields are ours now
			r.Reconnects += int64(b.sub.Reconnects())
			r.Events += b.events
			if err != nil {
				r.Stopped++
				if r.FirstError == "" {
					r.FirstError = err.Error()
				}
			}
			if b.isOpen && b.sub.Connections() == 1 && err == nil {
				r.StillOpen++
			}
			if b.check != nil {
				r.Check.add(b.id, b.check, g.spec.Plan, published)
				r.LastAt = max(r.LastAt, b.check.lastAt)
			}
		}
		if g.spec.Mode == modeFanout {
			r.Latency = encodeHist(g.rec.merged())
			if g.spec.Split > 0 {
				r.Latency2 = encodeHist(g.rec2.merged())
			}
		}
		g.subs = nil
		g.conns.close()
	})
	return g.result, nil
}

func (g *localGroup) close() {
	g.cancel()
	_, _ = g.stop(nil)
}
