package main

import (
	"context"
	"io"

	"github.com/heraldhub/herald/bench"
)

// benchCommand implements `herald bench`: the load generator of package bench. A run whose
// correctness checks failed returns an error, so herald exits non-zero. The hidden
// subcommand `herald bench worker` is a worker process of --procs, which re-executes this
// binary.
func benchCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return bench.Command(ctx, args, getenv, stdout, stderr)
}
