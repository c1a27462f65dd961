package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/client"
)

// CatchupConfig describes a catchup run.
type CatchupConfig struct {
	Options
	// Updates M are published first, by Publishers (default 1).
	Updates, Publishers int
	// Earliest makes the subscriber ask for "earliest" rather than the id of an update
	// published just before the M.
	Earliest bool
	// Size pads each update's data to at least that many bytes.
	Size int
	// Grace is how long the catch-up may stall before the run gives up. Default DefaultGrace.
	Grace time.Duration
}

// CatchupResult is what a catchup run measured and checked.
type CatchupResult struct {
	Scenario   string `json:"scenario"`
	Hub        string `json:"hub"`
	Updates    int    `json:"updates"`
	Publishers int    `json:"publishers"`

	Published          int64   `json:"published"`
	PublishErrors      int64   `json:"publish_errors"`
	PublishSeconds     float64 `json:"publish_seconds"`
	PublishesPerSecond float64 `json:"publishes_per_second"`

	// LastEventID is what the subscriber sent; ResponseLastEventID what the hub answered
	// ("earliest" when it did not know the id).
	LastEventID         string `json:"last_event_id"`
	ResponseLastEventID string `json:"response_last_event_id"`
	// FirstEventSeconds and Seconds run from the subscribe request to the first and the last
	// update received; UpdatesPerSecond is the updates over Seconds.
	FirstEventSeconds float64 `json:"first_event_seconds"`
	Seconds           float64 `json:"seconds"`
	UpdatesPerSecond  float64 `json:"updates_per_second"`
	Reconnects        int64   `json:"reconnects"`
	Check             Check   `json:"check"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// markerData is the data of the update published before the M, whose id the subscriber sends.
const markerData = "catchup marker"

// Catchup runs the catchup scenario.
func Catchup(ctx context.Context, cfg CatchupConfig) (*CatchupResult, error) {
	if cfg.Updates <= 0 {
		return nil, errors.New("catchup needs at least one update")
	}
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
	res := &CatchupResult{Scenario: "catchup", Hub: cfg.Hub, Updates: cfg.Updates, Publishers: cfg.Publishers}
	tp := cfg.Prefix + "catchup"
	pl := plan{Topics: 1, Publishers: cfg.Publishers}
	tr := NewTransport(4, cfg.Insecure)
	defer tr.CloseIdleConnections()
	c := &client.Client{HTTPClient: &http.Client{Transport: tr}}

	res.LastEventID = "earliest"
	if !cfg.Earliest {
		id, err := c.Publish(ctx, cfg.Hub, pubTok, client.Update{Topics: []string{tp}, Data: markerData})
		if err != nil {
			res.Problems = append(res.Problems, "publishing the marker update: "+err.Error())
			return res, nil
		}
		res.LastEventID = id
	}
	pubs := startPublishers(ctx, pubJob{
		hub: cfg.Hub, token: pubTok, publishers: cfg.Publishers, insecure: cfg.Insecure,
		count: func(p int) int64 { return share(cfg.Updates, p, cfg.Publishers) },
		update: func(p int, j, sentNs int64) client.Update {
			return client.Update{Topics: []string{tp}, Data: payload(p, j, sentNs, cfg.Size)}
		},
	})
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
publishing:
	for {
		select {
		case <-pubs.done:
			break publishing
		case <-tick.C:
			pr.show("publishing  %d/%d updates  %s", pubs.total.Load(), cfg.Updates, since(pubs.start))
		}
	}
	published := pubs.counts()
	res.Published = pubs.total.Load()
	res.PublishErrors = pubs.errors.Load()
	res.PublishSeconds = pubs.end.Sub(pubs.start).Seconds()
	res.PublishesPerSecond = rate(res.Published, pubs.end.Sub(pubs.start))
	if res.PublishErrors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d publish errors: %s", res.PublishErrors, pubs.firstErr()))
	}
	if ctx.Err() != nil {
		res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s) while publishing", cfg.Timeout))
		return res, nil
	}

	// Catch up.
	sc := newStreamCheck(pl, 0)
	var unique, firstAt, lastAt atomic.Int64
	all := make(chan struct{})
	start := time.Now()
	topics, matchers := subscribeTo(cfg.Dialect, []string{tp})
	sub := c.Subscribe(ctx, cfg.Hub, client.SubscribeOptions{
		Topics: topics, Matchers: matchers, Token: subTok, LastEventID: res.LastEventID, RetryDelay: cfg.ReconnectDelay,
		Handler: func(ev client.Event) {
			if ev.Data == markerData {
				return // only there with earliest, or a hub replaying the id sent
			}
			now := time.Now().UnixNano()
			if _, fresh := sc.receive(pl, ev.Data, now); fresh {
				firstAt.CompareAndSwap(0, now)
				lastAt.Store(now)
				if unique.Add(1) == res.Published {
					close(all)
				}
			}
		},
	})
	var (
		last         int64
		lastProgress = time.Now()
		timedOut     bool
	)
catchup:
	for {
		select {
		case <-all:
			break catchup
		case <-sub.Done():
			break catchup
		case <-ctx.Done():
			timedOut = true
			break catchup
		case <-tick.C:
			n := unique.Load()
			if n != last {
				last, lastProgress = n, time.Now()
			} else if time.Since(lastProgress) > cfg.Grace {
				break catchup
			}
			pr.show("catching up  %d/%d updates  %s", n, res.Published, since(start))
		}
	}
	subErr := sub.Close() // the Handler has returned for good: sc is ours
	res.ResponseLastEventID = sub.ResponseLastEventID()
	res.Reconnects = int64(sub.Reconnects())
	if f := firstAt.Load(); f > 0 {
		res.FirstEventSeconds = time.Unix(0, f).Sub(start).Seconds()
		d := time.Unix(0, lastAt.Load()).Sub(start)
		res.Seconds = d.Seconds()
		res.UpdatesPerSecond = rate(unique.Load(), d)
	}
	res.Check.add(0, sc, pl, published)
	if subErr != nil {
		res.Problems = append(res.Problems, "the subscription stopped: "+subErr.Error())
	}
	if timedOut {
		res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s) while catching up", cfg.Timeout))
	}
	res.Problems = append(res.Problems, res.Check.problems()...)
	res.OK = len(res.Problems) == 0
	return res, nil
}
