package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHealthcheckCommand asks a running hub's /readyz: at the address given, at the
// metrics_addr of the environment as serve reads it, and at a port where nothing listens.
func TestHealthcheckCommand(t *testing.T) {
	opsAddr := freeAddr(t)
	startServe(t, "--metrics-addr", opsAddr)
	waitUp(t, opsAddr)
	check := func(getenv func(string) string, args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"healthcheck"}, args...), getenv, &stdout, &stderr)
		return code, stderr.String()
	}
	if code, errOut := check(noEnv, "--addr", opsAddr); code != 0 || errOut != "" {
		t.Fatalf("--addr: exit %d, %q", code, errOut)
	}
	_, port, _ := strings.Cut(opsAddr, ":")
	env := func(k string) string {
		if k == "MERCURE_EXTRA_DIRECTIVES" {
			return "anonymous\nmetrics_addr :" + port
		}
		return ""
	}
	if code, errOut := check(env); code != 0 || errOut != "" {
		t.Fatalf("metrics_addr from the environment: exit %d, %q", code, errOut)
	}
	down := freeAddr(t)
	if code, errOut := check(noEnv, "--addr", down); code != 1 || !strings.HasPrefix(errOut, "herald healthcheck: asking http://"+down+"/readyz: ") {
		t.Fatalf("nothing listening: exit %d, %q", code, errOut)
	}
	if code, errOut := check(noEnv, "--addr", "off"); code != 1 || errOut != "herald healthcheck: metrics_addr is off: there is no /readyz to ask (give --addr)\n" {
		t.Fatalf("off: exit %d, %q", code, errOut)
	}
}
