package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhub/herald/client"
)

// Soak defaults.
const (
	DefaultSoakDuration   = 10 * time.Minute
	MaxSoakDuration       = 48 * time.Hour
	DefaultSampleEvery    = 10 * time.Second
	DefaultBurstHold      = 2 * time.Second
	DefaultMaxRetryDelay  = 2 * time.Second
	soakGroups            = 4 // topics are GROUP/ITEM: soakGroups × soakItems of them
	soakItems             = 5
	soakTopics            = soakGroups * soakItems
	burstSettle           = 5 * time.Second // samples this long (at most BurstEvery/4) after a burst closed are left out of the fit
	burstOpenTimeout      = 30 * time.Second
	publishRequestTimeout = 30 * time.Second
)

// DefaultGrowthLimits are the growths per hour a soak tolerates after its warm-up: bytes for
// memory and the store, counts for goroutines and open files.
var DefaultGrowthLimits = map[string]float64{
	ResRSS:        5 << 20,
	ResHeap:       5 << 20,
	ResGoroutines: 50,
	ResFDs:        20,
	ResStore:      10 << 20,
}

// SoakConfig describes a soak run: churning subscribers, paced publishes, connection bursts,
// and the hub's resources sampled all along.
type SoakConfig struct {
	Options
	// Duration is how long updates are published (at most MaxSoakDuration). Default
	// DefaultSoakDuration. Options.Timeout, when shorter than Duration plus two minutes and
	// Grace, is raised to that.
	Duration time.Duration
	// Subscribers churn: each stays online a random time between ChurnMin and ChurnMax, then
	// disconnects, waits up to Offline, and reconnects with the Last-Event-ID of the last
	// update it received. ChurnMin 0 and ChurnMax 0 mean 5 s and 60 s.
	Subscribers                 int
	ChurnMin, ChurnMax, Offline time.Duration
	// Rate is publishes per second overall, spread over Publishers (default 4) publishing
	// concurrently. Sizes of the data are uniform in [MinSize, MaxSize]; PrivateShare of the
	// updates are private.
	Rate             float64
	Publishers       int
	MinSize, MaxSize int
	PrivateShare     float64
	// Every BurstEvery (0 = no bursts), BurstConnections subscriptions are opened, held
	// BurstHold (default DefaultBurstHold) and closed.
	BurstConnections int
	BurstEvery       time.Duration
	BurstHold        time.Duration
	// Concurrency bounds the connections being opened at once. Default DefaultConcurrency.
	Concurrency int
	// Grace is how long deliveries may stall, once publishing is over, before the run gives
	// up on the missing ones. Default DefaultGrace.
	Grace time.Duration
	// MaxRetryDelay caps the subscribers' backoff when the hub is unreachable (a node being
	// restarted). Default DefaultMaxRetryDelay.
	MaxRetryDelay time.Duration

	// SampleEvery is the period of the resource samples. Default DefaultSampleEvery.
	SampleEvery time.Duration
	// SamplesOut, when set, receives the samples as CSV (see WriteSamplesCSV) as they are
	// taken.
	SamplesOut io.Writer
	// MetricsURL is the hub's Prometheus endpoint (Herald: http://localhost:2019/metrics);
	// PID a hub process to read from /proc instead (resident memory and open files);
	// StoreFiles the files whose summed size is the store's.
	MetricsURL string
	PID        int
	StoreFiles []string
	// Warmup is left out of the growth fit. Default a fifth of Duration.
	Warmup time.Duration
	// Limits are the tolerated growths per hour by resource; missing ones take
	// DefaultGrowthLimits. A negative limit disables that check.
	Limits map[string]float64
	// TolerateUnavailable accepts failed publishes (a cluster's shared log being restarted):
	// they are counted, and their updates may or may not be delivered, but each once at most.
	TolerateUnavailable bool
}

