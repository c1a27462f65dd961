// Package metrics holds Herald's Prometheus instruments. The hub and the HTTP layer record
// into a *Metrics; a nil *Metrics records nothing, so libraries and tests need no registry.
//
// Names are prefixed herald_. Counters that the hub already keeps (subscribers, transport
// position) are read when scraped rather than updated on the hot path.
package metrics

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Metrics is the set of Herald's instruments, registered in its own registry.
type Metrics struct {
	// Registry holds every instrument, plus the Go runtime and process collectors.
	Registry *prometheus.Registry

	published       *prometheus.CounterVec
	publishRefused  *prometheus.CounterVec
	refused         *prometheus.CounterVec
	publishDuration prometheus.Histogram
	delivered       prometheus.Counter
	bytesWritten    prometheus.Counter
	writes          prometheus.Counter
	deliveryLatency prometheus.Histogram
	disconnects     *prometheus.CounterVec
	connections     prometheus.Counter
	transportErrors *prometheus.CounterVec
	matchDuration   prometheus.Histogram
	matchCandidates prometheus.Histogram
	connRefused     *prometheus.CounterVec
	acceptErrors    prometheus.Counter
	replays         prometheus.Counter
	replayed        prometheus.Counter

	// totals mirror a few counters as plain atomics so that the live stats (/stats, herald
	// top) read exact counts without gathering the registry.
	totals struct {
		published, delivered, bytes, connections, slow, replays, replayed atomic.Uint64
	}
}

// Totals are exact counts since the process started, read by the live stats endpoint.
type Totals struct {
	Published       uint64 `json:"published"`        // updates accepted and stored
	Delivered       uint64 `json:"delivered"`        // events written to subscribers, history included
	BytesWritten    uint64 `json:"bytes_written"`    // bytes of SSE frames written to subscribers
	Connections     uint64 `json:"connections"`      // subscriber streams opened
	SlowDisconnects uint64 `json:"slow_disconnects"` // streams ended for being too slow
	Replays         uint64 `json:"replays"`          // history replays started (subscriptions with Last-Event-ID)
	Replayed        uint64 `json:"replayed"`         // updates sent from history by those replays
}

// Totals returns the exact counts recorded so far; zero for a nil *Metrics.
func (m *Metrics) Totals() Totals {
	if m == nil {
		return Totals{}
	}
	return Totals{
		Published:       m.totals.published.Load(),
		Delivered:       m.totals.delivered.Load(),
		BytesWritten:    m.totals.bytes.Load(),
		Connections:     m.totals.connections.Load(),
		SlowDisconnects: m.totals.slow.Load(),
		Replays:         m.totals.replays.Load(),
		Replayed:        m.totals.replayed.Load(),
	}
}

// New creates the instruments and registers them with the Go and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_updates_published_total",
			Help: "Updates accepted and stored, by visibility.",
		}, []string{"visibility"}),
		publishRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_publish_refused_total",
			Help: "Publish requests refused, by HTTP status code.",
		}, []string{"code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_requests_refused_total",
			Help: "Requests refused, by HTTP status code and reason category (missing_token, invalid_token, forbidden_topic, bad_request, body_too_large, body_timeout, busy...).",
		}, []string{"code", "reason"}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_publish_duration_seconds",
			Help:    "Time to authorise, validate and store one update.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_delivered_total",
			Help: "Events written to subscribers (history replays included).",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_bytes_written_total",
			Help: "Bytes of SSE frames, comments included, written to subscribers.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_stream_writes_total",
			Help: "Writes to subscribers' connections: events delivered per write says how well deliveries are batched under load.",
		}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from an update's dispatch to its write to a subscriber (queueing and writing).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_subscriber_disconnects_total",
			Help: "Streams ended, by reason: client (went away), lifetime (write_timeout or token expiry), slow (queue full or write too slow), shutdown.",
		}, []string{"reason"}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_subscriber_connections_total",
			Help: "Subscriber streams opened.",
		}),
		transportErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_transport_errors_total",
			Help: "Failed transport operations, by operation.",
		}, []string{"op"}),
		matchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_template_match_duration_seconds",
			Help:    "Time to find the template subscribers of one update (matching and queueing), for updates with candidate templates.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		matchCandidates: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_template_match_candidates",
			Help:    "(template, topic) pairs evaluated for one update, after the prefix index.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		connRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_connections_refused_total",
			Help: "Connections closed as they were accepted, by reason: reserve_exhausted (the hub's address is past max_connections and its reserve), operations_full (the operations address is at its cap), file_limit (the process was out of open files).",
		}, []string{"reason"}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_accept_errors_total",
			Help: "Failed accepts on the hub's and the operations address, such as running out of open files.",
		}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_history_replays_total",
			Help: "History replays started: subscriptions with a Last-Event-ID.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_history_updates_replayed_total",
			Help: "Updates sent from history by replays.",
		}),
	}
	reg.MustRegister(m.published, m.publishRefused, m.refused, m.publishDuration, m.delivered, m.bytesWritten, m.writes,
		m.deliveryLatency, m.disconnects, m.connections, m.transportErrors, m.matchDuration, m.matchCandidates,
		m.connRefused, m.acceptErrors, m.replays, m.replayed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Gauges registers gauges read at scrape time: connected subscribers, subscribers by selector
// kind, and the dispatch loop's lag behind the transport's head (in updates).
func (m *Metrics) Gauges(subscribers func() float64, byKind func() map[string]float64, lag func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_subscribers", Help: "Connected subscribers."}, subscribers),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_transport_lag", Help: "Updates stored but not yet dispatched by this node."}, lag),
		&kindCollector{desc: prometheus.NewDesc("herald_subscriptions", "Subscriptions (selectors of connected subscribers) by selector kind.", []string{"kind"}, nil), read: byKind},
	)
}

