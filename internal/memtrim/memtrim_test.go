package memtrim

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTrimsAfterADrop holds a large heap while "subscribers" are connected, drops them, and
// checks that the memory the heap released goes back to the OS.
// Without trimming (a MinDrop never reached), the runtime's background scavenger releases far
// less than this within the second the check allows: the check fails.
func TestTrimsAfterADrop(t *testing.T) { checkTrim(t, 100) }

func checkTrim(t *testing.T, minDrop int) {
	var subscribers atomic.Int64
	held := make([][]byte, 0, 2000)
	for range 2000 {
		held = append(held, make([]byte, 32<<10)) // 64 MiB
	}
	subscribers.Store(2000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, func() int { return int(subscribers.Load()) }, slog.New(slog.DiscardHandler), Options{Interval: 20 * time.Millisecond, MinDrop: minDrop})
	}()
	defer func() { cancel(); <-done }()
	time.Sleep(60 * time.Millisecond) // let it see the peak
	held = nil
	subscribers.Store(10)
	waitReleased(t, 48<<20)
	_ = held
}

// TestTrimsAfterArrivals makes garbage while "subscribers" arrive, then keeps their count
// steady: the memory the garbage took goes back to the OS once the arrivals settle.
func TestTrimsAfterArrivals(t *testing.T) {
	var subscribers atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, func() int { return int(subscribers.Load()) }, slog.New(slog.DiscardHandler), Options{Interval: 20 * time.Millisecond, MinDrop: 100})
	}()
	defer func() { cancel(); <-done }()
	garbage := make([][]byte, 0, 2000)
	for i := range 2000 {
		garbage = append(garbage, make([]byte, 32<<10)) // 64 MiB, as handshakes leave
		subscribers.Store(int64(i + 1))
	}
	garbage = nil
	_ = garbage
	waitReleased(t, 48<<20)
}

// waitReleased waits up to a second for the runtime to have released n bytes to the OS.
func waitReleased(t *testing.T, n uint64) {
	t.Helper()
	var ms runtime.MemStats
	deadline := time.Now().Add(time.Second)
	for {
		runtime.ReadMemStats(&ms)
		if ms.HeapReleased >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d MiB released", ms.HeapReleased>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