// SoakResult is what a soak run saw.
type SoakResult struct {
	Scenario      string   `json:"scenario"`
	Hub           string   `json:"hub"`
	SubscribeHubs []string `json:"subscribe_hubs,omitempty"`
	Subscribers   int      `json:"subscribers"`
	Publishers    int      `json:"publishers"`
	Rate          float64  `json:"rate"`
	Seconds       float64  `json:"seconds"` // from the first publish to the end of the checks

	Published          int64   `json:"published"`
	PublishedPrivate   int64   `json:"published_private"`
	PublishedBytes     int64   `json:"published_bytes"`
	PublishErrors      int64   `json:"publish_errors"`
	PublishesPerSecond float64 `json:"publishes_per_second"`
	PublishLatency     Latency `json:"publish_latency"`

	// Sessions are the connections subscribers made by themselves (first ones and churn);
	// Reconnects the ones the client made after the hub ended a stream or an attempt failed.
	Sessions   int64   `json:"sessions"`
	Reconnects int64   `json:"reconnects"`
	Latency    Latency `json:"latency"` // publish → receive, replays after reconnecting included
	Check      Check   `json:"check"`
	// Foreign events carried no data of this run (another client publishing to the hub).
	Foreign int64 `json:"foreign"`

	Bursts           int     `json:"bursts"`
	BurstOpened      int64   `json:"burst_opened"`
	BurstFailed      int64   `json:"burst_failed"`
	BurstOpenSeconds float64 `json:"burst_open_seconds_max"`

	WarmupSeconds float64  `json:"warmup_seconds"`
	Trends        []Trend  `json:"trends"`
	Samples       []Sample `json:"samples"`
	SampleErrors  int      `json:"sample_errors"`

	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
}

// Passed reports whether the soak's checks passed.
func (r *SoakResult) Passed() bool { return r.OK }

// Failures lists what went wrong.
func (r *SoakResult) Failures() []string { return r.Problems }

// soakPlan is the deterministic content of a soak: publisher p's j-th update has a topic,
// a privacy and a size computed from (seed, p, j), so that every subscriber can tell which
// updates it must receive without any shared state.
type soakPlan struct {
	seed         uint64
	tag          string // first word of every payload of this run
	prefix       string
	privateShare float64
	minSize      int
	maxSize      int
}

// updateClass is an update's topic (0 … soakTopics-1) and privacy.
type updateClass struct {
	topic   int
	private bool
}

func (c updateClass) index() int {
	if c.private {
		return c.topic + soakTopics
	}
	return c.topic
}

