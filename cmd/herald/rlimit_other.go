//go:build !unix

package main

import "log/slog"

// raiseFileLimit has nothing to raise where there is no open-file limit to read: it returns 0,
// which leaves max_connections as configured.
func raiseFileLimit(log *slog.Logger) uint64 { return 0 }
