package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IdleConfig describes an idle run.
type IdleConfig struct {
	Options
	// Connections to open, spread over Topics (default 1) as fanout does.
	Connections, Topics int
	// Concurrency bounds the connections being opened at once. Default DefaultConcurrency.
	Concurrency int
	// Hold is how long the connections stay open once all are. Default 5 s.
	Hold time.Duration
	// PID, when set, is the hub process whose resident memory is read (from /proc) before
	// opening, at the end of the hold, and Settle after closing everything (default 2 s).
	PID    int
	Settle time.Duration
}

// IdleResult is what an idle run measured.
type IdleResult struct {
	Scenario    string `json:"scenario"`
	Hub         string `json:"hub"`
	Connections int    `json:"connections"`
	Procs       int    `json:"procs"`

	Connected            int     `json:"connected"`
	Failed               int     `json:"failed"`
	ConnectSeconds       float64 `json:"connect_seconds"`
	ConnectionsPerSecond float64 `json:"connections_per_second"`
	HoldSeconds          float64 `json:"hold_seconds"`
	// StillOpen connections had not been closed by the hub at the end of the hold.
	StillOpen  int   `json:"still_open"`
	Reconnects int64 `json:"reconnects"`
	Events     int64 `json:"events"`

	// Resident memory of PID, in KiB, when one was given.
	PID              int     `json:"pid,omitempty"`
	RSSBeforeKiB     int64   `json:"rss_before_kib,omitempty"`
	RSSOpenKiB       int64   `json:"rss_open_kib,omitempty"`
	RSSAfterKiB      int64   `json:"rss_after_kib,omitempty"`
	KiBPerConnection float64 `json:"kib_per_connection,omitempty"`
	// ReturnedPercent is how much of the growth was given back after closing.
	ReturnedPercent float64 `json:"returned_percent,omitempty"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Idle runs the idle scenario.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleResult, error) {
	if cfg.Connections <= 0 {
		return nil, errors.New("idle needs at least one connection")
	}
	cfg.Topics = max(cfg.Topics, 1)
	if cfg.Hold <= 0 {
		cfg.Hold = 5 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	_, subTok, err := cfg.setup()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	pr := newProgress(cfg.Progress)
	defer pr.clear()
	res := &IdleResult{Scenario: "idle", Hub: cfg.Hub, Connections: cfg.Connections, Procs: max(cfg.Procs, 1), PID: cfg.PID}

	rss := func(at *int64) {
		if cfg.PID == 0 || err != nil {
			return
		}
		*at, err = ReadRSS(cfg.PID)
	}
	rss(&res.RSSBeforeKiB)
	if err != nil {
		return nil, err
	}

	gs, err := startGroups(&cfg.Options, groupSpec{
		Mode: modeIdle, Hub: cfg.Hub, Hubs: cfg.SubscribeHubs, Token: subTok, Topics: topicNames(cfg.Prefix, "idle", cfg.Topics),
		Plan: plan{Topics: cfg.Topics, Publishers: 1}, Concurrency: cfg.Concurrency,
		ReconnectDelay: cfg.ReconnectDelay, Insecure: cfg.Insecure,
	}, cfg.Connections)
	if err != nil {
		return nil, err
	}
	defer gs.close()
	ready, err := gs.open(ctx, pr, cfg.Connections)
	if err != nil {
		return nil, err
	}
	res.Connected, res.Failed = ready.Connected, ready.Failed
	res.ConnectSeconds = ready.OpenSeconds
	res.ConnectionsPerSecond = rate(int64(ready.Connected), time.Duration(ready.OpenSeconds*float64(time.Second)))
	if ready.Connected < cfg.Connections {
		msg := fmt.Sprintf("only %d of %d connections opened", ready.Connected, cfg.Connections)
		if ready.FirstError != "" {
			msg += ": " + ready.FirstError
		}
		res.Problems = append(res.Problems, msg)
	}

	holdStart := time.Now()
	holdEnd := holdStart.Add(cfg.Hold)
	tick := time.NewTicker(progressEvery)
hold:
	for {
		select {
		case <-ctx.Done():
			res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s) during the hold", cfg.Timeout))
			break hold
		case now := <-tick.C:
			if !now.Before(holdEnd) {
				break hold
			}
			_, c := gs.progress()
			pr.show("holding  %d connections  %s left", c, time.Until(holdEnd).Round(100*time.Millisecond))
		}
	}
	tick.Stop()
	res.HoldSeconds = time.Since(holdStart).Seconds()
	rss(&res.RSSOpenKiB)

	total, _, stopErr := gs.stop(nil)
	if stopErr != nil {
		res.Problems = append(res.Problems, stopErr.Error())
	}
	res.StillOpen, res.Reconnects, res.Events = total.StillOpen, total.Reconnects, total.Events
	if cfg.PID != 0 && err == nil {
		pr.show("closed  waiting %s for the hub to release memory", cfg.Settle)
		t := time.NewTimer(cfg.Settle)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		rss(&res.RSSAfterKiB)
		if res.Connected > 0 {
			res.KiBPerConnection = float64(res.RSSOpenKiB-res.RSSBeforeKiB) / float64(res.Connected)
		}
		if grown := res.RSSOpenKiB - res.RSSBeforeKiB; grown > 0 {
			res.ReturnedPercent = 100 * float64(res.RSSOpenKiB-res.RSSAfterKiB) / float64(grown)
		}
	}
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	res.OK = len(res.Problems) == 0
	return res, nil
}