func mix(x uint64) uint64 { // splitmix64's finaliser
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (pl *soakPlan) hash(p int, j int64) uint64 { return mix(pl.seed ^ uint64(p)<<48 ^ uint64(j)) }

func (pl *soakPlan) class(p int, j int64) updateClass {
	h := pl.hash(p, j)
	return updateClass{topic: int(h % soakTopics), private: float64((h>>16)%10_000) < pl.privateShare*10_000}
}

func (pl *soakPlan) size(p int, j int64) int {
	h := mix(pl.hash(p, j))
	return pl.minSize + int(h%uint64(pl.maxSize-pl.minSize+1))
}

// topicName is topic t's URI: PREFIX soak/gG/I.
func (pl *soakPlan) topicName(t int) string {
	return pl.prefix + "soak/g" + strconv.Itoa(t/soakItems) + "/" + strconv.Itoa(t%soakItems)
}

// groupTemplate is the URI template matching the topics of group g.
func (pl *soakPlan) groupTemplate(g int) string {
	return pl.prefix + "soak/g" + strconv.Itoa(g) + "/{item}"
}

// payload is the data of publisher p's j-th update sent at sentNs.
func (pl *soakPlan) payload(p int, j, sentNs int64) string {
	var b strings.Builder
	size := pl.size(p, j)
	b.Grow(size)
	b.WriteString(pl.tag)
	b.WriteByte(' ')
	b.WriteString(payload(p, j, sentNs, 0))
	if b.Len() < size {
		b.WriteByte(' ')
		b.WriteString(strings.Repeat("x", max(size-b.Len(), 0)))
	}
	return b.String()
}

// Selector kinds of soak subscribers.
const (
	selExact    = iota // one topic
	selTemplate        // the URI template of one group: soakItems topics
	selAll             // "*"
)

// Authorisation kinds of soak subscribers: the private updates their JWT allows.
const (
	authNone  = iota // none (the claim names a topic without updates)
	authGroup        // those of one group (a URI template in mercure.subscribe)
	authAll          // all ("*")
)

// soakSub is one churning subscriber and the check of what it received. The check fields
// are written by the subscription's handler and read once the subscription is closed.
type soakSub struct {
	id        int
	hub       string
	sel, auth int
	selArg    int // topic (selExact) or group (selTemplate)
	authArg   int // group (authGroup)
	selectors []string
	token     string

	lastID                                       string
	next                                         []int64 // per publisher: the j after the newest received
	missing                                      map[int64]struct{}
	unique, dup, outOfOrder, unexpected, foreign int64
	firstUnexpected                              string
}

// wants reports whether the subscriber must receive an update of class c.
func (s *soakSub) wants(c updateClass) bool {
	switch s.sel {
	case selExact:
		if c.topic != s.selArg {
			return false
		}
	case selTemplate:
		if c.topic/soakItems != s.selArg {
			return false
		}
	}
	if !c.private {
		return true
	}
	switch s.auth {
	case authAll:
		return true
	case authGroup:
		return c.topic/soakItems == s.authArg
	}
	return false
}

func (s *soakSub) describe() string {
	sel := [...]string{"exact topic " + strconv.Itoa(s.selArg), "template of group " + strconv.Itoa(s.selArg), "*"}[s.sel]
	auth := [...]string{"no private", "private of group " + strconv.Itoa(s.authArg), "all private"}[s.auth]
	return fmt.Sprintf("subscriber %d (%s, %s)", s.id, sel, auth)
}

func key(p int, j int64) int64 { return j<<16 | int64(p) }

// receive checks one event's data; it returns the send time and whether it was a new,
// expected delivery.
func (s *soakSub) receive(pl *soakPlan, data string) (sentNs int64, fresh bool) {
	rest, ok := strings.CutPrefix(data, pl.tag+" ")
	if !ok {
		s.foreign++
		return 0, false
	}
	p, j, sentNs, ok := parsePayload(rest)
	if !ok || p < 0 || p >= len(s.next) || j < 0 {
		s.unexpected++
		if s.firstUnexpected == "" {
			s.firstUnexpected = fmt.Sprintf("unreadable data %.40q", data)
		}
		return 0, false
	}
	if c := pl.class(p, j); !s.wants(c) {
		s.unexpected++
		if s.firstUnexpected == "" {
			s.firstUnexpected = fmt.Sprintf("update %d/%d of topic %d (private %v)", p, j, c.topic, c.private)
		}
		return 0, false
	}
	switch n := s.next[p]; {
	case j >= n:
		for k := n; k < j; k++ {
			if s.wants(pl.class(p, k)) {
				if s.missing == nil {
					s.missing = make(map[int64]struct{})
				}
				s.missing[key(p, k)] = struct{}{}
			}
		}
		s.next[p] = j + 1
	default:
		if _, late := s.missing[key(p, j)]; !late {
			s.dup++
			return sentNs, false
		}
		delete(s.missing, key(p, j))
		s.outOfOrder++
	}
	s.unique++
	return sentNs, true
}

// account adds the subscriber's final state to c: published[p] updates by publisher p, of
// which those in uncertain (failed publishes) may or may not have arrived.
func (s *soakSub) account(c *Check, pl *soakPlan, published []int64, uncertain map[int64]bool) {
	var expected, lost, gotUncertain int64
	for p, np := range published {
		for j := int64(0); j < np; j++ {
			if !s.wants(pl.class(p, j)) {
				continue
			}
			_, missed := s.missing[key(p, j)]
			got := j < s.next[p] && !missed
			if uncertain[key(p, j)] {
				if got {
					gotUncertain++
				}
				continue
			}
			expected++
			if !got {
				lost++
			}
		}
	}
	detail := ""
	if s.firstUnexpected != "" {
		detail = "first unexpected: " + s.firstUnexpected
	}
	c.tally(s.describe(), expected, s.unique-gotUncertain, lost, s.dup, s.outOfOrder, s.unexpected, detail)
}

// soakRun is a running soak.
type soakRun struct {
	cfg     SoakConfig
	pl      *soakPlan
	c       *client.Client
	subs    []*soakSub
	pubTok  string
	noneTok string

	rec, pubRec *recorder
	unique      atomic.Int64
	online      atomic.Int64
	sessions    atomic.Int64
	reconnects  atomic.Int64
	foreign     atomic.Int64

	published      []atomic.Int64
	classCounts    [2 * soakTopics]atomic.Int64 // certain publishes by class
	publishedPriv  atomic.Int64
	publishedBytes atomic.Int64
	publishErrors  atomic.Int64

	mu         sync.Mutex
	uncertain  map[int64]bool
	firstError string // of publishing
	stopped    int    // subscriptions the hub refused
	stopErr    string
	bursting   bool
	burstUntil time.Time
}

func (r *soakRun) noteStopped(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped++
	if r.stopErr == "" {
		r.stopErr = err.Error()
	}
}

// Soak runs the soak scenario. The error is for a run that could not be made; a run whose
// checks failed returns a result with OK false.
func Soak(ctx context.Context, cfg SoakConfig) (*SoakResult, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	pubTok, _, err := cfg.setup()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	pr := newProgress(cfg.Progress)
	defer pr.clear()

	seed := rand.Uint64()
	pl := &soakPlan{seed: seed, tag: "soak-" + strconv.FormatUint(seed>>32, 16), prefix: cfg.Prefix,
		privateShare: cfg.PrivateShare, minSize: cfg.MinSize, maxSize: cfg.MaxSize}
	tr := NewTransport(64, cfg.Insecure)
	defer tr.CloseIdleConnections()
	r := &soakRun{cfg: cfg, pl: pl, pubTok: pubTok, rec: newRecorder(), pubRec: newRecorder(),
		c: &client.Client{HTTPClient: &http.Client{Transport: tr}}, uncertain: map[int64]bool{},
		published: make([]atomic.Int64, cfg.Publishers)}
	if err := r.makeSubscribers(); err != nil {
		return nil, err
	}
	res := &SoakResult{Scenario: "soak", Hub: cfg.Hub, SubscribeHubs: cfg.SubscribeHubs, Subscribers: cfg.Subscribers,
		Publishers: cfg.Publishers, Rate: cfg.Rate, WarmupSeconds: cfg.Warmup.Seconds()}

	// A marker update before anything else: every subscriber starts from its id, so that
	// none misses an update published while it was connecting or before its first event.
	pubClient := &client.Client{HTTPClient: &http.Client{Transport: tr, Timeout: publishRequestTimeout}}
	marker, err := pubClient.Publish(ctx, cfg.Hub, pubTok, client.Update{Topics: []string{pl.prefix + "soak/marker"}, Data: pl.tag + " marker"})
	if err != nil {
		return nil, fmt.Errorf("publishing the marker update: %w", err)
	}
	for _, s := range r.subs {
		s.lastID = marker
	}

	start := time.Now()
	stopChurn := make(chan struct{})
	var subsWG sync.WaitGroup
	sem := make(chan struct{}, cfg.Concurrency)
	for _, s := range r.subs {
		subsWG.Add(1)
		go func() {
			defer subsWG.Done()
			r.churn(ctx, s, sem, stopChurn)
		}()
	}

	sampler := &sampler{metricsURL: cfg.MetricsURL, pid: cfg.PID, storeFiles: cfg.StoreFiles,
		httpClient: &http.Client{Transport: tr}}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	samplesDone := make(chan struct{})
	go func() {
		defer close(samplesDone)
		r.sample(sampleCtx, sampler, start, res)
	}()

	stopBursts := make(chan struct{})
	burstsDone := make(chan struct{})
	go func() {
		defer close(burstsDone)
		r.bursts(ctx, stopBursts, res)
	}()

	pubCtx, stopPub := context.WithDeadline(ctx, start.Add(cfg.Duration))
	pubsDone := make(chan struct{})
	go func() {
		defer close(pubsDone)
		r.publish(ctx, pubCtx, pubClient, start)
	}()

	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	timedOut := false
	for waiting := true; waiting; {
		select {
		case <-pubsDone:
			waiting = false
		case <-ctx.Done():
			timedOut, waiting = true, false
		case <-tick.C:
			pr.show("soak  %s of %s  published %d  delivered %d  online %d", since(start), cfg.Duration, r.totalPublished(), r.unique.Load(), r.online.Load())
		}
	}
	stopPub()
	<-pubsDone
	pubEnd := time.Now()
	close(stopBursts) // a burst under way completes
	<-burstsDone
	close(stopChurn) // subscribers reconnect a last time and stay online

	// Wait for every expected delivery, or until deliveries stall for Grace.
	expected := r.expectedTotal()
	last, lastProgress := r.unique.Load(), time.Now()
	for !timedOut {
		u := r.unique.Load()
		if u != last {
			last, lastProgress = u, time.Now()
		}
		if u >= expected && r.online.Load() == int64(len(r.subs)) {
			time.Sleep(linger) // late duplicates are counted too
			break
		}
		if time.Since(lastProgress) > cfg.Grace {
			break
		}
		pr.show("delivering  %d/%d events (%.0f%%)  %s", u, expected, 100*float64(u)/float64(max(expected, 1)), since(start))
		select {
		case <-ctx.Done():
			timedOut = true
		case <-tick.C:
		}
	}
	stopSampling()
	<-samplesDone
	cancel() // closes every subscription
	subsWG.Wait()

	r.report(res, start, pubEnd, timedOut)
	return res, nil
}

// defaults checks cfg and fills in its zero values.
func (cfg *SoakConfig) defaults() error {
	if cfg.Subscribers <= 0 || cfg.Rate <= 0 {
		return errors.New("soak needs at least one subscriber and a publish rate")
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultSoakDuration
	}
	if cfg.Duration > MaxSoakDuration {
		return fmt.Errorf("soak duration %s is over the %s bound", cfg.Duration, MaxSoakDuration)
	}
	if cfg.ChurnMin <= 0 && cfg.ChurnMax <= 0 {
		cfg.ChurnMin, cfg.ChurnMax = 5*time.Second, 60*time.Second
	}
	if cfg.ChurnMax < cfg.ChurnMin {
		return fmt.Errorf("churn maximum %s is below its minimum %s", cfg.ChurnMax, cfg.ChurnMin)
	}
	cfg.Publishers = max(cfg.Publishers, 1)
	if cfg.Publishers > 1<<15 {
		return errors.New("too many publishers")
	}
	if cfg.MinSize <= 0 && cfg.MaxSize <= 0 {
		cfg.MinSize, cfg.MaxSize = 200, 2000
	}
	if cfg.MaxSize < cfg.MinSize {
		return fmt.Errorf("size maximum %d is below its minimum %d", cfg.MaxSize, cfg.MinSize)
	}
	if cfg.PrivateShare < 0 || cfg.PrivateShare > 1 {
		return fmt.Errorf("private share %g is not between 0 and 1", cfg.PrivateShare)
	}
	if cfg.BurstHold <= 0 {
		cfg.BurstHold = DefaultBurstHold
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = DefaultSampleEvery
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = cfg.Duration / 5
	}
	limits := map[string]float64{}
	for k, v := range DefaultGrowthLimits {
		limits[k] = v
	}
	for k, v := range cfg.Limits {
		limits[k] = v
	}
	cfg.Limits = limits
	if need := cfg.Duration + cfg.Grace + 2*time.Minute; cfg.Timeout < need {
		cfg.Timeout = need
	}
	return nil
}

// makeSubscribers deals the selector and authorisation kinds over the subscribers so that
// every combination occurs, and mints each one's JWT.
func (r *soakRun) makeSubscribers() error {
	cfg, pl := &r.cfg, r.pl
	signKey := firstNonEmpty(cfg.SubscriberKey, cfg.Key)
	ttl := cfg.Timeout + time.Hour
	mint := func(subscribe []string) (string, error) {
		if signKey == "" {
			return cfg.SubscriberToken, nil // a ready-made token (or anonymous)
		}
		return Mint(signKey, cfg.Alg, nil, subscribe, ttl)
	}
	var err error
	tokens := map[string]string{}
	token := func(claim string) string {
		if t, ok := tokens[claim]; ok || err != nil {
			return t
		}
		var t string
		t, err = mint([]string{claim})
		tokens[claim] = t
		return t
	}
	// Subscribers without private rights still present a JWT (a hub may refuse anonymous
	// ones); its claim names a topic no update has.
	r.noneTok = token(pl.prefix + "soak/nothing")
	for i := range cfg.Subscribers {
		s := &soakSub{id: i, sel: i % 3, auth: (i / 3) % 3, selArg: (i / 9) % soakTopics, authArg: (i / 7) % soakGroups,
			next: make([]int64, cfg.Publishers)}
		hub := cfg.Hub
		if n := len(cfg.SubscribeHubs); n > 0 {
			hub = cfg.SubscribeHubs[i%n]
		}
		s.hub = hub
		switch s.sel {
		case selExact:
			s.selectors = []string{pl.topicName(s.selArg)}
		case selTemplate:
			s.selArg %= soakGroups
			s.selectors = []string{pl.groupTemplate(s.selArg)}
		default:
			s.selectors = []string{"*"}
		}
		switch s.auth {
		case authNone:
			s.token = r.noneTok
		case authGroup:
			s.token = token(pl.groupTemplate(s.authArg))
		default:
			s.token = token("*")
		}
		r.subs = append(r.subs, s)
	}
	if err != nil {
		return fmt.Errorf("minting subscriber tokens: %w", err)
	}
	return nil
}

// churn runs subscriber s: online for a random while, offline for a random while, again,
// until stop is closed; then it stays online until ctx ends.
func (r *soakRun) churn(ctx context.Context, s *soakSub, sem chan struct{}, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(r.pl.seed, uint64(s.id)))
	between := func(lo, hi time.Duration) time.Duration {
		if hi <= lo {
			return lo
		}
		return lo + time.Duration(rng.Int64N(int64(hi-lo)))
	}
	// The first connections start spread over the first churn interval, not all at once.
	first := true
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		connected := make(chan struct{})
		var once sync.Once
		sub := r.c.Subscribe(ctx, s.hub, client.SubscribeOptions{
			Topics: s.selectors, Token: s.token, LastEventID: s.lastID,
			RetryDelay: r.cfg.ReconnectDelay, MaxRetryDelay: r.cfg.MaxRetryDelay,
			OnConnect: func(client.Connection) { once.Do(func() { close(connected) }) },
			Handler: func(ev client.Event) {
				sent, fresh := s.receive(r.pl, ev.Data)
				s.lastID = ev.ID
				if fresh {
					r.unique.Add(1)
					r.rec.record(s.id, time.Since(time.Unix(0, sent)).Microseconds())
				}
			},
		})
		select {
		case <-connected:
		case <-sub.Done():
		case <-ctx.Done():
		}
		<-sem
		r.sessions.Add(1)
		r.online.Add(1)
		online := between(r.cfg.ChurnMin, r.cfg.ChurnMax)
		if first {
			online = between(0, r.cfg.ChurnMax)
			first = false
		}
		t := time.NewTimer(online)
		final := false
		select {
		case <-t.C:
		case <-stop:
			final = true
		case <-sub.Done():
		case <-ctx.Done():
		}
		t.Stop()
		if final {
			select {
			case <-sub.Done():
			case <-ctx.Done():
			}
		}
		err := sub.Close()
		r.online.Add(-1)
		r.reconnects.Add(int64(sub.Reconnects()))
		if err != nil {
			r.noteStopped(fmt.Errorf("%s: %w", s.describe(), err))
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-stop:
			continue // back online at once, for the final deliveries
		default:
		}
		t = time.NewTimer(between(0, r.cfg.Offline))
		select {
		case <-t.C:
		case <-stop:
		case <-ctx.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// publish runs the paced publishers until pace ends; ctx bounds each publish, so that the
// end of the pacing does not cut one short.
func (r *soakRun) publish(ctx, pace context.Context, c *client.Client, start time.Time) {
	interval := float64(time.Second) / r.cfg.Rate
	P := r.cfg.Publishers
	var wg sync.WaitGroup
	for p := range P {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := int64(0); ; j++ {
				due := start.Add(time.Duration(float64(j*int64(P)+int64(p)) * interval))
				if !sleepUntil(pace, due) || pace.Err() != nil {
					return
				}
				cl := r.pl.class(p, j)
				sent := time.Now()
				data := r.pl.payload(p, j, sent.UnixNano())
				_, err := c.Publish(ctx, r.cfg.Hub, r.pubTok, client.Update{
					Topics: []string{r.pl.topicName(cl.topic)}, Data: data, Private: cl.private})
				r.published[p].Store(j + 1)
				if err != nil {
					r.publishErrors.Add(1)
					r.mu.Lock()
					r.uncertain[key(p, j)] = true
					if r.firstError == "" {
						r.firstError = err.Error()
					}
					r.mu.Unlock()
					continue
				}
				r.pubRec.record(p, time.Since(sent).Microseconds())
				r.classCounts[cl.index()].Add(1)
				r.publishedBytes.Add(int64(len(data)))
				if cl.private {
					r.publishedPriv.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

func (r *soakRun) totalPublished() int64 {
	var n int64
	for i := range r.published {
		n += r.published[i].Load()
	}
	return n
}

// expectedTotal is how many deliveries the successful publishes call for.
func (r *soakRun) expectedTotal() int64 {
	var n int64
	for _, s := range r.subs {
		for ci := range r.classCounts {
			c := updateClass{topic: ci % soakTopics, private: ci >= soakTopics}
			if s.wants(c) {
				n += r.classCounts[ci].Load()
			}
		}
	}
	return n
}

// sample reads the hub's resources every SampleEvery until ctx ends.
func (r *soakRun) sample(ctx context.Context, s *sampler, start time.Time, res *SoakResult) {
	var out *sampleWriter
	if r.cfg.SamplesOut != nil {
		var err error
		if out, err = newSampleWriter(r.cfg.SamplesOut); err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("writing the samples: %v", err))
			out = nil
		}
	}
	take := func() {
		v, err := s.read(ctx)
		if err != nil && ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		burst := r.bursting || time.Now().Before(r.burstUntil)
		r.mu.Unlock()
		if err != nil {
			res.SampleErrors++
		}
		smp := Sample{Seconds: time.Since(start).Seconds(), Values: v, Burst: burst, Online: r.online.Load(), Delivered: r.unique.Load()}
		res.Samples = append(res.Samples, smp)
		if out != nil {
			if err := out.write(smp); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("writing the samples: %v", err))
				out = nil
			}
		}
	}
	take()
	t := time.NewTicker(r.cfg.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			take()
			return
		case <-t.C:
			take()
		}
	}
}

// bursts opens and closes BurstConnections every BurstEvery until stop is closed (a burst
// under way completes) or ctx ends.
func (r *soakRun) bursts(ctx context.Context, stop <-chan struct{}, res *SoakResult) {
	if r.cfg.BurstEvery <= 0 || r.cfg.BurstConnections <= 0 {
		return
	}
	t := time.NewTicker(r.cfg.BurstEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.bursting = true
		r.mu.Unlock()
		opened, failed, secs := r.burst(ctx)
		r.mu.Lock()
		r.bursting = false
		r.burstUntil = time.Now().Add(min(burstSettle, r.cfg.BurstEvery/4))
		r.mu.Unlock()
		if ctx.Err() != nil {
			return // cut by the run's timeout: not counted
		}
		res.Bursts++
		res.BurstOpened += opened
		res.BurstFailed += failed
		res.BurstOpenSeconds = max(res.BurstOpenSeconds, secs)
	}
}

// burst opens BurstConnections subscriptions to a topic nobody publishes to, waits until each
// is connected (or burstOpenTimeout), holds them BurstHold and closes them.
func (r *soakRun) burst(ctx context.Context) (opened, failed int64, seconds float64) {
	n := r.cfg.BurstConnections
	tr := NewTransport(2, r.cfg.Insecure)
	defer tr.CloseIdleConnections()
	c := &client.Client{HTTPClient: &http.Client{Transport: tr}}
	openCtx, cancel := context.WithTimeout(ctx, burstOpenTimeout)
	defer cancel()
	start := time.Now()
	subs := make([]*client.Subscription, 0, n)
	var wg sync.WaitGroup
	var ok, bad atomic.Int64
	sem := make(chan struct{}, r.cfg.Concurrency)
	for i := range n {
		hub := r.cfg.Hub
		if h := r.cfg.SubscribeHubs; len(h) > 0 {
			hub = h[i%len(h)]
		}
		select {
		case sem <- struct{}{}:
		case <-openCtx.Done():
		}
		if openCtx.Err() != nil {
			break
		}
		connected := make(chan struct{})
		var once sync.Once
		sub := c.Subscribe(ctx, hub, client.SubscribeOptions{
			Topics: []string{r.pl.prefix + "soak/burst"}, Token: r.noneTok, Handler: func(client.Event) {},
			RetryDelay: r.cfg.ReconnectDelay, MaxRetryDelay: r.cfg.MaxRetryDelay,
			OnConnect: func(client.Connection) { once.Do(func() { close(connected) }) },
		})
		subs = append(subs, sub)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			select {
			case <-connected:
				ok.Add(1)
			case <-sub.Done():
				bad.Add(1)
			case <-openCtx.Done():
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	seconds = time.Since(start).Seconds()
	bad.Add(int64(n - len(subs)))
	t := time.NewTimer(r.cfg.BurstHold)
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	for _, s := range subs {
		_ = s.Close()
	}
	return ok.Load(), bad.Load(), seconds
}

// report fills res once everything has stopped.
func (r *soakRun) report(res *SoakResult, start, pubEnd time.Time, timedOut bool) {
	published := make([]int64, len(r.published))
	for i := range published {
		published[i] = r.published[i].Load()
		res.Published += published[i]
	}
	res.Published -= r.publishErrors.Load()
	res.PublishErrors = r.publishErrors.Load()
	res.PublishedPrivate = r.publishedPriv.Load()
	res.PublishedBytes = r.publishedBytes.Load()
	res.PublishesPerSecond = rate(res.Published, pubEnd.Sub(start))
	res.PublishLatency = summarize(r.pubRec.merged())
	res.Latency = summarize(r.rec.merged())
	res.Sessions = r.sessions.Load()
	res.Reconnects = r.reconnects.Load()
	res.Seconds = time.Since(start).Seconds()
	for _, s := range r.subs {
		s.account(&res.Check, r.pl, published, r.uncertain)
		res.Foreign += s.foreign
	}
	res.Trends = trends(res.Samples, r.cfg.Warmup.Seconds(), r.cfg.Limits)

	if timedOut {
		res.Problems = append(res.Problems, fmt.Sprintf("%s (%s)", errTimeout, r.cfg.Timeout))
	}
	if res.PublishErrors > 0 && !r.cfg.TolerateUnavailable {
		res.Problems = append(res.Problems, fmt.Sprintf("%d publish errors: %s", res.PublishErrors, r.firstError))
	}
	if r.stopped > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d subscriptions refused: %s", r.stopped, r.stopErr))
	}
	if res.BurstFailed > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("%d of %d burst connections did not open", res.BurstFailed, res.BurstFailed+res.BurstOpened))
	}
	res.Problems = append(res.Problems, res.Check.problems()...)
	for _, t := range res.Trends {
		if t.Growing {
			res.Problems = append(res.Problems, fmt.Sprintf("%s keeps growing: %s per hour (± %s) after the warm-up, over the %s limit",
				t.Resource, formatQty(t.Resource, t.SlopePerHour), formatQty(t.Resource, t.StdErrPerHour), formatQty(t.Resource, t.LimitPerHour)))
		}
	}
	res.OK = len(res.Problems) == 0
}

