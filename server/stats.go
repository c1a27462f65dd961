package server

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhub/herald/hub"
	"github.com/heraldhub/herald/metrics"
)

// StatsConfig describes the hub to the live stats: /stats on the operations address and the
// dashboard's stream on the hub's address (dashboard.go).
type StatsConfig struct {
	// Version is the build's version, shown as is.
	Version string
	// Transport names the transport (its URL scheme, without credentials).
	Transport string
	// Started is when the process started; uptime is counted from it.
	Started time.Time
	// Hub, when set, gives subscribers, queue fill, the busiest topics, the log's lag and the
	// cluster's nodes.
	Hub *hub.Hub
	// Store, when set, describes the transport's file and bounds (the bolt transport).
	Store func() StoreStats
	// Interval between two snapshots of a stream; one second when zero.
	Interval time.Duration
}

// TopTopics is how many topics the lists of busiest topics hold.
const TopTopics = 20

// Stats is one snapshot of the hub, the document of the live stats: exact totals since the
// process started (rates are differences between two snapshots) and current gauges.
type Stats struct {
	Time          time.Time      `json:"time"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Version       string         `json:"version"`
	Transport     string         `json:"transport"`
	Subscribers   int            `json:"subscribers"`
	Totals        metrics.Totals `json:"totals"`
	Goroutines    int            `json:"goroutines"`
	// RSSBytes, OpenFiles and MaxOpenFiles are -1 where the system does not tell (they come
	// from /proc/self and the process's limits).
	RSSBytes     int64 `json:"rss_bytes"`
	OpenFiles    int   `json:"open_files"`
	MaxOpenFiles int64 `json:"max_open_files"`
	// PublishLatency is the time from a publish request's arrival to its update stored.
	PublishLatency Latency `json:"publish_latency"`
	// Queue says how full subscribers' queues are.
	Queue QueueFill `json:"queue"`
	// TransportHealth says whether the transport answers and how far this node is behind.
	TransportHealth TransportHealth `json:"transport_health"`
	// TopSubscribed lists the selectors with the most subscribers on this node.
	TopSubscribed []hub.TopicCount `json:"top_subscribed"`
	// TopDelivered lists the topics with the most deliveries on this node over the last
	// TopDeliveredSeconds (up to a minute): they are counted only while someone watches.
	TopDelivered        []hub.TopicCount `json:"top_delivered"`
	TopDeliveredSeconds float64          `json:"top_delivered_seconds"`
	// Nodes lists the nodes of the cluster, this one first (one entry without a cluster).
	Nodes []hub.NodeInfo `json:"nodes"`
}

// Latency is the median and 99th percentile of a duration, in seconds, over the Count
// observations of the last WindowSeconds (estimated from histogram buckets). Zero when there
// were none.
type Latency struct {
	P50Seconds    float64 `json:"p50_seconds"`
	P99Seconds    float64 `json:"p99_seconds"`
	Count         uint64  `json:"count"`
	WindowSeconds float64 `json:"window_seconds"`
}

// QueueFill counts the subscribers whose queue holds more than half of QueueSize events.
type QueueFill struct {
	QueueSize int `json:"queue_size"`
	AboveHalf int `json:"above_half"`
}

// TransportHealth is the transport's state as this node sees it.
type TransportHealth struct {
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Lag is how many updates the log holds that this node has not dispatched yet.
	Lag   uint64      `json:"lag"`
	Store *StoreStats `json:"store,omitempty"`
}

// StoreStats describe a transport's file and its bounds; zero bounds are unbounded.
type StoreStats struct {
	Path          string `json:"path"`
	FileBytes     int64  `json:"file_bytes"`
	MaxFileBytes  int64  `json:"max_file_bytes"`
	RetainUpdates int    `json:"retain_updates"`
	RetainBytes   int64  `json:"retain_bytes"`
}

// StatsSource takes the snapshots of the live stats. While at least one client watches, one
// goroutine samples the hub once per interval and hands each snapshot to every watcher (so
// watchers cost one sample between them), and the hub counts deliveries by topic; when the
// last watcher leaves both stop, and a hub that nobody watches does no work for them.
type StatsSource struct {
	cfg      StatsConfig
	m        *metrics.Metrics
	interval time.Duration

	mu       sync.Mutex
	watchers map[chan Stats]struct{}
	last     *Stats        // the last snapshot taken while watched
	stop     func()        // stops the sampler; nil while nobody watches
	done     chan struct{} // closed when the sampler has stopped
}

// NewStatsSource returns the source of the live stats of a hub.
func NewStatsSource(cfg StatsConfig, m *metrics.Metrics) *StatsSource {
	interval := cfg.Interval
	if interval <= 0 {
		interval = time.Second
	}
	return &StatsSource{cfg: cfg, m: m, interval: interval, watchers: map[chan Stats]struct{}{}}
}

// latencyWindow remembers the publish-duration histogram of the previous snapshot, so that a
// snapshot's quantiles cover the publishes since then.
type latencyWindow struct {
	at     time.Time
	counts []uint64
}

// snapshot reads the current figures; prev (nil for a lone snapshot, whose latency covers the
// whole run) is the histogram of the previous one, replaced by this one's.
func (s *StatsSource) snapshot(ctx context.Context, prev *latencyWindow) Stats {
	cfg := &s.cfg
	now := time.Now()
	st := Stats{
		Time:         now.UTC(),
		Version:      cfg.Version,
		Transport:    cfg.Transport,
		Totals:       s.m.Totals(),
		Goroutines:   runtime.NumGoroutine(),
		RSSBytes:     rssBytes(),
		OpenFiles:    openFiles(),
		MaxOpenFiles: maxOpenFiles(),
	}
	if !cfg.Started.IsZero() {
		st.UptimeSeconds = now.Sub(cfg.Started).Seconds()
	}
	bounds, counts := s.m.PublishDurations()
	since := cfg.Started
	var base []uint64
	if prev != nil {
		if prev.counts != nil {
			since, base = prev.at, prev.counts
		}
		prev.at, prev.counts = now, counts
	}
	st.PublishLatency = quantiles(bounds, counts, base)
	if !since.IsZero() {
		st.PublishLatency.WindowSeconds = now.Sub(since).Seconds()
	}
	if h := cfg.Hub; h != nil {
		st.Subscribers = h.Subscribers()
		st.Queue.AboveHalf, st.Queue.QueueSize = h.QueueFill()
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		lag, err := h.Lag(lctx)
		cancel()
		st.TransportHealth = TransportHealth{Reachable: err == nil, Lag: lag}
		if err != nil {
			st.TransportHealth.Error = err.Error()
		}
		st.TopSubscribed = h.TopSubscribed(TopTopics)
		top, span := h.TopDelivered(TopTopics)
		st.TopDelivered, st.TopDeliveredSeconds = top, span.Seconds()
		st.Nodes = h.Nodes(lag)
	}
	if cfg.Store != nil {
		store := cfg.Store()
		st.TransportHealth.Store = &store
	}
	return st
}

// quantiles estimates the median and the 99th percentile of the observations counted by
// cumulative minus base (both cumulative bucket counts for bounds), interpolating linearly
// within a bucket as Prometheus's histogram_quantile does.
func quantiles(bounds []float64, cumulative, base []uint64) Latency {
	if len(cumulative) == 0 {
		return Latency{}
	}
	diff := make([]uint64, len(cumulative))
	for i, c := range cumulative {
		diff[i] = c
		if i < len(base) {
			diff[i] -= min(base[i], c)
		}
	}
	total := diff[len(diff)-1]
	l := Latency{Count: total}
	if total == 0 {
		return l
	}
	q := func(p float64) float64 {
		rank := p * float64(total)
		for i, c := range diff {
			if float64(c) < rank {
				continue
			}
			lower, below := 0.0, uint64(0)
			if i > 0 {
				lower, below = bounds[i-1], diff[i-1]
			}
			upper := bounds[i]
			if math.IsInf(upper, 1) {
				return lower // beyond the last bucket: its bound is all that is known
			}
			if c == below {
				return upper
			}
			return lower + (upper-lower)*(rank-float64(below))/float64(c-below)
		}
		return bounds[len(bounds)-1]
	}
	l.P50Seconds, l.P99Seconds = q(0.5), q(0.99)
	return l
}

// watch adds a watcher, starting the sampler if it is the first, and returns the channel its
// snapshots arrive on (the first at once) and the function that removes it.
func (s *StatsSource) watch() (<-chan Stats, func()) {
	ch := make(chan Stats, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	if s.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		s.stop, s.done = cancel, done
		go s.sample(ctx, done)
	} else if s.last != nil {
		ch <- *s.last
	}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.watchers, ch)
			var done chan struct{}
			if len(s.watchers) == 0 && s.stop != nil {
				s.stop()
				done = s.done
				s.stop, s.done, s.last = nil, nil, nil
			}
			s.mu.Unlock()
			if done != nil {
				<-done
			}
		})
	}
}

// sample is the sampler: one snapshot per interval, handed to every watcher (a watcher that
// has not taken the previous one gets the new one instead), until ctx ends.
func (s *StatsSource) sample(ctx context.Context, done chan struct{}) {
	defer close(done)
	if h := s.cfg.Hub; h != nil {
		stop := h.WatchDeliveries()
		defer stop()
	}
	var prev latencyWindow
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		st := s.snapshot(ctx, &prev)
		s.mu.Lock()
		if ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		s.last = &st
		for ch := range s.watchers {
			select {
			case <-ch: // not taken: replaced by the newer one
			default:
			}
			ch <- st
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once returns a snapshot: the last one taken for the watchers, or a new one whose publish
// latency covers the whole run and without the busiest topics by deliveries (they are counted
// only while someone watches).
func (s *StatsSource) once(ctx context.Context) Stats {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last != nil {
		return *last
	}
	return s.snapshot(ctx, nil)
}

// serve answers a stats request: one JSON snapshot with ?once=1, otherwise an SSE stream of
// snapshots (event "stats"), one per interval, until the client leaves or lifetime (when not
// zero) is over.
func (s *StatsSource) serve(w http.ResponseWriter, r *http.Request, lifetime time.Duration) {
	switch once := r.URL.Query().Get("once"); once {
	case "1", "true":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(s.once(r.Context()))
		return
	case "", "0", "false":
	default:
		httpError(w, http.StatusBadRequest, "once must be 1 or 0")
		return
	}
	var end <-chan time.Time
	if lifetime > 0 {
		t := time.NewTimer(lifetime)
		defer t.Stop()
		end = t.C
	}
	snapshots, leave := s.watch()
	defer leave()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case st := <-snapshots:
			b, err := json.Marshal(st)
			if err != nil {
				return
			}
			_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := w.Write(append(append([]byte("event: stats\ndata: "), b...), '\n', '\n')); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	}
}

// statsHandler serves /stats on the operations address: no token, no lifetime.
func statsHandler(src *StatsSource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { src.serve(w, r, 0) }
}

// rssBytes reads the resident set size from /proc/self/statm, or -1.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

// openFiles counts the entries of /proc/self/fd, or returns -1.
func openFiles() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // the directory being read is one of them
}
