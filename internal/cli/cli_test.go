package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("herald thing", flag.ContinueOnError)
		fs.String("key", "", "the key")
		SetUsage(fs, "thing [flags]", "Does a thing.")
		return fs
	}
	const usage = "Usage: herald thing [flags]\n\nDoes a thing.\n\nFlags:\n  -key string\n    \tthe key\n"
	for _, help := range []string{"-h", "--help", "-help"} {
		var stdout, stderr bytes.Buffer
		if err := Parse(newFS(), []string{help}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s: %v", help, err)
		}
		if stdout.String() != usage || stderr.Len() != 0 {
			t.Errorf("%s: stdout %q, stderr %q", help, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	fs := newFS()
	err := Parse(fs, []string{"--nope"}, &stdout, &stderr)
	if err == nil || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "flag provided but not defined: -nope\n"+usage) {
		t.Errorf("mistake: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	if fs.Output() != &stderr {
		t.Error("the flag set's output is not stderr after parsing")
	}
	if err := Parse(newFS(), []string{"--key", "k"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
}
