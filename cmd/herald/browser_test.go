package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldhub/herald/internal/testkit"
)

// TestBrowserOverHTTP2 checks what a browser gets from SERVER_NAME=localhost: the locally
// issued certificate, HTTP/2, and an EventSource that receives a publish. Chromium accepts
// the certificate by its key (a test profile has no trust store to add the local root to);
// the Go client checks the chain to the root.
func TestBrowserOverHTTP2(t *testing.T) {
	testkit.Chromium(t) // skips or fails before the hub starts
	dataDir := t.TempDir()
	addr, ops := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	log := startHTTPS(t, map[string]string{"SERVER_NAME": "localhost", "GLOBAL_OPTIONS": "auto_https disable_redirects"},
		"--listen", addr, "--metrics-addr", ops, "--data-dir", dataDir)
	waitUp(t, addr)
	waitReady(t, ops, log)
	roots := poolOf(t, filepath.Join(dataDir, "pki", "local", "root.crt"))
	leaf := servedCert(t, addr, "localhost", roots)
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	ctx := testkit.Browser(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))

	tok, err := mintToken(mintOptions{alg: "HS256", key: key, publish: []string{"*"}, subscribe: []string{"*"}, ttl: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	origin := "https://localhost:" + port
	step, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	script := `window.got = []; window.opened = false;
const es = new EventSource('/.well-known/mercure?topic=news&authorization=` + tok + `');
es.onopen = () => { window.opened = true; };
es.onmessage = (e) => window.got.push(e.data);`
	if err := chromedp.Do(step, chromedp.Navigate(origin+"/.well-known/mercure")); err != nil {
		t.Fatalf("navigating: %v\n%s", err, log.String())
	}
	if _, err := chromedp.Run(step, chromedp.Evaluate[any](script)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(step, chromedp.Poll[bool]("window.opened")); err != nil {
		t.Fatalf("opening the stream: %v\n%s", err, log.String())
	}
	publishOver(t, addr, roots, tok)
	if _, err := chromedp.Run(step, chromedp.Poll[bool]("window.got.includes('from go')")); err != nil {
		t.Fatalf("no event in the browser: %v", err)
	}
	protos, err := chromedp.Run(step, chromedp.Evaluate[[]string](`[performance.getEntriesByType('navigation')[0].nextHopProtocol].concat(performance.getEntriesByType('resource').map(e => e.nextHopProtocol))`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range protos {
		if p != "h2" {
			t.Fatalf("protocols %q, want h2 only", protos)
		}
	}
}

// publishOver publishes "from go" to the topic news over HTTPS to localhost, trusting roots.
func publishOver(t *testing.T, addr string, roots *x509.CertPool, tok string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/.well-known/mercure", strings.NewReader(url.Values{"topic": {"news"}, "data": {"from go"}}.Encode()))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
}
