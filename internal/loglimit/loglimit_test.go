package loglimit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhub/herald/internal/loglimit"
)

// clock is a manual clock for the limiter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// newLimiter returns a limiter that writes text lines without time into buf, on a manual clock.
func newLimiter(buf *bytes.Buffer, level slog.Level) (*loglimit.Limiter, *clock) {
	c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}})
	return loglimit.New(loglimit.Config{Logger: slog.New(h), Every: time.Second, Now: c.Now}), c
}

func TestOneLinePerKeyPerInterval(t *testing.T) {
	var buf bytes.Buffer
	l, c := newLimiter(&buf, slog.LevelInfo)
	ctx := context.Background()
	log := func(key string, n int) {
		l.Log(ctx, slog.LevelInfo, key, "refused", "n", n)
	}
	log("a", 1) // written
	log("a", 2) // held back
	log("b", 3) // another key: written
	c.advance(999 * time.Millisecond)
	log("a", 4) // still within the second: held back
	c.advance(time.Millisecond)
	log("a", 5) // written, carrying the two held back
	log("a", 6) // held back
	c.advance(10 * time.Second)
	log("a", 7) // written with the one held back
	log("b", 8) // written with none

	want := `level=INFO msg=refused n=1 suppressed=0
level=INFO msg=refused n=3 suppressed=0
level=INFO msg=refused n=5 suppressed=2
level=INFO msg=refused n=7 suppressed=1
level=INFO msg=refused n=8 suppressed=0
`
	if got := buf.String(); got != want {
		t.Errorf("log =\n%s\nwant\n%s", got, want)
	}
}

func TestDisabledLevelCountsNothing(t *testing.T) {
	var buf bytes.Buffer
	l, c := newLimiter(&buf, slog.LevelWarn)
	ctx := context.Background()
	for range 5 {
		if l.Log(ctx, slog.LevelInfo, "a", "refused") {
			t.Fatal("a disabled level was written")
		}
	}
	c.advance(time.Second)
	if !l.Log(ctx, slog.LevelWarn, "a", "refused") {
		t.Fatal("an enabled level was held back")
	}
	if got, want := buf.String(), "level=WARN msg=refused suppressed=0\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

// Concurrent callers on one key within one interval write exactly one line, and the next line
// accounts for every other call.
func TestConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l, c := newLimiter(&buf, slog.LevelInfo)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if l.Log(ctx, slog.LevelInfo, "k", "refused") {
					mu.Lock()
					written++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if written != 1 {
		t.Fatalf("%d lines written, want 1", written)
	}
	c.advance(time.Second)
	l.Log(ctx, slog.LevelInfo, "k", "refused")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || lines[1] != "level=INFO msg=refused suppressed=7999" {
		t.Errorf("lines = %q, want a second line with suppressed=7999", lines)
	}
}
