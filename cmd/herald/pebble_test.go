package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pebbleVersion is the Pebble that scripts/test.sh installs; its module source holds the
// certificate Pebble serves its directory with, and the root that signs it.
const pebbleVersion = "v2.10.3"

// pebble is a running Pebble, Let's Encrypt's test ACME CA.
type pebble struct {
	dir  string // its ACME directory URL
	root string // PEM file of the root to trust for its own HTTPS
	mgmt string // its management API (https://localhost:PORT)
	stop func() // ends it; cleanup calls it too
}

// pebbleVA is where Pebble validates challenges: every name resolves to 127.0.0.1 through
// the DNS server at dns, HTTP-01 is asked on httpPort and TLS-ALPN-01 on tlsPort.
type pebbleVA struct {
	dns               string
	httpPort, tlsPort int
}

// pebbleDir is the ACME directory URL of a Pebble listening on port.
func pebbleDir(port string) string { return "https://localhost:" + port + "/dir" }

// pebbleValidity is how long the certificates Pebble issues are valid, as Let's Encrypt's.
const pebbleValidity = 90 * 24 * time.Hour

// startPebble runs Pebble on free loopback ports and stops it at cleanup. With va nil every
// challenge passes without validation; otherwise Pebble validates as va says. Without Pebble
// installed the test is skipped, or fails when CI is set.
func startPebble(t *testing.T, va *pebbleVA) *pebble {
	t.Helper()
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return startPebbleOn(t, port, va, pebbleValidity)
}

// startPebbleOn is startPebble with the ACME directory on the loopback port port, issuing
// certificates valid for validity (whole seconds).
func startPebbleOn(t *testing.T, port string, va *pebbleVA, validity time.Duration) *pebble {
	t.Helper()
	exe, err := exec.LookPath("pebble")
	if err != nil {
		exe = filepath.Join(goEnv(t, "GOPATH"), "bin", "pebble")
	}
	certs := filepath.Join(goEnv(t, "GOMODCACHE"), "github.com", "letsencrypt", "pebble", "v2@"+pebbleVersion, "test", "certs")
	if _, err := os.Stat(exe); err != nil || !fileExists(filepath.Join(certs, "pebble.minica.pem")) {
		msg := "pebble " + pebbleVersion + " is not installed: go install github.com/letsencrypt/pebble/v2/cmd/pebble@" + pebbleVersion + " (scripts/test.sh does)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_, mport, _ := net.SplitHostPort(freeAddr(t))
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           "127.0.0.1:" + port,
		"managementListenAddress": "127.0.0.1:" + mport,
		"certificate":             filepath.Join(certs, "localhost", "cert.pem"),
		"privateKey":              filepath.Join(certs, "localhost", "key.pem"),
		"httpPort":                5002,
		"tlsPort":                 5001,
		"keyAlgorithm":            "ecdsa",
		"profiles":                map[string]any{"default": map[string]any{"validityPeriod": int(validity.Seconds())}},
	}}
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	var flags []string
	if va == nil {
		env = append(env, "PEBBLE_VA_ALWAYS_VALID=1")
	} else {
		conf["pebble"].(map[string]any)["httpPort"] = va.httpPort
		conf["pebble"].(map[string]any)["tlsPort"] = va.tlsPort
		flags = []string{"-dnsserver", va.dns}
	}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"-config", confFile}, flags...)...)
	cmd.Env = append(os.Environ(), env...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("pebble:\n%s", out.String())
		}
	})
	p := &pebble{dir: pebbleDir(port), root: filepath.Join(certs, "pebble.minica.pem"), mgmt: "https://localhost:" + mport, stop: stop}
	c := p.client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(p.dir)
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not serve its directory: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client trusts Pebble's own HTTPS.
func (p *pebble) client(t *testing.T) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(t, p.root)}}}
}

