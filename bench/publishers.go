package bench

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/heraldhub/herald/client"
)

// pubJob describes what a set of concurrent publishers publishes. Each publisher publishes
// its updates one at a time, in order, and stops at its first error: a failed publish may or
// may not have been stored, so what follows could not be checked.
type pubJob struct {
	hub, token string
	publishers int
	insecure   bool
	// count is how many updates publisher p publishes.
	count func(p int) int64
	// update builds publisher p's j-th update, sent at sentNs.
	update func(p int, j, sentNs int64) client.Update
	// at, when set, is when publisher p's j-th update is due (pacing).
	at func(p int, j int64) time.Time
	// deadline, when set, is when publishing stops (no update starts after it).
	deadline time.Time
}

// pubRun is a running or finished job.
type pubRun struct {
	published  []atomic.Int64 // per publisher
	total      atomic.Int64
	errors     atomic.Int64
	mu         sync.Mutex
	firstError string
	rec        *recorder
	start, end time.Time
	done       chan struct{}
}

// startPublishers starts job's publishers; done is closed when all have finished.
func startPublishers(ctx context.Context, job pubJob) *pubRun {
	r := &pubRun{published: make([]atomic.Int64, job.publishers), rec: newRecorder(), done: make(chan struct{}), start: time.Now()}
	tr := NewTransport(2*job.publishers, job.insecure)
	c := &client.Client{HTTPClient: &http.Client{Transport: tr}}
	var wg sync.WaitGroup
	for p := range job.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := job.count(p)
			for j := int64(0); j < n; j++ {
				if job.at != nil && !sleepUntil(ctx, job.at(p, j)) {
					return
				}
				if ctx.Err() != nil || (!job.deadline.IsZero() && !time.Now().Before(job.deadline)) {
					return
				}
				sent := time.Now()
				_, err := c.Publish(ctx, job.hub, job.token, job.update(p, j, sent.UnixNano()))
				if err != nil {
					if ctx.Err() != nil {
						err = errTimeout
					}
					r.errors.Add(1)
					r.mu.Lock()
					if r.firstError == "" {
						r.firstError = err.Error()
					}
					r.mu.Unlock()
					return
				}
				r.rec.record(p, time.Since(sent).Microseconds())
				r.published[p].Add(1)
				r.total.Add(1)
			}
		}()
	}
	go func() {
		wg.Wait()
		r.end = time.Now()
		tr.CloseIdleConnections()
		close(r.done)
	}()
	return r
}

// counts returns what each publisher published; call it after done.
func (r *pubRun) counts() []int64 {
	out := make([]int64, len(r.published))
	for i := range r.published {
		out[i] = r.published[i].Load()
	}
	return out
}

func (r *pubRun) hist() *hdrhistogram.Histogram { return r.rec.merged() }

func (r *pubRun) firstErr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstError
}

// share is how many of total items worker p of n gets when they are dealt in turn.
func share(total, p, n int) int64 {
	if p >= total {
		return 0
	}
	return int64((total - p + n - 1) / n)
}
