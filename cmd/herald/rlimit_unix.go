//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit lifts the soft open-file limit to the hard one: each subscriber is a socket.
// It returns the limit in force, or 0 when it cannot be read.
func raiseFileLimit(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur >= lim.Max {
		log.Info("open-file limit", "limit", lim.Cur)
		return lim.Cur
	}
	old := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("could not raise the open-file limit", "limit", old, "err", err)
		return old
	}
	log.Info("raised the open-file limit to the hard limit", "from", old, "to", lim.Cur)
	return lim.Cur
}
