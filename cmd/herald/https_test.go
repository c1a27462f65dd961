package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/internal/testkit"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key to dir, and
// returns their paths and a pool trusting the certificate.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := testkit.SelfSigned(t)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, c.Roots
}

// TestTLSFilesCheckedAtStart checks that tls files that are missing or do not match are a
// start-up error naming the directive, before "herald started" is logged and before the
// store is created.
func TestTLSFilesCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeSelfSigned(t, dir)
	otherCert, _, _ := writeSelfSigned(t, t.TempDir())
	for name, c := range map[string]struct{ tls, want string }{
		"missing certificate": {filepath.Join(dir, "none.pem") + " " + keyFile, "tls " + filepath.Join(dir, "none.pem") + " " + keyFile + ": open "},
		"missing key":         {certFile + " " + filepath.Join(dir, "none.pem"), "no such file or directory"},
		"key of another cert": {otherCert + " " + keyFile, "private key does not match public key"},
	} {
		t.Run(name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "herald.db")
			var stdout, stderr bytes.Buffer
			args := []string{"serve", "--listen", "127.0.0.1:0", "--metrics-addr", "off", "--transport-url", "bolt://" + db, "--tls", c.tls}
			code := run(context.Background(), args, keyEnv, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "herald started") {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Errorf("the failed start left %s: %v", db, err)
			}
		})
	}
}

// TestTLSServesHTTP2 checks that with tls the hub answers over HTTPS with HTTP/2, as browsers
// negotiate it.
func TestTLSServesHTTP2(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())
	addr := freeAddr(t)
	log := runServe(t, keyEnv, "--listen", addr, "--metrics-addr", "off", "--transport-url", "local://", "--tls", certFile+" "+keyFile)
	waitUp(t, addr)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/.well-known/mercure")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
	}
	if !strings.Contains(log.String(), "url=https://") {
		t.Errorf("log: %s", log.String())
	}
}

// startHTTPS runs `herald serve` with an in-memory log, the test key, env as the rest of its
// environment and args, and returns its log; it stops at cleanup.
func startHTTPS(t *testing.T, env map[string]string, args ...string) *syncBuffer {
	t.Helper()
	env["MERCURE_PUBLISHER_JWT_KEY"] = key
	return runServe(t, func(k string) string { return env[k] }, append([]string{"--transport-url", "local://"}, args...)...)
}

// waitReady polls /readyz at ops until it answers 200, and fails the test with the log after
// 10s.
func waitReady(t *testing.T, ops string, log *syncBuffer) {
	t.Helper()
	waitReadyWithin(t, ops, log, 10*time.Second)
}

// waitReadyWithin is waitReady with another deadline.
func waitReadyWithin(t *testing.T, ops string, log *syncBuffer, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %v: %v\n%s", d, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// servedCert connects to addr as a client of serverName trusting pool over HTTP/2, checks a
// hub request, and returns the certificate served.
func servedCert(t *testing.T, addr, serverName string, pool *x509.CertPool) *x509.Certificate {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: serverName}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/.well-known/mercure")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Proto != "HTTP/2.0" || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s %d", resp.Proto, resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0]
}

// TestLocalCertificates checks SERVER_NAME=localhost: a certificate from the local CA kept in
// the data directory (0700, keys 0600), one log line saying where its root is, HTTP/2, a 308
// redirect from http_port, /readyz, and a restart that serves the stored certificate.
func TestLocalCertificates(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, ops := freeAddr(t), freeAddr(t)
	_, httpPort, _ := net.SplitHostPort(freeAddr(t))
	env := map[string]string{"SERVER_NAME": "localhost", "GLOBAL_OPTIONS": "http_port " + httpPort}
	args := []string{"--listen", addr, "--metrics-addr", ops, "--data-dir", dataDir}

	var first *x509.Certificate
	for i := range 2 {
		t.Run(fmt.Sprintf("start %d", i+1), func(t *testing.T) {
			log := startHTTPS(t, env, args...)
			waitUp(t, addr)
			waitReady(t, ops, log)
			root := filepath.Join(dataDir, "pki", "local", "root.crt")
			if n := strings.Count(log.String(), "come from Herald's local CA"); n != 1 || !strings.Contains(log.String(), "root="+root) {
				t.Errorf("log lines about the root: %d\n%s", n, log.String())
			}
			pemRoot, err := os.ReadFile(root)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemRoot)
			cert := servedCert(t, addr, "localhost", pool)
			if first == nil {
				first = cert
			} else if !cert.Equal(first) {
				t.Errorf("the restart served a new certificate (serial %v, was %v)", cert.SerialNumber, first.SerialNumber)
			}
			_, port, _ := net.SplitHostPort(addr)
			checkRedirect(t, httpPort, port)
		})
	}
	err := filepath.Walk(dataDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		mode := fi.Mode().Perm()
		switch {
		case fi.IsDir() && mode != 0o700:
			t.Errorf("%s: %v, want 0700", path, mode)
		case !fi.IsDir() && strings.HasSuffix(path, ".key") && mode != 0o600:
			t.Errorf("%s: %v, want 0600", path, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkRedirect checks that HTTP on 127.0.0.1:httpPort answers 308 to the same URL over
// HTTPS on httpsPort.
func checkRedirect(t *testing.T, httpPort, httpsPort string) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get("http://127.0.0.1:" + httpPort + "/.well-known/mercure?topic=a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://127.0.0.1:" + httpsPort + "/.well-known/mercure?topic=a"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("redirect: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// TestHTTPSStartErrors checks settings that stop the start with an error naming them.
func TestHTTPSStartErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		env  map[string]string
		args []string
		want string
	}{
		"unknown global option": {map[string]string{"GLOBAL_OPTIONS": "email a@example.com\nstorage redis"}, nil, `GLOBAL_OPTIONS line 2: Herald does not read the global option "storage"`},
		"unusable data dir":     {map[string]string{"SERVER_NAME": "localhost"}, []string{"--data-dir", filepath.Join(file, "data")}, "data_dir " + filepath.Join(file, "data") + ": mkdir " + file + ": not a directory"},
		"missing acme_ca_root":  {map[string]string{"SERVER_NAME": "hub.test"}, []string{"--data-dir", t.TempDir(), "--acme-ca-root", filepath.Join(file, "root.pem")}, "acme_ca_root: open " + filepath.Join(file, "root.pem")},
	} {
		t.Run(name, func(t *testing.T) {
			c.env["MERCURE_PUBLISHER_JWT_KEY"] = key
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--listen", "127.0.0.1:0", "--metrics-addr", "off", "--transport-url", "local://"}, c.args...)
			code := run(context.Background(), args, func(k string) string { return c.env[k] }, &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "herald started") {
				t.Fatalf("exit %d, stderr %q", code, stderr.String())
			}
		})
	}
}
