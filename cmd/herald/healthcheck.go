package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/internal/cli"
)

// healthcheckCommand implements `herald healthcheck`: it asks the operations endpoint of the
// hub running on this machine whether it is ready, and fails unless /readyz answers 200. It is
// the container image's HEALTHCHECK, which runs in an image without a shell, curl or wget.
func healthcheckCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("herald healthcheck", flag.ContinueOnError)
	addr := fs.String("addr", "", "operations address to ask (default: metrics_addr as `herald serve` reads it from the environment and "+config.EnvConfigFile+")")
	path := fs.String("path", "/readyz", "path to ask: /readyz (ready to serve) or /healthz (alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	cli.SetUsage(fs, "healthcheck [flags]", "Exits with status 0 when the hub running on this machine answers 200 on its operations\nendpoint's /readyz: the container image's HEALTHCHECK, in an image without a shell or curl.")
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *addr == "" {
		// The same sources as serve, so that a metrics_addr set in MERCURE_EXTRA_DIRECTIVES
		// or the configuration file is followed. Validation errors (a missing key, say) do
		// not matter here: only the address is used.
		cfg, _ := config.Load(nil, getenv, io.Discard, io.Discard)
		*addr = cmp.Or(cfg.MetricsAddr, config.DefaultMetricsAddr)
	}
	if *addr == "" || *addr == "off" {
		return errors.New("metrics_addr is off: there is no /readyz to ask (give --addr)")
	}
	u := "http://" + dialAddr(*addr) + *path
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("asking %s: %w", u, err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", u, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: an empty or unspecified host (":2019",
// "0.0.0.0:2019", "[::]:2019") means this machine's loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	ip := net.ParseIP(host)
	switch {
	case host == "":
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified() && ip.To4() != nil:
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
