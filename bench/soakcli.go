package bench

import (
	"context"
	"flag"
	"io"
	"strings"
	"time"
)

// soakFlags declares the soak's flags on fs and returns the run they configure; --samples
// sets *samplesFile, and the caller sets *samplesOut to the file it opened before the run.
func soakFlags(fs *flag.FlagSet, o *Options, samplesFile *string, samplesOut *io.Writer) func(context.Context) (Result, error) {
	var c SoakConfig
	fs.DurationVar(&c.Duration, "duration", DefaultSoakDuration, "how long to publish (at most 48h); --timeout is raised to cover it")
	fs.IntVar(&c.Subscribers, "subscribers", 2000, "churning subscribers (exact, URI-template and * selectors; none, some or all private rights)")
	fs.DurationVar(&c.ChurnMin, "churn-min", 5*time.Second, "shortest time a subscriber stays connected")
	fs.DurationVar(&c.ChurnMax, "churn-max", 60*time.Second, "longest time a subscriber stays connected")
	fs.DurationVar(&c.Offline, "offline", 2*time.Second, "longest time a subscriber stays away before reconnecting with Last-Event-ID")
	fs.Float64Var(&c.Rate, "rate", 100, "publishes per second overall")
	fs.IntVar(&c.Publishers, "publishers", 4, "concurrent publishers sharing --rate")
	fs.IntVar(&c.MinSize, "min-size", 200, "smallest update data, in bytes")
	fs.IntVar(&c.MaxSize, "max-size", 2000, "largest update data, in bytes")
	fs.Float64Var(&c.PrivateShare, "private", 0.25, "share of private updates, 0 to 1")
	fs.IntVar(&c.BurstConnections, "burst", 3000, "connections opened and closed at once by each burst (0 = none)")
	fs.DurationVar(&c.BurstEvery, "burst-every", 3*time.Minute, "time between bursts")
	fs.DurationVar(&c.BurstHold, "burst-hold", DefaultBurstHold, "how long a burst's connections stay open")
	fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, "connections being opened at once")
	fs.DurationVar(&c.Grace, "grace", DefaultGrace, "how long deliveries may stall after publishing before giving up")
	fs.DurationVar(&c.MaxRetryDelay, "max-retry-delay", DefaultMaxRetryDelay, "cap of the subscribers' backoff while the hub is unreachable")
	fs.BoolVar(&c.TolerateUnavailable, "tolerate-unavailable", false, "count failed publishes without failing (a cluster's log being restarted); their updates may arrive, once at most")
	fs.DurationVar(&c.SampleEvery, "sample-every", DefaultSampleEvery, "period of the resource samples")
	fs.StringVar(&c.MetricsURL, "metrics", "", "the hub's Prometheus endpoint, e.g. http://localhost:2019/metrics")
	fs.IntVar(&c.PID, "pid", 0, "the hub's process id: resident memory and open files from /proc when --metrics lacks them")
	fs.Func("store-file", "a file of the hub's store whose size is sampled (repeat, or comma-separated: sizes are summed)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.StoreFiles = append(c.StoreFiles, f)
			}
		}
		return nil
	})
	fs.DurationVar(&c.Warmup, "warmup", 0, "time left out of the growth fit (default a fifth of --duration)")
	limits := map[string]*float64{}
	limit := func(res, name, unit string, def float64) {
		v := new(float64)
		limits[res] = v
		fs.Float64Var(v, name, def, "largest tolerated growth after the warm-up, in "+unit+" (negative: no check)")
	}
	limit(ResRSS, "max-rss-growth", "MiB/hour", DefaultGrowthLimits[ResRSS]/(1<<20))
	limit(ResHeap, "max-heap-growth", "MiB/hour", DefaultGrowthLimits[ResHeap]/(1<<20))
	limit(ResGoroutines, "max-goroutine-growth", "goroutines/hour", DefaultGrowthLimits[ResGoroutines])
	limit(ResFDs, "max-fd-growth", "open files/hour", DefaultGrowthLimits[ResFDs])
	limit(ResStore, "max-store-growth", "MiB/hour", DefaultGrowthLimits[ResStore]/(1<<20))
	fs.StringVar(samplesFile, "samples", "", "write the resource samples to FILE as CSV, for plotting")
	return func(ctx context.Context) (Result, error) {
		c.Options = *o
		c.SamplesOut = *samplesOut
		c.Limits = map[string]float64{}
		for res, v := range limits {
			c.Limits[res] = *v
			if res == ResRSS || res == ResHeap || res == ResStore {
				c.Limits[res] = *v * (1 << 20)
			}
		}
		return Soak(ctx, c)
	}
}
