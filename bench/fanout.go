package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhub/herald/client"
)

// FanoutConfig describes a fanout run.
type FanoutConfig struct {
	Options
	// Subscribers S, spread over Topics T: subscriber i listens to topic i mod T.
	Subscribers, Topics int
	// Updates U, published by Publishers P (publisher p publishes updates p, p+P, …).
	Updates, Publishers int
	// Rate paces publishing to that many updates per second overall; 0 publishes as fast as
	// the hub answers.
	Rate float64
	// Duration, when set, stops publishing after that long, even if fewer than U were sent.
	Duration time.Duration
	// Size pads each update's data to at least that many bytes.
	Size int
	// Private publishes private updates (the subscribers' JWT allows every topic).
	Private bool
	// Concurrency bounds the subscriptions being opened at once. Default DefaultConcurrency.
	Concurrency int
	// Grace is how long deliveries may stall, once publishing is over, before the run gives
	// up on the missing ones. Default DefaultGrace.
	Grace time.Duration
}

// FanoutResult is what a fanout run measured and checked.
type FanoutResult struct {
	Scenario    string `json:"scenario"`
	Hub         string `json:"hub"`
	Subscribers int    `json:"subscribers"`
	Topics      int    `json:"topics"`
	Publishers  int    `json:"publishers"`
	Procs       int    `json:"procs"`
	Updates     int    `json:"updates"` // asked for

	// Connected subscribers, and how long opening them took.
	Connected            int     `json:"connected"`
	ConnectSeconds       float64 `json:"connect_seconds"`
	ConnectionsPerSecond float64 `json:"connections_per_second"`

	Published          int64   `json:"published"`
	PublishErrors      int64   `json:"publish_errors"`
	PublishSeconds     float64 `json:"publish_seconds"`
	PublishesPerSecond float64 `json:"publishes_per_second"`
	PublishLatency     Latency `json:"publish_latency"`

	// Seconds runs from the first publish to the last delivery; EventsPerSecond is the
	// deliveries over it.
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	// Latency is publish (send timestamp) → receive.
	Latency    Latency `json:"latency"`
	Reconnects int64   `json:"reconnects"`
	Check      Check   `json:"check"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Fanout runs the fanout scenario. The error is for a run that could not be made (bad
// configuration, no worker process); a run whose checks failed returns a result with OK false.
func Fanout(ctx context.Context, cfg FanoutConfig) (*FanoutResult, error) {
	if cfg.Subscribers <= 0 || cfg.Updates <= 0 {
		return nil, errors.New("fanout needs at least one subscriber and one update")
	}
	cfg.Topics = max(cfg.Topics, 1)
	cfg.Publishers = max(cfg.Publishers, 1)
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	pubTok, subTok, err := cfg.setup()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	pr := newProgress(cfg.Progress)
	defer pr.clear()

	res := &FanoutResult{Scenario: "fanout", Hub: cfg.Hub, Subscribers: cfg.Subscribers, Topics: cfg.Topics,
		Publishers: cfg.Publishers, Procs: max(cfg.Procs, 1), Updates: cfg.Updates}
	pl := plan{Topics: cfg.Topics, Publishers: cfg.Publishers}
	topics := topicNames(cfg.Prefix, "fanout", cfg.Topics)
	gs, err := startGroups(&cfg.Options, groupSpec{
		Mode: modeFanout, Hub: cfg.Hub, Hubs: cfg.SubscribeHubs, Token: subTok, Topics: topics, Plan: pl,
		Concurrency: cfg.Concurrency, ReconnectDelay: cfg.ReconnectDelay, Insecure: cfg.Insecure,
	}, cfg.Subscribers)
	if err != nil {
		return nil, err
	}
	defer gs.close()

	ready, err := gs.open(ctx, pr, cfg.Subscribers)
	if err != nil {
		return nil, err
	}
	res.Connected = ready.Connected
	res.ConnectSeconds = ready.OpenSeconds
	res.ConnectionsPerSecond = rate(int64(ready.Connected), time.Duration(ready.OpenSeconds*float64(time.Second)))
	if ready.Connected < cfg.Subscribers {
		msg := fmt.Sprintf("only %d of %d subscribers connected", ready.Connected, cfg.Subscribers)
		if ctx.Err() != nil {
			msg += " before the timeout"
		}
		if ready.FirstError != "" {
			msg += ": " + ready.FirstError
		}
		res.Problems = append(res.Problems, msg)
		_, _, _ = gs.stop(make([]int64, cfg.Publishers))
		return res, nil
	}

	// Publish while watching deliveries.
	job := pubJob{
		hub: cfg.Hub, token: pubTok, publishers: cfg.Publishers, insecure: cfg.Insecure,
		count: func(p int) int64 { return share(cfg.Updates, p, cfg.Publishers) },
		update: func(p int, j, sentNs int64) client.Update {
			return client.Update{Topics: []string{topics[(int64(p)+j)%int64(cfg.Topics)]}, Data: payload(p, j, sentNs, cfg.Size), Private: cfg.Private}
		},
	}
	start := time.Now()
	if cfg.Rate > 0 {
		interval := float64(time.Second) / cfg.Rate
		job.at = func(p int, j int64) time.Time {
			k := int64(p) + j*int64(cfg.Publishers)
			return start.Add(time.Duration(float64(k) * interval))
		}
	}
	if cfg.Duration > 0 {
		job.deadline = start.Add(cfg.Duration)
	}
	pubs := startPublishers(ctx, job)
	var (
		published    []int64
		expected     int64
		lastUnique   int64
		lastProgress = time.Now()
		timedOut     bool
		pubEnd       time.Time
		complete     time.Time
	)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
watch:
	for {
		select {
		case <-pubs.done:
			if published == nil {
				published = pubs.counts()
				expected = expectedDeliveries(pl, cfg.Subscribers, published)
				pubEnd = time.Now()
				lastProgress = pubEnd
			}
		case <-tick.C:
		case <-ctx.Done():
			timedOut = true
			break watch
		}
		unique, _ := gs.progress()
		if unique != lastUnique {
			lastUnique, lastProgress = unique, time.Now()
		}
		if published != nil {
			if unique >= expected {
				// Everything arrived: linger a little so that late duplicates are counted too.
				if complete.IsZero() {
					complete = time.Now()
				}
				if time.Since(complete) >= linger {
					break watch
				}
			} else if time.Since(lastProgress) > cfg.Grace {
				break watch
			}
			pr.show("delivering  %d/%d events (%.0f%%)  %s", unique, expected, 100*float64(unique)/float64(max(expected, 1)), since(start))
		} else {
			pr.show("publishing  %d/%d updates  delivered %d events  %s", pubs.total.Load(), cfg.Updates, unique, since(start))
		}
	}
	cancel() // stops publishers still running at the timeout
	<-pubs.done
	if published == nil {
		published = pubs.counts()
		pubEnd = pubs.end
	}
	total, lat, err := gs.stop(published)
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}

	res.Published = pubs.total.Load()
	res.PublishErrors = pubs.errors.Load()
	res.PublishSeconds = pubEnd.Sub(start).Seconds()
	res.PublishesPerSecond = rate(res.Published, pubEnd.Sub(start))
	res.PublishLatency = summarize(pubs.hist())
	res.Check = total.Check
	res.Reconnects = total.Reconnects
	res.Latency = summarize(lat)
	if total.LastAt > 0 {
		d := time.Unix(0, total.LastAt).Sub(start)
		res.Seconds = d.Seconds()
		res.EventsPerSecond = rate(res.Check.Delivered, d)
	}
	if res.PublishErrors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d publish errors: %s", res.PublishErrors, pubs.firstErr()))
	}
	if timedOut {
		res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s)", cfg.Timeout))
	}
	if total.Stopped > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d subscriptions stopped: %s", total.Stopped, total.FirstError))
	}
	res.Problems = append(res.Problems, res.Check.problems()...)
	res.OK = len(res.Problems) == 0
	return res, nil
}

// linger is how long a fanout run keeps listening once every expected delivery arrived.
const linger = 200 * time.Millisecond

// expectedDeliveries is how many deliveries subscribers 0…subscribers-1 must get in all.
func expectedDeliveries(pl plan, subscribers int, published []int64) int64 {
	var n int64
	for t := range pl.Topics {
		subs := share(subscribers, t, pl.Topics)
		if subs > 0 {
			n += subs * pl.expected(t, published)
		}
	}
	return n
}
