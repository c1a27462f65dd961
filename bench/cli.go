package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhub/herald/bench/floorhub"
)

// ErrFailed is returned, wrapped with what went wrong, by Command when a run's checks failed.
var ErrFailed = errors.New("the run failed its checks")

// Usage describes the CLI.
const Usage = `Usage: herald bench SCENARIO [flags]

Load any Mercure hub on this machine and check what it delivers.

Scenarios:
  fanout    S subscribers over T topics, U updates from P publishers: events/s, latency
  idle      open N connections and hold them: connections/s, hub memory per connection
  catchup   publish M updates, then read them back with Last-Event-ID: updates/s
  publish   C concurrent publishers: publishes/s, latency
  flood     subscribers of many URI templates beside exact ones: the exact ones' latency
  soak      churning subscribers, paced publishes and connection bursts for --duration:
            every delivery checked, the hub's memory, goroutines, files and store sampled
  floorhub  run the floor hub, a bare broadcaster to compare with (--listen ADDR)

"herald bench SCENARIO --help" lists a scenario's flags. Every run is bounded by --timeout,
prints a table (or JSON with --json), and exits non-zero when its checks failed: a lost,
duplicated or reordered update, a refused connection, a publish error. JWTs are minted
from --key (default $MERCURE_PUBLISHER_JWT_KEY). Only loopback hubs unless --allow-remote.
`