// issuingRoot returns the root that signs the certificates Pebble issues (new at each start).
func (p *pebble) issuingRoot(t *testing.T) *x509.CertPool {
	t.Helper()
	resp, err := p.client(t).Get(p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble's root: %q", b)
	}
	return pool
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func poolOf(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

// TestACMEWithPebble checks the binary with SERVER_NAME=hub.test:PORT and GLOBAL_OPTIONS naming Pebble: a
// certificate is issued, a client trusting Pebble's issuing root publishes and subscribes
// over HTTPS (HTTP/2), HTTP on http_port answers 308, a restart orders nothing new, and a
// restart while Pebble is down serves the stored certificate and is ready.
func TestACMEWithPebble(t *testing.T) {
	p := startPebble(t, nil)
	bin := buildHerald(t)
	dataDir := t.TempDir()
	addr, ops := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, httpPort, _ := net.SplitHostPort(freeAddr(t))
	env := map[string]string{
		"SERVER_NAME":    "hub.test:" + port,
		"GLOBAL_OPTIONS": "email ops@hub.test\nacme_ca " + p.dir + "\nacme_ca_root " + p.root + "\nhttp_port " + httpPort,
	}
	args := []string{"--listen", addr, "--metrics-addr", ops, "--data-dir", dataDir}
	roots := p.issuingRoot(t) // new at each Pebble start, and unavailable once it is stopped
	var first *x509.Certificate
	for _, name := range []string{"first start", "restart", "restart with the CA down"} {
		t.Run(name, func(t *testing.T) {
			if name == "restart with the CA down" {
				p.stop()
			}
			log := startBinary(t, bin, env, args...)
			waitUp(t, addr)
			waitReady(t, ops, log)
			cert := servedCert(t, addr, "hub.test", roots)
			obtained := strings.Count(log.String(), `msg="certificate obtained" `)
			switch {
			case first == nil && obtained != 1:
				t.Errorf("first start: %d certificates obtained, want 1\n%s", obtained, log.String())
			case first == nil:
				first = cert
			case obtained != 0 || !cert.Equal(first):
				t.Errorf("the restart ordered a certificate (%d obtained, same: %v)\n%s", obtained, cert.Equal(first), log.String())
			}
			publishAndSubscribe(t, addr, roots)
			checkRedirect(t, httpPort, port)
		})
	}
}

// startBinary runs bin serve with an in-memory log, the test key, env added to the
// environment and args, and returns its log; at cleanup it is stopped with SIGTERM and must
// exit with 0.
func startBinary(t *testing.T, bin string, env map[string]string, args ...string) *syncBuffer {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--transport-url", "local://"}, args...)...)
	cmd.Env = append(os.Environ(), "MERCURE_PUBLISHER_JWT_KEY="+key)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("herald: %v\n%s", err, log.String())
		}
	})
	return log
}

