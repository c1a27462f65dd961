// Package autotls serves HTTPS the way the reference hub's Caddy does: certificates for the
// host names of SERVER_NAME, obtained and renewed in the background by ACME (HTTP-01 and
// TLS-ALPN-01), or issued by a local CA for localhost, *.localhost and IP addresses. Both
// are managed by certmagic and kept in a data directory, so a restart reuses them.
package autotls

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// Config is what Manager needs: the host names, where to keep their certificates, and which
// CA issues them.
type Config struct {
	Names   []string // host names or IP addresses to serve
	DataDir string   // certificates, keys and the ACME account (0700 directories, 0600 files)
	Email   string   // ACME account address; may be empty
	CA      string   // ACME directory URL; "" = Let's Encrypt's production directory
	CARoot  string   // PEM file of a root to trust for the ACME server's HTTPS; may be empty
	Local   bool     // issue every certificate from the local CA
	// HTTPPort and HTTPSPort are the ports the hub listens on for HTTP (redirects and HTTP-01
	// challenges) and HTTPS (TLS-ALPN-01 challenges). HTTPPort 0 turns HTTP-01 off.
	HTTPPort, HTTPSPort int
	Logger              *slog.Logger
	// RenewCheckInterval is how often the certificates are checked for renewal; 0 means
	// certmagic's default (10 minutes). It is not a setting: tests shorten it to see a
	// short-lived certificate renewed within seconds.
	RenewCheckInterval time.Duration
}

// Manager obtains, stores, renews and serves the certificates of Config.Names.
type Manager struct {
	cfg    Config
	cache  *certmagic.Cache
	acme   *certmagic.Config // nil when every name is local
	local  *certmagic.Config // nil when no name is local
	issuer *certmagic.ACMEIssuer

	acmeNames, localNames []string

	mu     sync.Mutex
	failed map[string]string // name -> why its last attempt failed
}

// IsLocal reports whether name gets its certificate from the local CA rather than ACME, as
// Caddy decides it: localhost, *.localhost and IP addresses cannot be validated publicly.
func IsLocal(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost") || net.ParseIP(name) != nil
}

// DefaultDataDir is the data directory when none is configured, as Caddy chooses its own:
// $XDG_DATA_HOME/herald, else $HOME/.local/share/herald, else ./herald-data.
func DefaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "herald")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "herald")
	}
	return "herald-data"
}

// New checks the data directory (created 0700 if missing, and writable) and the CA root, and
// prepares the certificate configurations. Nothing is obtained before Start.
func New(cfg Config) (*Manager, error) {
	if err := checkDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(cfg.DataDir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		cfg.Logger.Warn("data_dir holds private keys but other users may read it: chmod 700 it", "data_dir", cfg.DataDir, "mode", fi.Mode().Perm().String())
	}
	m := &Manager{cfg: cfg, failed: map[string]string{}}
	for _, n := range cfg.Names {
		if cfg.Local || IsLocal(n) {
			m.localNames = append(m.localNames, n)
		} else {
			m.acmeNames = append(m.acmeNames, n)
		}
	}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(c certmagic.Certificate) (*certmagic.Config, error) {
			if m.local != nil && (m.acme == nil || len(c.Names) > 0 && (cfg.Local || IsLocal(c.Names[0]))) {
				return m.local, nil
			}
			return m.acme, nil
		},
		Logger:             zapLogger(cfg.Logger),
		RenewCheckInterval: cfg.RenewCheckInterval,
	})
	storage := &certmagic.FileStorage{Path: cfg.DataDir}
	base := certmagic.Config{
		Storage:           storage,
		Logger:            zapLogger(cfg.Logger),
		OnEvent:           m.onEvent,
		DefaultServerName: cfg.Names[0],
	}
	if len(m.localNames) > 0 {
		ca, err := loadLocalCA(filepath.Join(cfg.DataDir, "pki", "local"))
		if err != nil {
			m.cache.Stop()
			return nil, err
		}
		m.local = certmagic.New(m.cache, base)
		m.local.Issuers = []certmagic.Issuer{ca}
		cfg.Logger.Info("certificates for "+strings.Join(m.localNames, ", ")+" come from Herald's local CA: trust its root to avoid browser warnings, e.g. on Debian: cp ROOT /usr/local/share/ca-certificates/herald.crt && update-ca-certificates; or import it in the browser",
			"root", ca.rootFile)
	}
	if len(m.acmeNames) > 0 {
		var roots *x509.CertPool
		if cfg.CARoot != "" {
			pem, err := os.ReadFile(cfg.CARoot)
			if err != nil {
				m.cache.Stop()
				return nil, fmt.Errorf("acme_ca_root: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				m.cache.Stop()
				return nil, fmt.Errorf("acme_ca_root %s: no PEM certificate in it", cfg.CARoot)
			}
		}
		m.acme = certmagic.New(m.cache, base)
		m.issuer = certmagic.NewACMEIssuer(m.acme, certmagic.ACMEIssuer{
			CA:     cmp.Or(cfg.CA, certmagic.LetsEncryptProductionCA),
			Email:  cfg.Email,
			Agreed: true,
			// Our own listeners answer the challenges: certmagic finds the ports taken and
			// leaves them to the handlers below.
			AltHTTPPort:          cfg.HTTPPort,
			AltTLSALPNPort:       cfg.HTTPSPort,
			DisableHTTPChallenge: cfg.HTTPPort == 0,
			TrustedRoots:         roots,
			Logger:               zapLogger(cfg.Logger),
		})
		m.acme.Issuers = []certmagic.Issuer{m.issuer}
	}
	return m, nil
}

