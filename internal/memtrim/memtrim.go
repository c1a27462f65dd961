// Package memtrim gives memory back to the operating system after many subscribers leave.
//
// Go returns freed heap to the OS slowly, so a hub that held 20 000 connections keeps their
// memory resident long after they closed, and looks leaky to operators. Trim watches the
// subscriber count and, when it has fallen well below its recent peak, frees what it can at
// once.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Options tune Run. Zero values take the defaults.
type Options struct {
	// Interval between checks. Default 2 s.
	Interval time.Duration
	// MinDrop is how many subscribers must have left since the peak. Default 1000.
	MinDrop int
}

// Run checks count every interval until ctx ends. When at least MinDrop subscribers and half
// of the peak have gone, it forces a collection and returns freed memory to the OS
// (debug.FreeOSMemory), which costs one garbage collection.
func Run(ctx context.Context, count func() int, log *slog.Logger, opts Options) {
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	if opts.MinDrop <= 0 {
		opts.MinDrop = 1000
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	peak := count()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := count()
		if n > peak {
			peak = n
			continue
		}
		if peak-n >= opts.MinDrop && n <= peak/2 {
			start := time.Now()
			debug.FreeOSMemory()
			log.Debug("returned freed memory to the OS", "subscribers", n, "peak", peak, "took", time.Since(start))
			peak = n
		}
	}
}