// publishAndSubscribe subscribes to a topic over HTTPS as hub.test, publishes to it, and
// checks that the event arrives, both over HTTP/2.
func publishAndSubscribe(t *testing.T, addr string, roots *x509.CertPool) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "hub.test"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	tok, err := mintToken(mintOptions{alg: "HS256", key: key, publish: []string{"*"}, subscribe: []string{"*"}, ttl: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hubURL := "https://" + addr + "/.well-known/mercure"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hubURL+"?topic=https://hub.test/books/1", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	sub, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Body.Close()
	if sub.StatusCode != http.StatusOK || sub.Proto != "HTTP/2.0" {
		t.Fatalf("subscribe: %s %d", sub.Proto, sub.StatusCode)
	}
	preq, _ := http.NewRequestWithContext(ctx, http.MethodPost, hubURL, strings.NewReader(url.Values{"topic": {"https://hub.test/books/1"}, "data": {"over https"}, "id": {"e1"}}.Encode()))
	preq.Header.Set("Authorization", "Bearer "+tok)
	preq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pub, err := c.Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(pub.Body)
	pub.Body.Close()
	if pub.StatusCode != http.StatusOK || string(body) != "e1" {
		t.Fatalf("publish: %d %q", pub.StatusCode, body)
	}
	var got []string
	sc := bufio.NewScanner(sub.Body)
	for sc.Scan() && sc.Text() != "data: over https" {
		got = append(got, sc.Text())
	}
	if sc.Text() != "data: over https" {
		t.Fatalf("no event; read %q, %v", got, sc.Err())
	}
}

// TestACMECADown checks a hub whose CA does not answer: it starts and stays up, /readyz
// answers 503 naming the host name, and the log says why in words.
func TestACMECADown(t *testing.T) {
	down := freeAddr(t) // nothing listens there
	addr, ops := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	env := map[string]string{
		"SERVER_NAME":    "hub.test:" + port,
		"GLOBAL_OPTIONS": "acme_ca https://" + down + "/dir\nauto_https disable_redirects",
	}
	log := startHTTPS(t, env, "--listen", addr, "--metrics-addr", ops, "--data-dir", t.TempDir())
	waitUp(t, addr)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "no certificate for hub.test yet: the CA https://"+down+"/dir could not issue one; /readyz fails until it does") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying why:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get("http://" + ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no certificate yet for hub.test (the CA https://"+down+"/dir failed: ") {
		t.Fatalf("readyz: %d %q", resp.StatusCode, body)
	}
}

// TestACMEChallenges checks that Herald answers the challenges Pebble really validates: the
// host name resolves to 127.0.0.1 through a DNS server of the test. Each subtest points
// Pebble's other challenge at a closed port, so that the certificate can come only from the
// challenge it names: HTTP-01 on http_port, or TLS-ALPN-01 on the HTTPS port (the only one
// certmagic offers when auto_https disable_redirects leaves no HTTP listener). certmagic
// tries the challenge types in a random order and falls back to the other on failure.
func TestACMEChallenges(t *testing.T) {
	dnsAddr := startDNS(t)
	for _, c := range []struct{ option, challenge string }{
		{"", "http-01"},
		{"auto_https disable_redirects", "tls-alpn-01"},
	} {
		t.Run(c.challenge, func(t *testing.T) {
			addr, ops := freeAddr(t), freeAddr(t)
			_, port, _ := net.SplitHostPort(addr)
			_, httpPort, _ := net.SplitHostPort(freeAddr(t))
			hp, _ := strconv.Atoi(httpPort)
			tp, _ := strconv.Atoi(port)
			_, closed, _ := net.SplitHostPort(freeAddr(t))
			cp, _ := strconv.Atoi(closed)
			if c.challenge == "http-01" {
				tp = cp
			} else {
				hp = cp
			}
			p := startPebble(t, &pebbleVA{dns: dnsAddr, httpPort: hp, tlsPort: tp})
			env := map[string]string{
				"SERVER_NAME":    "hub.test:" + port,
				"GLOBAL_OPTIONS": "acme_ca " + p.dir + "\nacme_ca_root " + p.root + "\nhttp_port " + httpPort + "\n" + c.option,
			}
			log := startHTTPS(t, env, "--listen", addr, "--metrics-addr", ops, "--data-dir", t.TempDir())
			waitUp(t, addr)
			waitReady(t, ops, log)
			servedCert(t, addr, "hub.test", p.issuingRoot(t))
			if !strings.Contains(log.String(), "challenge_type="+c.challenge) {
				t.Errorf("no %s challenge in the log:\n%s", c.challenge, log.String())
			}
		})
	}
}

// startDNS serves, on a free loopback port over UDP and TCP (Pebble's resolver uses TCP), an
// A record of 127.0.0.1 for every name (and no other record), and returns its address.
func startDNS(t *testing.T) string {
	t.Helper()
	// A free UDP port may be taken over TCP by another process: try other ports.
	var pc net.PacketConn
	var ln net.Listener
	for attempt := 0; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 20 {
			t.Fatalf("no loopback port free over both UDP and TCP: %v", err)
		}
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	}
	return pc.LocalAddr().String()
}

// TestACMECAComesBack checks a hub started while its CA is down: not ready, and ready with a
// certificate once the CA is up, at certmagic's first retry a minute later. It takes over a
// minute, so it runs only with HERALD_TEST_SLOW=1 (make test-slow).
func TestACMECAComesBack(t *testing.T) {
	if os.Getenv("HERALD_TEST_SLOW") == "" {
		t.Skip("takes over a minute: run with HERALD_TEST_SLOW=1 (make test-slow)")
	}
	_, caPort, _ := net.SplitHostPort(freeAddr(t))
	addr, ops := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	certs := filepath.Join(goEnv(t, "GOMODCACHE"), "github.com", "letsencrypt", "pebble", "v2@"+pebbleVersion, "test", "certs")
	env := map[string]string{
		"SERVER_NAME":    "hub.test:" + port,
		"GLOBAL_OPTIONS": "acme_ca " + pebbleDir(caPort) + "\nacme_ca_root " + filepath.Join(certs, "pebble.minica.pem") + "\nauto_https disable_redirects",
	}
	log := startHTTPS(t, env, "--listen", addr, "--metrics-addr", ops, "--data-dir", t.TempDir())
	waitUp(t, addr)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "no certificate for hub.test yet") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line saying why:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := startPebbleOn(t, caPort, nil, pebbleValidity)
	waitReadyWithin(t, ops, log, 90*time.Second)
	servedCert(t, addr, "hub.test", p.issuingRoot(t))
}
