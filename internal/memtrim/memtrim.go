// Package memtrim gives memory back to the operating system after many subscribers leave,
// and after many arrive.
//
// Go returns freed heap to the OS slowly, so a hub that held 20 000 connections keeps their
// memory resident long after they closed, and looks leaky to operators. Likewise, setting up
// thousands of connections (TLS handshakes above all) leaves garbage many times the size of
// what the connections keep, and the heap the collector grew for it stays resident. Trim
// watches the subscriber count and, when it has fallen well below its recent peak, or risen
// a lot and then settled, frees what it can at once.
package memtrim

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"
)

// Options tune Run. Zero values take the defaults.
type Options struct {
	// Interval between checks. Default 1 s.
	Interval time.Duration
	// MinDrop is how many subscribers must have left since the peak, or arrived since the
	// last trim. Default 1000.
	MinDrop int
}

// Run checks count every interval until ctx ends. When at least MinDrop subscribers and half
// of the peak have gone, or at least MinDrop have arrived since the last trim and the count
// then moved by under 1 % in an interval, it forces a collection and returns freed memory to
// the OS (debug.FreeOSMemory), which costs one garbage collection. A count that keeps
// growing is never trimmed on the way: only once the arrivals settle.
func Run(ctx context.Context, count func() int, log *slog.Logger, opts Options) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MinDrop <= 0 {
		opts.MinDrop = 1000
	}
	t := time.NewTicker(opts.Interval)
	defer t.Stop()
	peak := count()
	base, prev := peak, peak // base: the count at the last trim, or the lowest since
	trim := func(why string, n int) {
		start := time.Now()
		debug.FreeOSMemory()
		log.Debug("returned freed memory to the OS", "after", why, "subscribers", n, "peak", peak, "took", time.Since(start))
		base = n
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := count()
		peak = max(peak, n)
		base = min(base, n)
		switch {
		case peak-n >= opts.MinDrop && n <= peak/2:
			trim("departures", n)
			peak = n
		case n-base >= opts.MinDrop && abs(n-prev) <= n/100:
			trim("arrivals", n)
		}
		prev = n
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
