package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhub/herald/client"
)

// PublishConfig describes a publish run.
type PublishConfig struct {
	Options
	// Updates U, published by Publishers C concurrent publishers (default 8), each one
	// update at a time.
	Updates, Publishers int
	// Topics the updates are spread over (default 1).
	Topics int
	// Duration, when set, stops publishing after that long.
	Duration time.Duration
	// Size pads each update's data to at least that many bytes.
	Size int
}

// PublishResult is what a publish run measured.
type PublishResult struct {
	Scenario   string `json:"scenario"`
	Hub        string `json:"hub"`
	Updates    int    `json:"updates"`
	Publishers int    `json:"publishers"`

	Published          int64   `json:"published"`
	Errors             int64   `json:"errors"`
	Seconds            float64 `json:"seconds"`
	PublishesPerSecond float64 `json:"publishes_per_second"`
	Latency            Latency `json:"latency"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Publish runs the publish scenario.
func Publish(ctx context.Context, cfg PublishConfig) (*PublishResult, error) {
	if cfg.Updates <= 0 {
		return nil, errors.New("publish needs at least one update")
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 8
	}
	cfg.Topics = max(cfg.Topics, 1)
	pubTok, _, err := cfg.setup()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	pr := newProgress(cfg.Progress)
	defer pr.clear()
	res := &PublishResult{Scenario: "publish", Hub: cfg.Hub, Updates: cfg.Updates, Publishers: cfg.Publishers}
	topics := topicNames(cfg.Prefix, "publish", cfg.Topics)
	job := pubJob{
		hub: cfg.Hub, token: pubTok, publishers: cfg.Publishers, insecure: cfg.Insecure,
		count: func(p int) int64 { return share(cfg.Updates, p, cfg.Publishers) },
		update: func(p int, j, sentNs int64) client.Update {
			return client.Update{Topics: []string{topics[(int64(p)+j)%int64(cfg.Topics)]}, Data: payload(p, j, sentNs, cfg.Size)}
		},
	}
	if cfg.Duration > 0 {
		job.deadline = time.Now().Add(cfg.Duration)
	}
	pubs := startPublishers(ctx, job)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
wait:
	for {
		select {
		case <-pubs.done:
			break wait
		case <-tick.C:
			pr.show("publishing  %d/%d updates  %s", pubs.total.Load(), cfg.Updates, since(pubs.start))
		}
	}
	res.Published = pubs.total.Load()
	res.Errors = pubs.errors.Load()
	d := pubs.end.Sub(pubs.start)
	res.Seconds = d.Seconds()
	res.PublishesPerSecond = rate(res.Published, d)
	res.Latency = summarize(pubs.hist())
	if res.Errors > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d publish errors: %s", res.Errors, pubs.firstErr()))
	}
	if ctx.Err() != nil {
		res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s)", cfg.Timeout))
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}
