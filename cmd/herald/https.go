package main

import (
	"crypto/tls"
	"fmt"

	"github.com/heraldhub/herald/config"
)

// tlsConfig loads the certificate and key of the tls directive, so that a missing or
// mismatched file stops the start before "herald started" is logged rather than failing the
// first handshake. It returns nil when the hub serves plain HTTP. Go's server adds HTTP/2
// ("h2") to the protocols the returned configuration offers, which is what browsers use.
func tlsConfig(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls %s %s: %w", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
