package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhub/herald/config"
	"github.com/heraldhub/herald/internal/autotls"
)

// httpsPlan is how the hub serves HTTPS: from the tls directive's files, with certificates
// managed by autotls for SERVER_NAME's host names, or not at all (plain HTTP).
type httpsPlan struct {
	tls        *tls.Config      // nil: plain HTTP
	certs      *autotls.Manager // nil: no managed certificates
	redirectLn net.Listener     // the HTTP listener that redirects to HTTPS; nil: none
	redirect   *http.Server
}

// planHTTPS decides how the hub serves HTTPS and checks what it needs before anything
// starts: the tls files (loaded and matched), the data directory, the ACME CA's root, and the
// redirect listener's port.
func planHTTPS(cfg config.Config, getenv func(string) string, log *slog.Logger) (*httpsPlan, error) {
	p := &httpsPlan{}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls %s %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		// Go's server adds HTTP/2 ("h2") to what this configuration offers.
		p.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		return p, nil
	}
	if len(cfg.ServerNames) == 0 || cfg.AutoHTTPS == "off" {
		return p, nil
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", cfg.Addr, err)
	}
	httpsPort, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("listen %q: the port must be a number", cfg.Addr)
	}
	httpPort := cmp.Or(cfg.HTTPPort, 80)
	if cfg.AutoHTTPS == "disable_redirects" {
		httpPort = 0
	}
	p.certs, err = autotls.New(autotls.Config{
		Names:     cfg.ServerNames,
		DataDir:   cmp.Or(cfg.DataDir, autotls.DefaultDataDir(getenv)),
		Email:     cfg.Email,
		CA:        cfg.ACMECA,
		CARoot:    cfg.ACMECARoot,
		Local:     cfg.LocalCerts,
		HTTPPort:  httpPort,
		HTTPSPort: httpsPort,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	p.tls = p.certs.TLSConfig()
	if httpPort != 0 {
		p.redirectLn, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(httpPort)))
		if err != nil {
			p.certs.Stop()
			return nil, fmt.Errorf("http_port %d, the listener that redirects to HTTPS and answers ACME challenges: %w (choose another with http_port, or auto_https disable_redirects)", httpPort, err)
		}
	}
	return p, nil
}

// start serves the redirects and starts obtaining certificates in the background.
func (p *httpsPlan) start(ctx context.Context, log *slog.Logger) error {
	if p.certs == nil {
		return nil
	}
	if p.redirectLn != nil {
		p.redirect = &http.Server{Handler: p.certs.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = p.redirect.Serve(p.redirectLn) }()
		log.Info("redirecting HTTP to HTTPS", "addr", p.redirectLn.Addr().String())
	}
	return p.certs.Start(ctx)
}

// ready wraps the hub's readiness: not ready until every host name has a certificate.
func (p *httpsPlan) ready(hubReady func(context.Context) error) func(context.Context) error {
	if p.certs == nil {
		return hubReady
	}
	return func(ctx context.Context) error {
		return errors.Join(p.certs.Ready(), hubReady(ctx))
	}
}

// close stops the redirects and certificate renewals.
func (p *httpsPlan) close() {
	if p.redirect != nil {
		_ = p.redirect.Close()
	} else if p.redirectLn != nil {
		_ = p.redirectLn.Close()
	}
	if p.certs != nil {
		p.certs.Stop()
	}
}

// hubURL is the address to give clients in the start-up log.
func (p *httpsPlan) hubURL(cfg config.Config, addr net.Addr, path string) string {
	if p.tls == nil {
		return "http://" + displayAddr(addr) + path
	}
	host := displayAddr(addr)
	if len(cfg.ServerNames) > 0 {
		_, port, _ := net.SplitHostPort(addr.String())
		host = cfg.ServerNames[0]
		if port != "443" {
			host = net.JoinHostPort(host, port)
		}
	}
	return "https://" + host + path
}
