package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// groups is a run's subscribers, spread over this process or worker processes.
type groups []group

// startGroups splits count subscribers (numbered from 0) into o.Procs shares.
func startGroups(o *Options, tmpl groupSpec, count int) (groups, error) {
	tmpl.HTTP2, tmpl.Streams, tmpl.Resume, tmpl.Dialect = o.HTTP2, o.Streams, o.Resume, o.Dialect
	n := max(o.Procs, 1)
	if n > count {
		n = count
	}
	if o.Procs <= 1 {
		tmpl.First, tmpl.Count = 0, count
		return groups{newLocalGroup(tmpl)}, nil
	}
	gs := make(groups, 0, n)
	for w := range n {
		spec := tmpl
		spec.First = w * count / n
		spec.Count = (w+1)*count/n - spec.First
		g, err := startWorker(o, spec)
		if err != nil {
			gs.close()
			return nil, err
		}
		gs = append(gs, g)
	}
	return gs, nil
}

// open opens every group's subscribers at once, showing progress, and sums up.
func (gs groups) open(ctx context.Context, pr *progress, total int) (readyInfo, error) {
	var (
		mu   sync.Mutex
		info readyInfo
		errs []error
		wg   sync.WaitGroup
	)
	done := make(chan struct{})
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := g.open(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			info.Connected += r.Connected
			info.Failed += r.Failed
			info.OpenSeconds = max(info.OpenSeconds, r.OpenSeconds)
			if info.FirstError == "" {
				info.FirstError = r.FirstError
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-done:
			return info, errors.Join(errs...)
		case <-tick.C:
			_, c := gs.progress()
			pr.show("connecting  %d/%d subscribers  %s", c, total, since(start))
		}
	}
}

func (gs groups) progress() (unique, connected int64) {
	for _, g := range gs {
		u, c := g.progress()
		unique += u
		connected += c
	}
	return unique, connected
}

// stop stops every group at once and merges their results.
func (gs groups) stop(published []int64) (groupResult, *hdrhistogram.Histogram, error) {
	results := make([]groupResult, len(gs))
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = g.stop(published)
		}()
	}
	wg.Wait()
	var total groupResult
	h, h2 := newHist(), newHist()
	split := false
	for i, r := range results {
		if errs[i] != nil {
			continue
		}
		total.Check.merge(r.Check)
		total.Reconnects += r.Reconnects
		total.Events += r.Events
		total.LastAt = max(total.LastAt, r.LastAt)
		total.StillOpen += r.StillOpen
		total.Stopped += r.Stopped
		if total.FirstError == "" {
			total.FirstError = r.FirstError
		}
		lh, err := decodeHist(r.Latency)
		if err != nil {
			errs[i] = fmt.Errorf("a worker's latency histogram: %w", err)
			continue
		}
		h.Merge(lh)
		if len(r.Latency2) > 0 {
			lh2, err := decodeHist(r.Latency2)
			if err != nil {
				errs[i] = fmt.Errorf("a worker's latency histogram: %w", err)
				continue
			}
			h2.Merge(lh2)
			split = true
		}
	}
	if split {
		total.Latency2 = encodeHist(h2) // the second histogram travels encoded, as from a worker
	}
	return total, h, errors.Join(errs...)
}

func (gs groups) close() {
	for _, g := range gs {
		g.close()
	}
}

// topicNames returns the run's n topics.
func topicNames(prefix, kind string, n int) []string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = prefix + kind + "/" + strconv.Itoa(i)
	}
	return ts
}

// progress writes a transient status line to a terminal, at most a few times a second.
type progress struct {
	w    io.Writer
	last time.Time
	used bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) show(format string, args ...any) {
	if p == nil || p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.used = true
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
}

// clear erases the status line.
func (p *progress) clear() {
	if p != nil && p.w != nil && p.used {
		fmt.Fprint(p.w, "\r\033[K")
		p.used = false
	}
}

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

// rate is n per second over d, or 0.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// sleepUntil waits until t or the end of ctx; it reports whether t was reached.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
