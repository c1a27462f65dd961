package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultChromium is where Debian's chromium package installs the browser.
const DefaultChromium = "/usr/bin/chromium"

// chromiumMissing is the message of a test that cannot find the browser.
const chromiumMissing = "chromium not found: the test command installs it with apt-get install -y chromium"

// Chromium returns the path of the Chromium binary the browser tests drive: $HERALD_CHROMIUM
// when set, else Debian's /usr/bin/chromium.
//
// Without it a developer's run skips the test (a laptop need not have a browser), but CI (the
// CI environment variable is non-empty) fails it: CI installs chromium itself, so a missing
// binary there means a broken setup, and a silent skip would hide the browser tests for good.
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("HERALD_CHROMIUM")
	if path == "" {
		path = DefaultChromium
	}
	info, err := os.Stat(path)
	switch {
	case err == nil && info.IsDir():
		err = errors.New("is a directory")
	case err == nil && info.Mode().Perm()&0o111 == 0:
		err = errors.New("is not executable")
	case err == nil:
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (%s: %v)", chromiumMissing, path, err)
	}
	t.Skipf("%s (%s: %v)", chromiumMissing, path, err)
	return "" // unreachable: Skipf ends the test
}

// browserFlags are the command-line switches of every test browser. Headless and without
// sandbox (tests run as root in containers); no GPU; no QUIC, background networking,
// component updates or sync, so the browser talks to nothing but the test's own servers and
// starts fast; /dev/shm is not used because it is tiny in many containers.
var browserFlags = []chromedp.ExecAllocatorOption{
	chromedp.Headless,
	chromedp.NoSandbox,
	chromedp.DisableGPU,
	chromedp.NoFirstRun,
	chromedp.NoDefaultBrowserCheck,
	chromedp.Flag("disable-quic", true),
	chromedp.Flag("disable-background-networking", true),
	chromedp.Flag("disable-component-update", true),
	chromedp.Flag("disable-sync", true),
	chromedp.Flag("disable-dev-shm-usage", true),
	chromedp.Flag("disable-extensions", true),
	chromedp.Flag("disable-breakpad", true),
	chromedp.WindowSize(1024, 768),
}

// browserCloseTimeout bounds the graceful close of the browser at cleanup; past it the
// process is killed.
const browserCloseTimeout = 10 * time.Second

// Browser starts a headless Chromium (see Chromium for when the test is skipped instead) with
// a fresh profile in t.TempDir(), and returns a chromedp context bound to its first tab. Use
// it with chromedp.Run and chromedp.Do; to bound one step, derive a context with a timeout
// from the returned one (a timeout on the returned context itself would not be needed: the
// browser is already started).
//
// Why a helper: the browser is a separate process tree, and a test must not leave it (or its
// goroutines, or files in the profile) behind. At t.Cleanup the browser is asked to close,
// then killed if it has not exited within 10 s; cleanup returns only once the process has
// been reaped, every leftover child process of the profile is gone and chromedp's goroutines
// have ended, so goleak-style checks and t.TempDir's removal see a clean state. The browser's
// own output is logged when the test has failed, to explain crashes.
//
// extra adds command-line switches, such as a certificate to accept.
func Browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := Chromium(t)
	profile := t.TempDir()

	out := &lockedBuffer{}
	logs := &testLog{t: t}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(out),
	}, browserFlags...)
	opts = append(opts, extra...)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(logs.logf),
		chromedp.WithErrorf(logs.errorf),
	)

	// closeBrowser closes the browser gracefully, kills it after browserCloseTimeout, and
	// waits until the process, its children and chromedp's goroutines are all gone.
	closeBrowser := func() {
		closed := make(chan error, 1)
		go func() { closed <- chromedp.Cancel(ctx) }()
		select {
		case err := <-closed:
			if err != nil && !errors.Is(err, context.Canceled) {
				logs.logf("testkit: closing the browser: %v", err)
			}
		case <-time.After(browserCloseTimeout):
			logs.logf("testkit: the browser did not close within %v; killing it", browserCloseTimeout)
			cancel() // kills the process (exec.CommandContext)
			<-closed
		}
		cancel()
		allocCancel() // waits for the allocator: process reaped, output copied
		if n := killLeftovers(profile); n > 0 {
			logs.logf("testkit: killed %d leftover browser processes", n)
		}
		if t.Failed() {
			if s := strings.TrimSpace(out.String()); s != "" {
				t.Logf("browser output:\n%s", s)
			}
		}
		logs.stop()
	}

	// Start the browser now, on the un-timed context, so that its life is tied to the test
	// and not to the context of the caller's first action.
	if err := chromedp.Do(ctx); err != nil {
		closeBrowser()
		t.Fatalf("testkit: starting %s: %v\nbrowser output:\n%s", exe, err, out.String())
	}
	t.Cleanup(closeBrowser)
	return ctx
}

// killLeftovers kills the processes started with --user-data-dir=profile that outlive the
// main browser process (zygote, utility processes), polling until none has been seen for a few
// rounds. It returns how many it killed. It reads /proc, so it does nothing off Linux.
func killLeftovers(profile string) int {
	want := []byte("--user-data-dir=" + profile)
	killed, quiet := 0, 0
	for deadline := time.Now().Add(5 * time.Second); quiet < 3 && time.Now().Before(deadline); {
		procs, err := os.ReadDir("/proc")
		if err != nil {
			return killed
		}
		found := 0
		for _, p := range procs {
			var pid int
			if _, err := fmt.Sscanf(p.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + p.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					if proc, err := os.FindProcess(pid); err == nil && proc.Kill() == nil {
						found++
					}
					break
				}
			}
		}
		killed += found
		if found == 0 {
			quiet++
		} else {
			quiet = 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return killed
}

// testLog forwards chromedp's log lines to t.Logf until stop, and drops them afterwards: a
// goroutine of the driver that logs after the test has returned must not make testing panic.
type testLog struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

func (l *testLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf(format, args...)
	}
}

func (l *testLog) errorf(format string, args ...any) {
	l.logf("chromedp error: "+format, args...)
}

func (l *testLog) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// lockedBuffer is a bytes.Buffer safe for the allocator's output goroutine and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
