package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhub/herald/internal/autotls"
	"github.com/heraldhub/herald/internal/testkit"
)

// TestACMERenewalKeepsSubscribers checks a short-lived certificate renewed while a subscriber
// stays connected: Pebble issues certificates valid for 20 s, autotls checks for renewals
// every second (certmagic renews at the time Pebble's renewal information selects, or once a
// third of the lifetime is left, whichever comes first: within about 14 s), and a real hub is
// served over HTTPS with autotls's TLS configuration. Subscribers connected over HTTP/2 and
// HTTP/1.1 before the renewal receive an update published after it, on their first
// connection, while a new connection is served the renewed certificate: another serial and a
// later expiry.
func TestACMERenewalKeepsSubscribers(t *testing.T) {
	_, caPort, _ := net.SplitHostPort(freeAddr(t))
	p := startPebbleOn(t, caPort, nil, 20*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	httpsPort, _ := strconv.Atoi(port)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	certs, err := autotls.New(autotls.Config{
		Names:              []string{"hub.test"},
		DataDir:            filepath.Join(t.TempDir(), "data"), // created 0700
		CA:                 p.dir,
		CARoot:             p.root,
		HTTPSPort:          httpsPort, // HTTPPort 0: no HTTP-01; Pebble validates nothing anyway
		Logger:             logger,
		RenewCheckInterval: time.Second,
	})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); certs.Stop() })
	if err := certs.Start(ctx); err != nil {
		ln.Close()
		t.Fatal(err)
	}
	h := testkit.StartHub(t, testkit.HubOptions{})
	srv := &http.Server{Handler: h.Handler, TLSConfig: certs.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("autotls:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(10 * time.Second)
	for certs.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate within 10s: %v", certs.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	roots := p.issuingRoot(t)

	tok, err := mintToken(mintOptions{alg: "HS256", key: testkit.TestKey, publish: []string{"*"}, subscribe: []string{"*"}, ttl: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hubURL := "https://" + addr + "/.well-known/mercure"
	subCtx, subCancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer subCancel()
	var subs []*http.Response
	for _, h2 := range []bool{true, false} {
		// A custom TLS configuration turns HTTP/2 off unless ForceAttemptHTTP2 asks for it.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "hub.test"}, ForceAttemptHTTP2: h2}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequestWithContext(subCtx, http.MethodGet, hubURL+"?topic=https://hub.test/books/1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		sub, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Body.Close()
		if want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]; sub.StatusCode != http.StatusOK || sub.Proto != want {
			t.Fatalf("subscribe: %s %d, want %s 200", sub.Proto, sub.StatusCode, want)
		}
		subs = append(subs, sub)
	}

	// Renewal: a new connection is served a certificate that no subscriber's connection was,
	// expiring later than theirs. Pebble's renewal information may select a time within the
	// first second, before the subscribers connect: then it is the next renewal that counts.
	// Either comes within about 14 s of the certificate the subscribers were served; 30 s
	// leaves room on a loaded machine.
	renewedSince := func(c *x509.Certificate) bool {
		for _, sub := range subs {
			old := sub.TLS.PeerCertificates[0]
			if c.SerialNumber.Cmp(old.SerialNumber) == 0 || !c.NotAfter.After(old.NotAfter) {
				return false
			}
		}
		return true
	}
	deadline = time.Now().Add(30 * time.Second)
	for cert := servedCert(t, addr, "hub.test", roots); !renewedSince(cert); cert = servedCert(t, addr, "hub.test", roots) {
		if time.Now().After(deadline) {
			t.Fatalf("not renewed within 30s: serving serial %s, valid %s to %s", cert.SerialNumber, cert.NotBefore, cert.NotAfter)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Publish on a connection of its own, after the renewal.
	pubTr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "hub.test"}, ForceAttemptHTTP2: true}
	defer pubTr.CloseIdleConnections()
	status, body := post(t, &http.Client{Transport: pubTr, Timeout: 5 * time.Second}, hubURL, tok, url.Values{"topic": {"https://hub.test/books/1"}, "data": {"after renewal"}, "id": {"e1"}})
	if status != http.StatusOK || body != "e1" {
		t.Fatalf("publish: %d %q", status, body)
	}

	// Each subscriber's connection, opened before the renewal, delivers exactly that event.
	for _, sub := range subs {
		if got, want := readEvent(sub), "id: e1\ndata: after renewal"; got != want {
			t.Errorf("the %s subscriber received %q, want %q", sub.Proto, got, want)
		}
	}
}

// readEvent reads the next event of an SSE stream, skipping comments, and returns its lines
// joined with newlines; on an error it returns what it read and the error.
func readEvent(sub *http.Response) string {
	var event []string
	sc := bufio.NewScanner(sub.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"): // comments keep the stream alive
		case line != "":
			event = append(event, line)
		case len(event) > 0:
			return strings.Join(event, "\n")
		}
	}
	return strings.Join(append(event, "error: "+fmt.Sprint(sc.Err())), "\n")
}
