package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/heraldhub/herald/client"
)

// FloodConfig describes a flood run: clients holding many distinct URI templates each (the
// hostile load) beside ordinary subscribers of exact topics, whose publish→receive latency is
// what the run measures, first under exact publishes only (phase 1), then with updates of
// many topics published as well (phase 2).
type FloodConfig struct {
	Options
	// TemplateSubscribers each subscribe to Templates distinct URI templates at once; none
	// measures the same load without them.
	TemplateSubscribers, Templates int
	// Subscribers are the ordinary subscribers, spread over Topics exact topics: subscriber
	// i listens to topic i mod Topics.
	Subscribers, Topics int
	// Rate is how many updates per second go to the exact topics, in both phases.
	Rate float64
	// Duration is the length of each phase.
	Duration time.Duration
	// BigTopics is the number of topics of each big update of phase 2, and BigRate how many
	// of them are published per second. Their topics match no ordinary subscriber and, but
	// for the first one, none of the templates.
	BigTopics int
	BigRate   float64
	// Settle is a pause between the last subscriber connecting and the first publish, so that
	// phase 1 does not measure the aftermath of opening thousands of connections.
	Settle time.Duration
	// Concurrency bounds the subscriptions being opened at once. Default DefaultConcurrency.
	Concurrency int
	// Grace is how long deliveries may stall, once publishing is over, before the run gives
	// up on the missing ones. Default DefaultGrace.
	Grace time.Duration
	// MaxP99 and MaxRatio, when positive, are targets: the run fails when the ordinary
	// subscribers' p99 latency of either phase is over MaxP99, or when the p99 of phase 2 is
	// more than MaxRatio times that of phase 1.
	MaxP99   time.Duration
	MaxRatio float64
}

