package server

import (
	"context"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhub/herald/metrics"
)

// OpsConfig configures the operations endpoints, served on their own address so that they
// are not exposed with the hub.
type OpsConfig struct {
	// Metrics is served at /metrics; nil leaves /metrics out.
	Metrics *metrics.Metrics
	// Ready reports whether the hub can serve: the transport answers. /readyz calls it.
	Ready func(ctx context.Context) error
	// Draining is set while the hub shuts down: /readyz then fails so that load balancers
	// stop sending new clients.
	Draining *atomic.Bool
	// Pprof serves Go's profiler under /debug/pprof/.
	Pprof bool
	// Stats serves /stats, the live snapshots that herald top reads; nil leaves /stats out.
	Stats *StatsSource
}

// OpsHandler returns the operations routes: /healthz (the process is alive), /readyz (ready
// for traffic), /metrics, /stats and optionally /debug/pprof/.
func OpsHandler(cfg OpsConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Draining != nil && cfg.Draining.Load() {
			httpError(w, http.StatusServiceUnavailable, "shutting down")
			return
		}
		if cfg.Ready != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := cfg.Ready(ctx); err != nil {
				httpError(w, http.StatusServiceUnavailable, "transport unavailable: "+err.Error())
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ready\n"))
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	if cfg.Stats != nil {
		mux.Handle("GET /stats", statsHandler(cfg.Stats))
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