// OpenConnections registers a gauge read at scrape time: connections open on the hub's
// listener, hijacked streams included.
func (m *Metrics) OpenConnections(open func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_connections_open", Help: "Connections open on the hub's listener, streams included."}, open))
}

// kindCollector exports a map read at scrape time as one gauge per kind.
type kindCollector struct {
	desc *prometheus.Desc
	read func() map[string]float64
}

func (c *kindCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *kindCollector) Collect(ch chan<- prometheus.Metric) {
	for kind, v := range c.read() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, kind)
	}
}

// Published records a stored update and how long its publish request took.
func (m *Metrics) Published(private bool, d time.Duration) {
	if m == nil {
		return
	}
	v := "public"
	if private {
		v = "private"
	}
	m.published.WithLabelValues(v).Inc()
	m.totals.published.Add(1)
	m.publishDuration.Observe(d.Seconds())
}

// PublishRefused records a refused publish request.
func (m *Metrics) PublishRefused(code int) {
	if m == nil {
		return
	}
	m.publishRefused.WithLabelValues(itoa(code)).Inc()
}

// Refused records a refused request of any endpoint by status code and reason category. The
// category comes from a fixed set, never from the request, so that clients cannot grow the
// number of series.
func (m *Metrics) Refused(code int, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(itoa(code), reason).Inc()
}

// BodyBytes registers a gauge of the bytes reserved by publish bodies being read, read at
// scrape time.
func (m *Metrics) BodyBytes(inflight func() float64) {
	if m == nil {
		return
	}
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_publish_body_bytes_inflight",
		Help: "Bytes reserved by publish bodies being read; at max_inflight_body_bytes further publishes get 503.",
	}, inflight))
}

// Written records one write to a subscriber: events, bytes, and the dispatch time of the
// oldest event in it (zero when unknown, e.g. for history).
func (m *Metrics) Written(events, bytes int, oldest time.Time) {
	if m == nil {
		return
	}
	if events > 0 {
		m.delivered.Add(float64(events))
		m.totals.delivered.Add(uint64(events))
	}
	m.bytesWritten.Add(float64(bytes))
	m.totals.bytes.Add(uint64(max(bytes, 0)))
	m.writes.Inc()
	if !oldest.IsZero() {
		m.deliveryLatency.Observe(time.Since(oldest).Seconds())
	}
}

// Connected records a new subscriber stream.
func (m *Metrics) Connected() {
	if m == nil {
		return
	}
	m.connections.Inc()
	m.totals.connections.Add(1)
}

// Disconnected records the end of a stream and its reason.
func (m *Metrics) Disconnected(reason string) {
	if m == nil {
		return
	}
	m.disconnects.WithLabelValues(reason).Inc()
	if reason == "slow" {
		m.totals.slow.Add(1)
	}
}

// ReplayStarted records the start of a history replay.
func (m *Metrics) ReplayStarted() {
	if m == nil {
		return
	}
	m.replays.Inc()
	m.totals.replays.Add(1)
}

// Replayed records updates sent from history by a replay.
func (m *Metrics) Replayed(updates int) {
	if m == nil || updates <= 0 {
		return
	}
	m.replayed.Add(float64(updates))
	m.totals.replayed.Add(uint64(updates))
}

// PublishDurations returns the histogram of publish durations (from the request's arrival to
// the update stored): the buckets' upper bounds in seconds and their cumulative counts, the
// last count being the total. It gathers the histogram: call it when asked only (the live
// stats, once a second while watched).
func (m *Metrics) PublishDurations() (bounds []float64, cumulative []uint64) {
	if m == nil {
		return nil, nil
	}
	var d dto.Metric
	if err := m.publishDuration.Write(&d); err != nil || d.Histogram == nil {
		return nil, nil
	}
	for _, b := range d.Histogram.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		cumulative = append(cumulative, b.GetCumulativeCount())
	}
	bounds = append(bounds, math.Inf(1))
	cumulative = append(cumulative, d.Histogram.GetSampleCount())
	return bounds, cumulative
}

// Matched records the template matching done for one update by the loop that serves wild
// subscribers: how many (template, topic) pairs were candidates, and how long the update took.
func (m *Metrics) Matched(candidates int, d time.Duration) {
	if m == nil {
		return
	}
	m.matchCandidates.Observe(float64(candidates))
	m.matchDuration.Observe(d.Seconds())
}

// TransportError counts a failed transport operation.
func (m *Metrics) TransportError(op string) {
	if m == nil {
		return
	}
	m.transportErrors.WithLabelValues(op).Inc()
}

// ConnectionRefused records a connection closed as it was accepted, by a connection cap or
// for want of open files.
func (m *Metrics) ConnectionRefused(reason string) {
	if m == nil {
		return
	}
	m.connRefused.WithLabelValues(reason).Inc()
}

// AcceptError records a failed accept.
func (m *Metrics) AcceptError() {
	if m == nil {
		return
	}
	m.acceptErrors.Inc()
}

// itoa formats small non-negative numbers such as status codes without fmt.
func itoa(n int) string {
	if n < 0 || n > 999 {
		return "other"
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}