// checkDataDir creates dir with 0700 permissions when missing and checks that it can be
// written, so that an unusable directory is a start-up error rather than a failed renewal.
func checkDataDir(dir string) error {
	if dir == "" {
		return errors.New("data_dir is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data_dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data_dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Start loads stored certificates and obtains missing ones in the background, renewing them
// until Stop. It never fails because a CA is down: the failure is logged and retried, and
// Ready says why there is no certificate yet.
func (m *Manager) Start(ctx context.Context) error {
	if m.local != nil {
		if err := m.local.ManageAsync(ctx, m.localNames); err != nil {
			return fmt.Errorf("local certificates: %w", err)
		}
	}
	if m.acme != nil {
		if err := m.acme.ManageAsync(ctx, m.acmeNames); err != nil {
			return fmt.Errorf("certificates: %w", err)
		}
	}
	return nil
}

// Stop ends renewals.
func (m *Manager) Stop() { m.cache.Stop() }

// TLSConfig serves the managed certificates, answers TLS-ALPN-01 challenges, and offers
// HTTP/2 and HTTP/1.1.
func (m *Manager) TLSConfig() *tls.Config {
	c := m.acme
	if c == nil {
		c = m.local
	}
	t := c.TLSConfig()
	t.NextProtos = append([]string{"h2", "http/1.1"}, t.NextProtos...)
	t.MinVersion = tls.VersionTLS12
	return t
}

// Ready returns nil once every name has a certificate, or an error saying which have none
// and why.
func (m *Manager) Ready() error {
	var missing []string
	for _, n := range m.cfg.Names {
		if len(m.cache.AllMatchingCertificates(n)) > 0 {
			continue
		}
		m.mu.Lock()
		why := m.failed[n]
		m.mu.Unlock()
		if why == "" {
			why = "being obtained"
		}
		missing = append(missing, n+" ("+why+")")
	}
	if len(missing) > 0 {
		return errors.New("no certificate yet for " + strings.Join(missing, ", "))
	}
	return nil
}

// whatToCheck says, for a failed order, what usually makes one fail.
func (m *Manager) whatToCheck(name string) string {
	ports := strconv.Itoa(m.cfg.HTTPSPort)
	if m.cfg.HTTPPort > 0 {
		ports = strconv.Itoa(m.cfg.HTTPPort) + " and " + ports
	}
	return "that the CA's address (acme_ca) is right and it answers; that " + name +
		" resolves (DNS) to this machine; that port " + ports + " of this machine can be reached from the CA"
}

// onEvent logs in words why a certificate could not be obtained, and remembers it for Ready.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	name, _ := data["identifier"].(string)
	switch event {
	case "cert_failed":
		err, _ := data["error"].(error)
		why := fmt.Sprint(err)
		if renewal, _ := data["renewal"].(bool); renewal {
			m.cfg.Logger.Warn("renewing the certificate failed; the current one is served until it expires, and renewal is retried", "name", name, "ca", m.caName(name), "err", why)
			return nil
		}
		m.mu.Lock()
		m.failed[name] = "the CA " + m.caName(name) + " failed: " + why
		m.mu.Unlock()
		m.cfg.Logger.Error("no certificate for "+name+" yet: the CA "+m.caName(name)+" could not issue one; /readyz fails until it does, and it is retried in the background", "err", why, "check", m.whatToCheck(name))
	case "cert_obtained":
		m.mu.Lock()
		delete(m.failed, name)
		m.mu.Unlock()
		m.cfg.Logger.Info("certificate obtained", "name", name, "ca", m.caName(name))
	}
	return nil
}

// caName names the CA that issues name's certificate, for logs.
func (m *Manager) caName(name string) string {
	if m.cfg.Local || IsLocal(name) {
		return "local"
	}
	return cmp.Or(m.cfg.CA, certmagic.LetsEncryptProductionCA)
}

// HTTPHandler is the handler of the HTTP listener: it answers HTTP-01 challenges and
// redirects everything else to HTTPS with 308, keeping the path and query.
func (m *Manager) HTTPHandler() http.Handler {
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			host = m.cfg.Names[0]
		}
		if m.cfg.HTTPSPort != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(m.cfg.HTTPSPort))
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	if m.issuer == nil {
		return redirect
	}
	return m.issuer.HTTPChallengeHandler(redirect)
}