// formatQty writes a value of a resource in its unit.
func formatQty(resource string, v float64) string {
	switch resource {
	case ResRSS, ResHeap, ResStore:
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.1f", v)
}

// WriteTable writes the soak's report: the load, the checks, and each resource's trend.
func (r *SoakResult) WriteTable(w io.Writer) error {
	hubs := r.Hub
	if len(r.SubscribeHubs) > 0 {
		hubs += "  subscribers on " + strings.Join(r.SubscribeHubs, ", ")
	}
	t := &table{title: fmt.Sprintf("soak  %s", hubs)}
	t.add("publishes", "%d updates (%d private, %.1f MiB of data) by %d publishers in %.0fs: %.1f/s, %d errors",
		r.Published, r.PublishedPrivate, float64(r.PublishedBytes)/(1<<20), r.Publishers, r.Seconds, r.PublishesPerSecond, r.PublishErrors)
	t.latency("publish latency", r.PublishLatency)
	t.add("subscribers", "%d churning: %d connections by themselves, %d reconnects after the hub ended a stream or refused an attempt", r.Subscribers, r.Sessions, r.Reconnects)
	t.add("delivered", "%d of %d expected deliveries checked", r.Check.Delivered, r.Check.Expected)
	t.latency("latency", r.Latency)
	t.add("lost/dup/order", "%d lost, %d duplicated, %d out of order, %d unexpected (%d foreign events ignored)",
		r.Check.Lost, r.Check.Duplicated, r.Check.OutOfOrder, r.Check.Unexpected, r.Foreign)
	if r.Bursts > 0 {
		t.add("bursts", "%d: %d connections opened, %d failed (slowest burst opened in %.1fs)", r.Bursts, r.BurstOpened, r.BurstFailed, r.BurstOpenSeconds)
	}
	t.add("samples", "%d (%d with an unreachable source), warm-up %.0fs left out of the fit", len(r.Samples), r.SampleErrors, r.WarmupSeconds)
	for _, tr := range r.Trends {
		verdict := "flat"
		if tr.Growing {
			verdict = "GROWING"
		}
		t.add(tr.Resource, "start %s  end %s  min %s  max %s  slope %s/h ± %s over %d samples (limit %s/h): %s",
			formatQty(tr.Resource, tr.Start), formatQty(tr.Resource, tr.End), formatQty(tr.Resource, tr.Min), formatQty(tr.Resource, tr.Max),
			formatQty(tr.Resource, tr.SlopePerHour), formatQty(tr.Resource, tr.StdErrPerHour), tr.Fitted, formatQty(tr.Resource, tr.LimitPerHour), verdict)
	}
	t.verdict(r.OK, r.Problems, "every subscriber got exactly its updates, once, in order, across reconnects; no resource kept growing")
	return t.write(w)
}
