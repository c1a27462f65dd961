package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key to dir, and
// returns their paths and a pool trusting the certificate.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certFile, keyFile, pool
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
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	args := []string{"serve", "--listen", addr, "--metrics-addr", "off", "--transport-url", "local://", "--tls", certFile + " " + keyFile}
	go func() { code <- run(ctx, args, keyEnv, &stdout, &stderr) }()
	defer func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("serve exited with %d:\n%s", c, stderr.String())
		}
	}()
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
	if !strings.Contains(stderr.String(), "url=https://") {
		t.Errorf("log: %s", stderr.String())
	}
}
