// Package cli holds what Herald's subcommands share about their flags: a usage text in one
// shape, and help that goes to standard output while mistakes go to standard error.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// SetUsage makes fs print "Usage: herald SYNOPSIS", then the description, then its flags, to
// its output.
func SetUsage(fs *flag.FlagSet, synopsis, description string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: herald %s\n\n%s\n\nFlags:\n", synopsis, description)
		fs.PrintDefaults()
	}
}

// Parse parses args with fs. Asked for help (-h, --help), it prints the usage to stdout and
// returns flag.ErrHelp, which callers treat as success; on a mistake it prints the error and
// the usage to stderr and returns the error.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(out.Bytes())
	case err != nil:
		_, _ = stderr.Write(out.Bytes())
	}
	return err
}
