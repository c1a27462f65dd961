package server

import (
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhub/herald/metrics"
)

// StatsConfig describes the hub to the live stats endpoint (/stats on the operations address).
type StatsConfig struct {
	// Version is the build's version, shown as is.
	Version string
	// Transport names the transport (its URL scheme, without credentials).
	Transport string
	// Started is when the process started; uptime is counted from it.
	Started time.Time
	// Subscribers returns the number of connected subscribers.
	Subscribers func() int
	// Interval between two snapshots of a stream; one second when zero.
	Interval time.Duration
}

// Stats is one snapshot of the hub, the document served by /stats: exact totals since the
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
}

// snapshot reads the current figures. It is called only for a watcher: nothing is sampled
// while nobody reads /stats.
func (cfg *StatsConfig) snapshot(m *metrics.Metrics) Stats {
	now := time.Now()
	st := Stats{
		Time:         now.UTC(),
		Version:      cfg.Version,
		Transport:    cfg.Transport,
		Totals:       m.Totals(),
		Goroutines:   runtime.NumGoroutine(),
		RSSBytes:     rssBytes(),
		OpenFiles:    openFiles(),
		MaxOpenFiles: maxOpenFiles(),
	}
	if !cfg.Started.IsZero() {
		st.UptimeSeconds = now.Sub(cfg.Started).Seconds()
	}
	if cfg.Subscribers != nil {
		st.Subscribers = cfg.Subscribers()
	}
	return st
}

// statsHandler serves /stats: one JSON snapshot with ?once=1, otherwise an SSE stream of
// snapshots, one per interval, for as long as the client stays. Each stream has its own ticker,
// so a hub nobody watches does no work for it.
func statsHandler(cfg StatsConfig, m *metrics.Metrics) http.HandlerFunc {
	interval := cfg.Interval
	if interval <= 0 {
		interval = time.Second
	}
	return func(w http.ResponseWriter, r *http.Request) {
		switch once := r.URL.Query().Get("once"); once {
		case "1", "true":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(cfg.snapshot(m))
			return
		case "", "0", "false":
		default:
			httpError(w, http.StatusBadRequest, "once must be 1 or 0")
			return
		}
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			b, err := json.Marshal(cfg.snapshot(m))
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
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}
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