// FloodResult is what a flood run measured and checked.
type FloodResult struct {
	Scenario            string  `json:"scenario"`
	Hub                 string  `json:"hub"`
	TemplateSubscribers int     `json:"template_subscribers"`
	Templates           int     `json:"templates"` // per template subscriber
	Subscribers         int     `json:"subscribers"`
	Topics              int     `json:"topics"`
	Rate                float64 `json:"rate"`
	PhaseSeconds        float64 `json:"phase_seconds"`
	BigTopics           int     `json:"big_topics"`
	BigRate             float64 `json:"big_rate"`
	Procs               int     `json:"procs"`

	// Connected subscribers of each kind, and how long opening them took.
	TemplateConnected      int     `json:"template_connected"`
	TemplateConnectSeconds float64 `json:"template_connect_seconds"`
	Connected              int     `json:"connected"`
	ConnectSeconds         float64 `json:"connect_seconds"`

	// Published updates to exact topics, and big updates.
	Published         int64   `json:"published"`
	PublishErrors     int64   `json:"publish_errors"`
	PublishLatency    Latency `json:"publish_latency"`
	BigPublished      int64   `json:"big_published"`
	BigPublishErrors  int64   `json:"big_publish_errors"`
	BigPublishLatency Latency `json:"big_publish_latency"`

	// Phase1 and Phase2 are the ordinary subscribers' publish→receive latency of the updates
	// published in each phase; Ratio is Phase2.P99 / Phase1.P99.
	Phase1 Latency `json:"phase1"`
	Phase2 Latency `json:"phase2"`
	Ratio  float64 `json:"ratio"`
	// TemplateLatency is the template subscribers' publish→receive latency of the big
	// updates whose first topic matches one of their templates.
	TemplateLatency Latency `json:"template_latency"`

	Reconnects    int64 `json:"reconnects"`
	Check         Check `json:"check"`          // the ordinary subscribers
	TemplateCheck Check `json:"template_check"` // the template subscribers

	MaxP99Ms float64  `json:"max_p99_ms,omitempty"`
	MaxRatio float64  `json:"max_ratio,omitempty"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// The updates of a flood run: publisher 0 publishes to the exact topics, publisher 1 the big
// updates. Both kinds of subscribers are checked with the plans of floodPlans.
const (
	floodExact = 0
	floodBig   = 1
)

// floodPlans returns the plans the ordinary and the template subscribers are checked with.
// The ordinary plan has publisher 0 only, so that a big update reaching an ordinary
// subscriber counts as unexpected; in the template plan, big update k is for template
// subscriber (1+k) mod TemplateSubscribers, and an exact update for none.
func floodPlans(cfg FloodConfig) (ordinary, tpl plan) {
	return plan{Topics: cfg.Topics, Publishers: 1}, plan{Topics: cfg.TemplateSubscribers, Publishers: 2}
}

// floodTemplates returns template subscriber i's templates, all distinct from the other
// subscribers': half of them share the literal prefix of the exact topics ("…books/"), so that
// the hub's template index has real work; template 0 ("…flood/s{i}/t0/{id}") is the one the
// big updates' first topic matches.
func floodTemplates(prefix string, i, n int) []string {
	out := make([]string, n)
	s := "s" + strconv.Itoa(i)
	for j := range out {
		t := "t" + strconv.Itoa(j)
		if j%2 == 1 {
			out[j] = prefix + "books/{id}/" + s + "/" + t
		} else {
			out[j] = prefix + "flood/" + s + "/" + t + "/{id}"
		}
	}
	return out
}

// floodBigTopics returns the topics of big update k. The first matches template 0 of
// template subscriber (1+k) mod tplSubs. The others share a template's literal prefix and
// suffix, so that the index offers it as a candidate, but have two path segments where the
// template's {id} allows one: every one of them must be matched, and matches nothing.
func floodBigTopics(prefix string, k int64, n, tplSubs, tpls int) []string {
	tplSubs = max(tplSubs, 1) // without template subscribers, a run without the hostile load
	out := make([]string, n)
	ks := strconv.FormatInt(k, 10)
	out[0] = prefix + "flood/s" + strconv.FormatInt((1+k)%int64(tplSubs), 10) + "/t0/" + ks
	for m := 1; m < n; m++ {
		t := prefix + "books/big/" + ks + "-" + strconv.Itoa(m)
		if tpls >= 2 {
			j := 2*((m/tplSubs)%(tpls/2)) + 1
			t += "/s" + strconv.Itoa(m%tplSubs) + "/t" + strconv.Itoa(j)
		}
		out[m] = t
	}
	return out
}

// Flood runs the flood scenario. The error is for a run that could not be made; a run whose
// checks failed, or that missed a target, returns a result with OK false.
func Flood(ctx context.Context, cfg FloodConfig) (*FloodResult, error) {
	if cfg.Subscribers <= 0 || cfg.TemplateSubscribers < 0 || (cfg.TemplateSubscribers > 0 && cfg.Templates <= 0) {
		return nil, errors.New("flood needs ordinary subscribers, and template subscribers (if any) with at least one template")
	}
	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("flood needs a positive --rate and --duration")
	}
	cfg.Topics = max(cfg.Topics, 1)
	cfg.BigTopics = max(cfg.BigTopics, 1)
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

	res := &FloodResult{
		Scenario: "flood", Hub: cfg.Hub, TemplateSubscribers: cfg.TemplateSubscribers, Templates: cfg.Templates,
		Subscribers: cfg.Subscribers, Topics: cfg.Topics, Rate: cfg.Rate, PhaseSeconds: cfg.Duration.Seconds(),
		BigTopics: cfg.BigTopics, BigRate: cfg.BigRate, Procs: max(cfg.Procs, 1),
		MaxP99Ms: float64(cfg.MaxP99) / float64(time.Millisecond), MaxRatio: cfg.MaxRatio,
	}
	plO, plT := floodPlans(cfg)
	exactCount := int64(math.Round(cfg.Rate * 2 * cfg.Duration.Seconds()))
	split := int64(math.Round(cfg.Rate * cfg.Duration.Seconds())) // first update of phase 2
	bigCount := int64(math.Floor(cfg.BigRate * cfg.Duration.Seconds()))
	topics := topicNames(cfg.Prefix, "books", cfg.Topics)
	sels := make([][]string, cfg.TemplateSubscribers)
	for i := range sels {
		sels[i] = floodTemplates(cfg.Prefix, i, cfg.Templates)
	}
	base := groupSpec{
		Mode: modeFanout, Hub: cfg.Hub, Hubs: cfg.SubscribeHubs, Token: subTok,
		Concurrency: cfg.Concurrency, ReconnectDelay: cfg.ReconnectDelay, Insecure: cfg.Insecure,
	}

	// The template subscribers first: the ordinary ones connect beside the hostile load.
	tspec := base
	tspec.Selectors, tspec.Plan = sels, plT
	tgs, tready, err := openGroups(ctx, &cfg.Options, tspec, cfg.TemplateSubscribers, pr)
	if err != nil {
		return nil, err
	}
	defer tgs.close()
	res.TemplateConnected, res.TemplateConnectSeconds = tready.Connected, tready.OpenSeconds
	ospec := base
	ospec.Topics, ospec.Plan, ospec.Split = topics, plO, split
	ogs, oready, err := openGroups(ctx, &cfg.Options, ospec, cfg.Subscribers, pr)
	if err != nil {
		return nil, err
	}
	defer ogs.close()
	res.Connected, res.ConnectSeconds = oready.Connected, oready.OpenSeconds
	if p := connectProblem(ctx, "template subscribers", tready, cfg.TemplateSubscribers); p != "" {
		res.Problems = append(res.Problems, p)
	}
	if p := connectProblem(ctx, "subscribers", oready, cfg.Subscribers); p != "" {
		res.Problems = append(res.Problems, p)
	}
	if len(res.Problems) == 0 && !sleepUntil(ctx, time.Now().Add(cfg.Settle)) {
		res.Problems = append(res.Problems, errTimeout.Error()+fmt.Sprintf(" (%s)", cfg.Timeout))
	}
	if len(res.Problems) > 0 {
		_, _, _ = ogs.stop([]int64{0})
		_, _, _ = tgs.stop([]int64{0, 0})
		return res, nil
	}

	start := time.Now()
	end := start.Add(2 * cfg.Duration)
	interval := float64(time.Second) / cfg.Rate
	exact := startPublishers(ctx, pubJob{
		hub: cfg.Hub, token: pubTok, publishers: 1, insecure: cfg.Insecure, deadline: end,
		count: func(int) int64 { return exactCount },
		at:    func(_ int, j int64) time.Time { return start.Add(time.Duration(float64(j) * interval)) },
		update: func(_ int, j, sentNs int64) client.Update {
			return client.Update{Topics: []string{topics[j%int64(cfg.Topics)]}, Data: payload(floodExact, j, sentNs, 0)}
		},
	})
	big := startPublishers(ctx, pubJob{
		hub: cfg.Hub, token: pubTok, publishers: 1, insecure: cfg.Insecure, deadline: end,
		count: func(int) int64 { return bigCount },
		at: func(_ int, k int64) time.Time {
			return start.Add(cfg.Duration + time.Duration(float64(k)*float64(time.Second)/cfg.BigRate))
		},
		update: func(_ int, k, sentNs int64) client.Update {
			return client.Update{
				Topics: floodBigTopics(cfg.Prefix, k, cfg.BigTopics, cfg.TemplateSubscribers, cfg.Templates),
				Data:   payload(floodBig, k, sentNs, 0),
			}
		},
	})

	// Watch deliveries until everything published arrived, or they stall for Grace.
	var (
		expected     int64 = -1
		lastUnique   int64
		lastProgress = time.Now()
		complete     time.Time
		timedOut     bool
	)
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
watch:
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			timedOut = true
			break watch
		}
		uo, _ := ogs.progress()
		ut, _ := tgs.progress()
		if unique := uo + ut; unique != lastUnique {
			lastUnique, lastProgress = unique, time.Now()
		}
		if expected < 0 && isDone(exact.done) && isDone(big.done) {
			expected = expectedDeliveries(plO, cfg.Subscribers, exact.counts()) +
				expectedDeliveries(plT, cfg.TemplateSubscribers, []int64{0, big.total.Load()})
			lastProgress = time.Now()
		}
		switch {
		case expected < 0:
			phase := 1
			if time.Since(start) >= cfg.Duration {
				phase = 2
			}
			pr.show("phase %d  published %d exact, %d big  delivered %d  %s", phase, exact.total.Load(), big.total.Load(), lastUnique, since(start))
		case lastUnique >= expected:
			if complete.IsZero() {
				complete = time.Now()
			}
			if time.Since(complete) >= linger {
				break watch
			}
		case time.Since(lastProgress) > cfg.Grace:
			break watch
		default:
			pr.show("delivering  %d/%d events  %s", lastUnique, expected, since(start))
		}
	}
	cancel()
	<-exact.done
	<-big.done

	ototal, olat, err := ogs.stop(exact.counts())
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	ttotal, tlat, err := tgs.stop([]int64{0, big.total.Load()})
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	res.Published, res.PublishErrors = exact.total.Load(), exact.errors.Load()
	res.PublishLatency = summarize(exact.hist())
	res.BigPublished, res.BigPublishErrors = big.total.Load(), big.errors.Load()
	res.BigPublishLatency = summarize(big.hist())
	res.Phase1 = summarize(olat)
	if h2, err := decodeHist(ototal.Latency2); err == nil {
		res.Phase2 = summarize(h2)
	}
	if res.Phase1.P99 > 0 {
		res.Ratio = res.Phase2.P99 / res.Phase1.P99
	}
	res.TemplateLatency = summarize(tlat)
	res.Check, res.TemplateCheck = ototal.Check, ttotal.Check
	res.Reconnects = ototal.Reconnects + ttotal.Reconnects
	res.Problems = append(res.Problems, res.problems(cfg, ototal, ttotal, exact, big, timedOut)...)
	res.OK = len(res.Problems) == 0
	return res, nil
}

// problems lists what went wrong in a flood run once it is over, targets included.
func (r *FloodResult) problems(cfg FloodConfig, ototal, ttotal groupResult, exact, big *pubRun, timedOut bool) []string {
	var out []string
	if r.PublishErrors > 0 {
		out = append(out, fmt.Sprintf("%d publish errors: %s", r.PublishErrors, exact.firstErr()))
	}
	if r.BigPublishErrors > 0 {
		out = append(out, fmt.Sprintf("%d big publish errors: %s", r.BigPublishErrors, big.firstErr()))
	}
	if timedOut {
		out = append(out, errTimeout.Error()+fmt.Sprintf(" (%s)", cfg.Timeout))
	}
	for _, g := range []groupResult{ototal, ttotal} {
		if g.Stopped > 0 {
			out = append(out, fmt.Sprintf("%d subscriptions stopped: %s", g.Stopped, g.FirstError))
		}
	}
	out = append(out, r.Check.problems()...)
	if tp := r.TemplateCheck.problems(); len(tp) > 0 {
		out = append(out, "template subscribers: "+tp[0])
		out = append(out, tp[1:]...)
	}
	if cfg.MaxP99 > 0 {
		for i, l := range []Latency{r.Phase1, r.Phase2} {
			if l.P99 > r.MaxP99Ms {
				out = append(out, fmt.Sprintf("phase %d: p99 %s is over the target %s", i+1, ms(l.P99), ms(r.MaxP99Ms)))
			}
		}
	}
	if cfg.MaxRatio > 0 && r.Ratio > cfg.MaxRatio {
		out = append(out, fmt.Sprintf("p99 phase 2 / phase 1 = %.2f is over the target %.2f", r.Ratio, cfg.MaxRatio))
	}
	return out
}

// openGroups starts count subscribers of spec and opens them; the caller closes the groups.
func openGroups(ctx context.Context, o *Options, spec groupSpec, count int, pr *progress) (groups, readyInfo, error) {
	gs, err := startGroups(o, spec, count)
	if err != nil {
		return nil, readyInfo{}, err
	}
	ready, err := gs.open(ctx, pr, count)
	if err != nil {
		gs.close()
		return nil, readyInfo{}, err
	}
	return gs, ready, nil
}

// connectProblem describes subscribers that did not connect, or returns "".
func connectProblem(ctx context.Context, what string, r readyInfo, want int) string {
	if r.Connected >= want {
		return ""
	}
	msg := fmt.Sprintf("only %d of %d %s connected", r.Connected, want, what)
	if ctx.Err() != nil {
		msg += " before the timeout"
	}
	if r.FirstError != "" {
		msg += ": " + truncate(r.FirstError, 300) // a refused template subscriber's URL is long
	}
	return msg
}

// isDone reports whether ch is closed.
func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// floodFlags defines the flood scenario's flags on fs and returns its run; o is filled by
// the common flags. Unless --timeout is given, the run's bound is two phases plus two minutes.
func floodFlags(fs *flag.FlagSet, o *Options) func(context.Context) (Result, error) {
	var c FloodConfig
	fs.IntVar(&c.TemplateSubscribers, "template-subscribers", 1000, "subscribers holding --templates distinct URI templates each")
	fs.IntVar(&c.Templates, "templates", 100, "distinct URI templates per template subscriber")
	fs.IntVar(&c.Subscribers, "subscribers", 10_000, "ordinary subscribers, of one exact topic each")
	fs.IntVar(&c.Topics, "topics", 100, "exact topics (ordinary subscriber i listens to topic i mod T)")
	fs.Float64Var(&c.Rate, "rate", 100, "updates per second to the exact topics, in both phases")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "length of each phase")
	fs.IntVar(&c.BigTopics, "big-topics", 1000, "topics of each big update of phase 2")
	fs.Float64Var(&c.BigRate, "big-rate", 1, "big updates per second in phase 2")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "pause between connecting and publishing")
	fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, "subscriptions being opened at once")
	fs.DurationVar(&c.Grace, "grace", DefaultGrace, "how long deliveries may stall after publishing before giving up")
	fs.DurationVar(&c.MaxP99, "max-p99", 0, "fail when the ordinary subscribers' p99 latency of a phase is over this (0 = no target)")
	fs.Float64Var(&c.MaxRatio, "max-ratio", 0, "fail when the p99 of phase 2 is over this many times that of phase 1 (0 = no target)")
	fs.IntVar(&o.Procs, "procs", 1, "worker processes holding each kind of subscribers")
	return func(ctx context.Context) (Result, error) {
		timeoutSet := false
		fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
		if !timeoutSet {
			o.Timeout = 2*c.Duration + 2*time.Minute
		}
		c.Options = *o
		return Flood(ctx, c)
	}
}

func (r *FloodResult) Passed() bool       { return r.OK }
func (r *FloodResult) Failures() []string { return r.Problems }

func (r *FloodResult) WriteTable(w io.Writer) error {
	t := &table{title: fmt.Sprintf("flood  %s  (%s)", r.Hub, procs(r.Procs))}
	t.add("template subscribers", "%d connected of %d, %d distinct templates each, in %.2fs", r.TemplateConnected, r.TemplateSubscribers, r.Templates, r.TemplateConnectSeconds)
	t.add("subscribers", "%d connected of %d, over %d exact topics, in %.2fs", r.Connected, r.Subscribers, r.Topics, r.ConnectSeconds)
	t.add("phases", "%.0fs each: %.0f updates/s to exact topics; in phase 2 also %g updates/s of %d topics", r.PhaseSeconds, r.Rate, r.BigRate, r.BigTopics)
	t.add("published", "%d exact updates, %d errors; %d big updates, %d errors", r.Published, r.PublishErrors, r.BigPublished, r.BigPublishErrors)
	t.latency("publish latency", r.PublishLatency)
	t.latency("big publish latency", r.BigPublishLatency)
	t.latency("phase 1 latency", r.Phase1)
	t.latency("phase 2 latency", r.Phase2)
	t.add("p99 ratio", "%.2f (phase 2 / phase 1)", r.Ratio)
	t.latency("template latency", r.TemplateLatency)
	t.add("delivered", "%d of %d events to subscribers, %d of %d to template subscribers", r.Check.Delivered, r.Check.Expected, r.TemplateCheck.Delivered, r.TemplateCheck.Expected)
	t.add("reconnects", "%d", r.Reconnects)
	t.add("lost/dup/order", "%d lost, %d duplicated, %d out of order, %d unexpected", r.Check.Lost+r.TemplateCheck.Lost, r.Check.Duplicated+r.TemplateCheck.Duplicated,
		r.Check.OutOfOrder+r.TemplateCheck.OutOfOrder, r.Check.Unexpected+r.TemplateCheck.Unexpected)
	t.verdict(r.OK, r.Problems, "every subscriber got every update meant for it once, in order, and nothing else")
	return t.write(w)
}
