package bench_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/bench"
	"github.com/heraldhub/herald/server"
)

// floodConfig is a short flood run: 20 ordinary subscribers over 4 topics get 100 exact
// updates (50 per phase); 5 template subscribers of 6 templates each get the 5 big updates of
// phase 2, one each.
func floodConfig(u string) bench.FloodConfig {
	return bench.FloodConfig{
		Options: opts(u), TemplateSubscribers: 5, Templates: 6, Subscribers: 20, Topics: 4,
		Rate: 100, Duration: 500 * time.Millisecond, BigTopics: 50, BigRate: 10, Grace: time.Second,
	}
}

// TestFlood runs the subscribers in two worker processes: the templates and the phase split
// travel to them, and their histograms come back per phase.
func TestFlood(t *testing.T) {
	cfg := floodConfig(newHerald(t, nil))
	cfg.Procs = 2
	cfg.WorkerCommand = workerCommand
	res, err := bench.Flood(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || len(res.Problems) != 0 {
		t.Fatalf("not OK: %q\n%+v", res.Problems, res)
	}
	if res.Connected != 20 || res.TemplateConnected != 5 || res.Published != 100 || res.BigPublished != 5 || res.PublishErrors != 0 || res.BigPublishErrors != 0 {
		t.Fatalf("result %+v", res)
	}
	if c := res.Check; !c.OK() || c.Expected != 20*100/4 || c.Delivered != c.Expected {
		t.Fatalf("check %+v", c)
	}
	if c := res.TemplateCheck; !c.OK() || c.Expected != 5 || c.Delivered != 5 {
		t.Fatalf("template check %+v", c)
	}
	if res.Phase1.Count != 20*50/4 || res.Phase2.Count != 20*50/4 || res.TemplateLatency.Count != 5 {
		t.Fatalf("latency samples: phase 1 %d, phase 2 %d, templates %d", res.Phase1.Count, res.Phase2.Count, res.TemplateLatency.Count)
	}
	if res.Phase1.P99 <= 0 || res.Ratio != res.Phase2.P99/res.Phase1.P99 {
		t.Fatalf("phase 1 %+v, phase 2 %+v, ratio %v", res.Phase1, res.Phase2, res.Ratio)
	}
	var buf bytes.Buffer
	if err := res.WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "OK: every subscriber got every update meant for it") {
		t.Fatalf("table %v:\n%s", err, buf.String())
	}
}

// TestFloodFloor: the floor hub takes templates for exact topics, so the template
// subscribers get none of the big updates meant for them, and the run says so.
func TestFloodFloor(t *testing.T) {
	res, err := bench.Flood(context.Background(), floodConfig(newFloor(t, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || !res.Check.OK() || res.TemplateCheck.Lost != 5 || res.TemplateCheck.Delivered != 0 {
		t.Fatalf("check %+v, template check %+v", res.Check, res.TemplateCheck)
	}
	if len(res.Problems) == 0 || !strings.HasPrefix(res.Problems[0], "template subscribers: 0 of 5 expected deliveries arrived; lost 5") {
		t.Fatalf("problems %q", res.Problems)
	}
}

// TestFloodRefused: a hub that allows fewer selectors than --templates refuses the template
// subscribers, and the run stops there.
func TestFloodRefused(t *testing.T) {
	u := newHerald(t, func(c *server.Config) { c.MaxSelectors = 3 })
	res, err := bench.Flood(context.Background(), floodConfig(u))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.TemplateConnected != 0 || res.Published != 0 || len(res.Problems) != 1 ||
		!strings.HasPrefix(res.Problems[0], "only 0 of 5 template subscribers connected: ") || !strings.Contains(res.Problems[0], "400") {
		t.Fatalf("problems %q\n%+v", res.Problems, res)
	}
}

// TestFloodCommand: the command's flags, and a missed --max-p99 target fails the run.
func TestFloodCommand(t *testing.T) {
	u := newHerald(t, nil)
	var stdout, stderr bytes.Buffer
	err := bench.Command(context.Background(), []string{"flood", "--hub", u, "--key", testKey,
		"--template-subscribers", "3", "--templates", "4", "--subscribers", "6", "--topics", "2",
		"--rate", "50", "--duration", "300ms", "--big-topics", "10", "--big-rate", "10", "--max-p99", "1us"},
		func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, bench.ErrFailed) || !strings.Contains(err.Error(), "phase 1: p99 ") || !strings.Contains(err.Error(), "is over the target 0.00 ms") {
		t.Fatalf("err = %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"flood  " + u, "3 connected of 3, 4 distinct templates each", "6 connected of 6, over 2 exact topics",
		"0 lost, 0 duplicated, 0 out of order, 0 unexpected", "FAILED"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in the table:\n%s", want, out)
		}
	}
}

// TestFloodWithoutTemplates: with no template subscriber, the run measures the ordinary ones
// alone, and the big updates reach nobody.
func TestFloodWithoutTemplates(t *testing.T) {
	cfg := floodConfig(newHerald(t, nil))
	cfg.TemplateSubscribers = 0
	res, err := bench.Flood(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.TemplateConnected != 0 || res.BigPublished != 5 || res.TemplateCheck.Expected != 0 || res.Check.Delivered != 20*100/4 || !res.Check.OK() {
		t.Fatalf("problems %q\n%+v", res.Problems, res)
	}
}
