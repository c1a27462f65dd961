// Command herald is the Herald hub: a Mercure-protocol publish/subscribe server.
//
//	herald serve [flags]   run the hub (herald serve --help lists every option)
//	herald token [flags]   mint a JWT for local use
//	herald import FILE     copy the history of a reference hub's bolt file into Herald's store
//	herald healthcheck     ask a running hub's /readyz (the container image's HEALTHCHECK)
//	herald top             show a running hub's live figures (from /stats, or the hub's stats topic)
//	herald version         print the version, the commit and the Go version
//
// This package only wires: configuration → transport → hub → HTTP server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run executes one herald command and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		err = token(args[1:], getenv, stdout, stderr)
	case "publish":
		err = publishCommand(ctx, args[1:], getenv, stdout, stderr)
	case "subscribe":
		err = subscribeCommand(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		err = benchCommand(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		err = importCommand(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		err = healthcheckCommand(ctx, args[1:], getenv, stdout, stderr)
	case "top":
		err = topCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		err = versionCommand(args[1:], stdout)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "herald: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "herald %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Herald: a Mercure hub.

Usage:
  herald serve [flags]   run the hub (see herald serve --help)
  herald token [flags]   mint a JWT for local use (see herald token --help)
  herald publish ...     publish an update (see herald publish --help)
  herald subscribe ...   print the events of topics as they come (see herald subscribe --help)
  herald bench ...       load-test a hub on this machine: fanout, idle, catchup, publish (see herald bench help)
  herald import FILE     copy the history of a reference hub's bolt file (mercure.db) into Herald's store
  herald healthcheck     exit 0 when the hub running here is ready (asks /readyz on metrics_addr)
  herald top [flags]     show a running hub's live figures every second (see herald top --help)
  herald version         print the version, the commit and the Go version (also --version)
`)
}
