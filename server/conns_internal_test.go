package server

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// TestEverySecond: of a burst of warnings, the first is logged; the next line, a second later,
// counts the ones held back and itself.
func TestEverySecond(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	var e everySecond
	for range 3 {
		e.warn(log, "accepting a connection failed", "listener", "hub")
	}
	e.mu.Lock()
	e.last = e.last.Add(-time.Second) // as if a second had passed
	e.mu.Unlock()
	e.warn(log, "accepting a connection failed", "listener", "hub")
	want := "level=WARN msg=\"accepting a connection failed\" listener=hub count=1\n" +
		"level=WARN msg=\"accepting a connection failed\" listener=hub count=3\n"
	if got := buf.String(); got != want {
		t.Fatalf("logged\n%s\nwant\n%s", got, want)
	}
}