// Command runs `herald bench ARGS`. A run whose checks failed returns an error wrapping
// ErrFailed after printing its report; flag.ErrHelp is returned for --help.
func Command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return errors.New("give a scenario: fanout, idle, catchup, publish, flood or soak")
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return flag.ErrHelp
	case "worker": // hidden: a worker process of --procs
		return RunWorker(ctx, os.Stdin, stdout)
	case "floorhub":
		return floorHubCommand(ctx, args[1:], stdout, stderr)
	case "fanout", "idle", "catchup", "publish", "flood", "soak":
	default:
		fmt.Fprint(stderr, Usage)
		return fmt.Errorf("unknown scenario %q", args[0])
	}
	scenario := args[0]
	fs := flag.NewFlagSet("herald bench "+scenario, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	var jsonOut bool
	fs.StringVar(&o.Hub, "hub", DefaultHub, "the hub's URL")
	fs.StringVar(&o.Key, "key", "", "HMAC key to mint JWTs with (default $MERCURE_PUBLISHER_JWT_KEY, then $MERCURE_JWT_KEY)")
	fs.StringVar(&o.SubscriberKey, "subscriber-key", "", "HMAC key of subscriber JWTs (default $MERCURE_SUBSCRIBER_JWT_KEY, then --key)")
	fs.StringVar(&o.Alg, "alg", "HS256", "HMAC algorithm of the minted JWTs")
	fs.StringVar(&o.Token, "token", "", "publisher JWT to use instead of minting one")
	fs.StringVar(&o.SubscriberToken, "subscriber-token", "", "subscriber JWT to use instead of minting one (default --token)")
	fs.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "bound of the whole run")
	fs.DurationVar(&o.ReconnectDelay, "reconnect-delay", DefaultReconnectDelay, "subscribers' reconnection delay (the hub's retry field replaces it)")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	fs.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a hub that is not on loopback")
	fs.Func("subscribe-hubs", "comma-separated hub URLs to spread the subscribers over (nodes of a cluster); publishers use --hub", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				o.SubscribeHubs = append(o.SubscribeHubs, h)
			}
		}
		return nil
	})
	fs.StringVar(&o.Prefix, "prefix", "", "start of the topics the run uses (default a fresh https://bench.herald.invalid/RANDOM/)")
	fs.BoolVar(&o.Insecure, "insecure", false, "skip TLS certificate verification")
	fs.BoolVar(&o.HTTP2, "http2", false, "subscribers speak HTTP/2 (an https hub), one connection per subscriber unless --streams")
	fs.IntVar(&o.Streams, "streams", 1, "with --http2, subscribers sharing one connection (EventSources of one page)")
	fs.StringVar(&o.Dialect, "dialect", Dialect0x, "protocol of the subscribers and minted tokens: 0.x (topic=, mercure claim) or draft-08 (match=, access tokens)")
	fs.StringVar(&o.Issuer, "issuer", DefaultIssuer, "with --dialect draft-08: iss of the minted access tokens")
	fs.BoolVar(&o.Resume, "resume", false, "subscribers resume TLS sessions from the hub's tickets instead of full handshakes")
	cpuProfile := fs.String("cpuprofile", "", "write this process's CPU profile to FILE (is the load tool the limit?)")

	var run func(context.Context) (Result, error)
	var (
		samplesFile string
		samplesOut  io.Writer
	)
	switch scenario {
	case "fanout":
		var c FanoutConfig
		fs.IntVar(&c.Subscribers, "subscribers", 100, "subscribers S")
		fs.IntVar(&c.Topics, "topics", 10, "topics T (subscriber i listens to topic i mod T)")
		fs.IntVar(&c.Updates, "updates", 1000, "updates U")
		fs.IntVar(&c.Publishers, "publishers", 1, "concurrent publishers P")
		fs.Float64Var(&c.Rate, "rate", 0, "updates per second overall (0 = as fast as possible)")
		fs.DurationVar(&c.Duration, "duration", 0, "stop publishing after this long (0 = publish all updates)")
		fs.IntVar(&c.Size, "size", 0, "pad each update's data to this many bytes")
		fs.BoolVar(&c.Private, "private", false, "publish private updates")
		fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, "subscriptions being opened at once")
		fs.DurationVar(&c.Grace, "grace", DefaultGrace, "how long deliveries may stall after publishing before giving up")
		fs.IntVar(&o.Procs, "procs", 1, "worker processes holding the subscribers")
		run = func(ctx context.Context) (Result, error) {
			c.Options = o
			return Fanout(ctx, c)
		}
	case "idle":
		var c IdleConfig
		fs.IntVar(&c.Connections, "connections", 1000, "connections N")
		fs.IntVar(&c.Topics, "topics", 1, "topics the connections are spread over")
		fs.IntVar(&c.Concurrency, "concurrency", DefaultConcurrency, "connections being opened at once")
		fs.DurationVar(&c.Hold, "hold", 5*time.Second, "how long to hold the connections")
		fs.IntVar(&c.PID, "pid", 0, "the hub's process id, to read its resident memory")
		fs.DurationVar(&c.Settle, "settle", 2*time.Second, "wait after closing before reading the memory again")
		fs.IntVar(&o.Procs, "procs", 1, "worker processes holding the connections")
		run = func(ctx context.Context) (Result, error) {
			c.Options = o
			return Idle(ctx, c)
		}
	case "catchup":
		var c CatchupConfig
		fs.IntVar(&c.Updates, "updates", 1000, "updates M to publish then read back")
		fs.IntVar(&c.Publishers, "publishers", 1, "concurrent publishers")
		fs.BoolVar(&c.Earliest, "earliest", false, `send Last-Event-ID "earliest" rather than the id of the update before the M`)
		fs.IntVar(&c.Size, "size", 0, "pad each update's data to this many bytes")
		fs.DurationVar(&c.Grace, "grace", DefaultGrace, "how long the catch-up may stall before giving up")
		run = func(ctx context.Context) (Result, error) {
			c.Options = o
			return Catchup(ctx, c)
		}
	case "publish":
		var c PublishConfig
		fs.IntVar(&c.Updates, "updates", 10_000, "updates U")
		fs.IntVar(&c.Publishers, "publishers", 8, "concurrent publishers C")
		fs.IntVar(&c.Topics, "topics", 1, "topics the updates are spread over")
		fs.DurationVar(&c.Duration, "duration", 0, "stop publishing after this long")
		fs.IntVar(&c.Size, "size", 0, "pad each update's data to this many bytes")
		run = func(ctx context.Context) (Result, error) {
			c.Options = o
			return Publish(ctx, c)
		}
	case "flood":
		run = floodFlags(fs, &o)
	case "soak":
		run = soakFlags(fs, &o, &samplesFile, &samplesOut)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.Key == "" {
		o.Key = firstNonEmpty(getenv("MERCURE_PUBLISHER_JWT_KEY"), getenv("MERCURE_JWT_KEY"))
	}
	if o.SubscriberKey == "" {
		o.SubscriberKey = getenv("MERCURE_SUBSCRIBER_JWT_KEY")
	}
	if o.Key == "" && o.Token == "" {
		fmt.Fprintln(stderr, "herald bench: no --key, $MERCURE_PUBLISHER_JWT_KEY or --token: requests go without a JWT")
	}
	if isTerminal(stderr) {
		o.Progress = stderr
	}
	o.Stderr = stderr
	RaiseFileLimit()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	if samplesFile != "" { // written as the soak goes
		f, err := os.Create(samplesFile)
		if err != nil {
			return fmt.Errorf("samples: %w", err)
		}
		defer f.Close()
		samplesOut = f
	}
	res, err := run(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if !res.Passed() {
		return fmt.Errorf("%w: %s", ErrFailed, summary(res))
	}
	return nil
}

// floorHubCommand runs the floor hub until ctx ends or SIGINT/SIGTERM.
func floorHubCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald bench floorhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3001", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	RaiseFileLimit()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	h := floorhub.New()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "floor hub: http://%s%s (no auth, no history, exact topics)\n", ln.Addr(), floorhub.Path)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	h.Close()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	<-done
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
