// Package loglimit writes log lines that clients can cause without letting them flood the log:
// at most one line per key per interval, each carrying how many lines were held back since the
// previous one. Counting what happened exactly is the job of metrics; the log keeps a sample
// with the details of one occurrence.
//
// Start at Limiter.Log.
package loglimit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Limiter. Zero values take the defaults.
type Config struct {
	// Logger receives the lines. Nil discards them.
	Logger *slog.Logger
	// Every is the shortest time between two lines of one key. Default one second.
	Every time.Duration
	// Now is the clock; nil is time.Now. Tests give their own.
	Now func() time.Time
}

// Limiter writes at most one line per key per Config.Every. It is safe for concurrent use.
// Keys must come from a small fixed set (categories, never client input): each key keeps a
// few words of state for the Limiter's life.
type Limiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*window // guarded by mu
}

// window is one key's state: when its last line was written and what was held back since.
type window struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter for cfg.
func New(cfg Config) *Limiter {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{log: cfg.Logger, every: cfg.Every, now: cfg.Now, keys: make(map[string]*window)}
}

// Log writes msg with args at level, plus suppressed=N (the lines of key held back since the
// last one written), unless a line of key was written less than Every ago: then it only counts
// this one. It reports whether the line was written. Nothing is counted while level is
// disabled.
func (l *Limiter) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) bool {
	if !l.log.Enabled(ctx, level) {
		return false
	}
	now := l.now()
	l.mu.Lock()
	w := l.keys[key]
	if w == nil {
		w = &window{}
		l.keys[key] = w
	} else if now.Sub(w.last) < l.every {
		w.suppressed++
		l.mu.Unlock()
		return false
	}
	suppressed := w.suppressed
	w.last, w.suppressed = now, 0
	l.mu.Unlock()
	// Cap args so that append copies rather than writing into the caller's array.
	l.log.Log(ctx, level, msg, append(args[:len(args):len(args)], slog.Int("suppressed", suppressed))...)
	return true
}
