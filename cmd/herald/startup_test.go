package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedStartLeavesNoStore checks that a start that fails on its listen address, or on
// a key, does not create the store file first.
func TestFailedStartLeavesNoStore(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for name, c := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"address taken": {[]string{"--listen", taken.Addr().String()}, map[string]string{"MERCURE_PUBLISHER_JWT_KEY": key}, "listen:"},
		"bad key":       {[]string{"--listen", "127.0.0.1:0"}, map[string]string{"MERCURE_PUBLISHER_JWT_KEY": key, "MERCURE_PUBLISHER_JWT_ALG": "RS256"}, "publisher key:"},
	} {
		t.Run(name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "herald.db")
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--metrics-addr", "off", "--transport-url", "bolt://" + db}, c.args...)
			code := run(context.Background(), args, func(k string) string { return c.env[k] }, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("the failed start left %s: %v", db, err)
			}
		})
	}
}

// TestOperationsAddressTaken checks metrics_addr when its address is taken: the default one is
// given up with a warning (a second hub on the machine starts), one that was set is an error
// naming the option and off.
func TestOperationsAddressTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ln, err := listenOps("", taken.Addr().String(), log)
	if ln != nil || err != nil || !strings.Contains(logs.String(), "default address is taken") {
		t.Fatalf("default address taken: %v, %v, log %q", ln, err, logs.String())
	}
	ln, err = listenOps(taken.Addr().String(), "unused", log)
	if ln != nil || err == nil || !strings.Contains(err.Error(), "metrics_addr "+taken.Addr().String()) || !strings.Contains(err.Error(), "or off") {
		t.Fatalf("explicit address taken: %v, %v", ln, err)
	}
	if ln, err := listenOps("off", "unused", log); ln != nil || err != nil {
		t.Fatalf("off: %v, %v", ln, err)
	}
	ln, err = listenOps("", "127.0.0.1:0", log)
	if err != nil || ln == nil {
		t.Fatalf("free default: %v, %v", ln, err)
	}
	ln.Close()
}

// TestHelpGoesToStdout checks that every subcommand's help is on standard output, with a
// line saying what the command does.
func TestHelpGoesToStdout(t *testing.T) {
	for cmd, want := range map[string]string{
		"serve":     "Runs the hub.",
		"token":     "Mints a JWT",
		"publish":   "Publishes one update",
		"subscribe": "Prints the events",
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{cmd, "--help"}, func(string) string { return "" }, &stdout, &stderr)
		if code != 0 || stderr.Len() != 0 || !strings.HasPrefix(stdout.String(), "Usage: herald "+cmd) || !strings.Contains(stdout.String(), want) {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, stdout.String(), stderr.String())
		}
	}
}
