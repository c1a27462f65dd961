package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand: `herald version` and `herald --version` print the same line, naming the
// version, the commit and the Go toolchain.
func TestVersionCommand(t *testing.T) {
	var lines []string
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, noEnv, &stdout, &stderr); code != 0 {
			t.Fatalf("%s: exit %d, %s", arg, code, stderr.String())
		}
		lines = append(lines, stdout.String())
	}
	want := "herald (devel) (commit "
	if !strings.HasPrefix(lines[0], want) || !strings.HasSuffix(lines[0], runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+")\n") || lines[1] != lines[0] {
		t.Fatalf("version printed %q and %q", lines[0], lines[1])
	}
}
