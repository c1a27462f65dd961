package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.conf")
	err := os.WriteFile(file, []byte("# comment\nheartbeat 10s\nwrite_timeout 20s\ncors_origins https://a.example https://b.example\nanonymous\npublisher_jwt filekey HS512\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"--config", file, "--heartbeat", "30s", "--listen", "127.0.0.1:4000"}, env(map[string]string{
		EnvServerName:      ":3001",
		EnvPublisherKey:    "envkey",
		EnvJWTKey:          "both",
		EnvExtraDirectives: "write_timeout 0\ndispatch_timeout 2\nsubscription_events_rate 50 200",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Addr = "127.0.0.1:4000"           // flag over SERVER_NAME
	want.Heartbeat = 30 * time.Second      // flag over file
	want.WriteTimeout = -1                 // env directive 0 = off, over file
	want.DispatchTimeout = 2 * time.Second // bare number = seconds
	want.CORSOrigins = []string{"https://a.example", "https://b.example"}
	want.Anonymous = true
	want.PublisherKey = "envkey" // specific env over MERCURE_JWT_KEY over file
	want.PublisherAlg = "HS512"  // from the file, not overridden
	want.SubscriberKey = "both"
	want.SubscriptionEventsRate, want.SubscriptionEventsBurst = 50, 200
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // every error is reported at once
	}{
		{"unsupported and unknown directives", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "transport bolt {\nfrobnicate 3\nheartbeat soon"}, []string{
			`the block form is not supported`, `unknown directive "frobnicate"`, `heartbeat: "soon" is not a duration`}},
		{"no key", nil, nil, []string{"no publisher key"}},
		{"bad event rate", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "subscription_events_rate 10 0\nsubscription_events_rate"}, []string{
			`subscription_events_rate: "0" is not a positive whole number`, `subscription_events_rate: takes a rate and an optional burst`}},
		{"bad number", []string{"--max-topics", "-3"}, map[string]string{EnvPublisherKey: "k"}, []string{`"-3" is not a non-negative whole number`}},
		{"bad log format", []string{"--log-format", "xml"}, map[string]string{EnvPublisherKey: "k"}, []string{`log_format "xml"`}},
		{"tls needs both", []string{"--tls", "cert.pem"}, map[string]string{EnvPublisherKey: "k"}, []string{"takes a certificate file and a key file"}},
		{"stray argument", []string{"extra"}, map[string]string{EnvPublisherKey: "k"}, []string{`unexpected argument "extra"`}},
		{"missing config file", []string{"--config", "/nonexistent/herald.conf"}, map[string]string{EnvPublisherKey: "k"}, []string{"reading configuration file"}},
		{"inflight below body", []string{"--max-body-bytes", "2000", "--max-inflight-body-bytes", "1000"}, map[string]string{EnvPublisherKey: "k"}, []string{"max_inflight_body_bytes 1000 is smaller than max_body_bytes 2000"}},
		{"bad read timeout", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "read_timeout -1s"}, []string{`read_timeout: "-1s" is not a duration`}},
		{"bad transport", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "transport redis"}, []string{`unknown transport "redis"`}},
		{"sync_interval without bolt", []string{"--sync-interval", "100ms", "--transport-url", "redis://127.0.0.1:6379/0?stream=h"}, map[string]string{EnvPublisherKey: "k"},
			[]string{`sync_interval applies to the bolt transport only, and transport_url's scheme is "redis"`}},
		{"hub_url without the hub path", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "hub_url https://hub.example.com/"},
			[]string{`hub_url "https://hub.example.com/": want an absolute URL whose path is /.well-known/mercure`}},
		{"hub_url relative", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "hub_url /.well-known/mercure"},
			[]string{`hub_url "/.well-known/mercure": want an absolute URL whose path is /.well-known/mercure`}},
		{"sync_interval in memory", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "transport local\nsync_interval 1s"},
			[]string{`sync_interval applies to the bolt transport only, and transport_url's scheme is "local"`}},
		{"bad sync_interval", []string{"--sync-interval", "often"}, map[string]string{EnvPublisherKey: "k"}, []string{`--sync-interval: "often" is not a duration`}},
		{"flag error names the flag once", []string{"--heartbeat", "xyz"}, map[string]string{EnvPublisherKey: "k"}, []string{`--heartbeat: "xyz" is not a duration like 40s or 10m`}},
		{"bad issuer settings", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "issuer\nissuer a owner x\nissuer a publisher jwt\nissuer a subscriber pem k\nissuer a publisher jwks_uri u RS256 ES256\nissuer a authorization_server yes\nissuer b publisher jwt k\nissuer b publisher jwks_uri u RS256"}, []string{
			"issuer: takes an issuer identifier", `unknown issuer setting "owner"`, "publisher takes jwt KEY [ALG] or jwks_uri URL [ALG]", `unknown subscriber setting "pem"`,
			"Herald pins one algorithm per key", "authorization_server takes no value", "publisher: jwt and jwks_uri are mutually exclusive"}},
		{"unclosed issuer block", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "issuer https://a.example {\npublisher {\njwt k\n}"}, []string{`the block "issuer https://a.example {" is not closed with }`}},
		{"caddy placeholder", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "issuer https://a.example {\npublisher {\njwt {env.MERCURE_PUBLISHER_JWT_KEY} {env.MERCURE_PUBLISHER_JWT_ALG}\n}\n}"}, []string{
			"Caddy placeholders are not expanded; give the value itself, or leave the role out to use the top-level key (MERCURE_PUBLISHER_JWT_KEY)"}},
		{"bad resource identifier", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "resource_identifier /.well-known/mercure"}, []string{`resource_identifier "/.well-known/mercure": want an absolute URL`}},
		{"protocol version 9", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "protocol_version_compatibility 9"}, []string{"only 7 and 8 are supported"}},
		{"literal backslash-n between directives", nil, map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: `anonymous\ncors_origins *`}, []string{`unknown directive "anonymous\\ncors_origins"`, "directives need real line breaks", "$'anonymous\\ncors_origins *'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.env), io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// sync_interval goes with the default (bolt) transport; 0 asks explicitly for a sync before
// every acknowledgement, which the Config tells from "not given" as -1.
func TestSyncInterval(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"--sync-interval", "100ms"}, 100 * time.Millisecond},
		{[]string{"--sync-interval", "2"}, 2 * time.Second},
		{[]string{"--sync-interval", "0"}, -1},
		{[]string{"--sync-interval", "50ms", "--transport-url", "bolt:///var/lib/herald/herald.db"}, 50 * time.Millisecond},
	} {
		c, err := Load(tc.args, env(map[string]string{EnvPublisherKey: "k"}), io.Discard, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if c.SyncInterval != tc.want {
			t.Errorf("%q: SyncInterval = %v, want %v", tc.args, c.SyncInterval, tc.want)
		}
	}
}

// The body limits: read_timeout is a duration whose 0 turns it off, max_inflight_body_bytes a
// number of bytes; a flag overrides MERCURE_EXTRA_DIRECTIVES.
func TestBodyLimits(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		extra    string
		timeout  time.Duration
		inflight int64
	}{
		{"defaults", nil, "", 0, 0},
		{"directives", nil, "read_timeout 3s\nmax_inflight_body_bytes 8388608", 3 * time.Second, 8 << 20},
		{"zero is off", nil, "read_timeout 0", -1, 0},
		{"bare seconds", nil, "read_timeout 30", 30 * time.Second, 0},
		{"flags over env", []string{"--read-timeout", "500ms", "--max-inflight-body-bytes", "2097152"}, "read_timeout 3s\nmax_inflight_body_bytes 8388608", 500 * time.Millisecond, 2 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.args, env(map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: tc.extra}), io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.ReadTimeout != tc.timeout || c.MaxInflightBodyBytes != tc.inflight {
				t.Errorf("ReadTimeout %v, MaxInflightBodyBytes %d; want %v, %d", c.ReadTimeout, c.MaxInflightBodyBytes, tc.timeout, tc.inflight)
			}
		})
	}
}

func TestServerName(t *testing.T) {
	for in, want := range map[string]struct {
		addr  string
		names []string
	}{
		":3000":                    {":3000", nil},
		"http://127.0.0.1:9000":    {"127.0.0.1:9000", nil},
		"http://example.com":       {"example.com:80", nil},
		"http://[::1]:3000":        {"[::1]:3000", nil},
		"hub.example.com":          {":443", []string{"hub.example.com"}},
		"https://hub.example.com/": {":443", []string{"hub.example.com"}},
		"hub.test:8443":            {":8443", []string{"hub.test"}},
		"a.example, b.example":     {":443", []string{"a.example", "b.example"}},
		"a.example b.example":      {":443", []string{"a.example", "b.example"}},
		"localhost":                {":443", []string{"localhost"}},
		"127.0.0.1:8443":           {":8443", []string{"127.0.0.1"}},
		"[::1]:8443":               {":8443", []string{"::1"}},
	} {
		c, err := Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvServerName: in}), io.Discard, io.Discard)
		if err != nil || c.Addr != want.addr || !reflect.DeepEqual(c.ServerNames, want.names) {
			t.Errorf("SERVER_NAME %q: Addr %q, ServerNames %q, %v; want %q, %q", in, c.Addr, c.ServerNames, err, want.addr, want.names)
		}
	}
	for in, want := range map[string]string{
		"a.example:8443, b.example:9443": `SERVER_NAME: "a.example:8443, b.example:9443": every host name must use the same port`,
		":80, hub.example.com":           `SERVER_NAME: ":80, hub.example.com": a plain HTTP address must be the only one`,
		" , ":                            `SERVER_NAME: empty`,
	} {
		_, err := Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvServerName: in}), io.Discard, io.Discard)
		if err == nil || err.Error() != want {
			t.Errorf("SERVER_NAME %q: %v; want %s", in, err, want)
		}
	}
}

func TestGlobalOptions(t *testing.T) {
	c, err := Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvServerName: "hub.test", EnvGlobalOptions: `
		# the reference image's global block, one option a line
		email ops@example.com
		acme_ca https://localhost:14000/dir
		acme_ca_root /etc/pebble.pem
		local_certs
		auto_https disable_redirects
		http_port 8080
		https_port 8443
		grace_period 3s
		debug`}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.Addr, want.ServerNames = ":8443", []string{"hub.test"}
	want.Email, want.ACMECA, want.ACMECARoot = "ops@example.com", "https://localhost:14000/dir", "/etc/pebble.pem"
	want.LocalCerts, want.AutoHTTPS, want.HTTPPort, want.HTTPSPort = true, "disable_redirects", 8080, 8443
	want.GracePeriod, want.LogLevel, want.PublisherKey = 3*time.Second, "debug", "k"
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	// The same settings as flags.
	f, err := Load([]string{"--email", "ops@example.com", "--acme-ca", "https://localhost:14000/dir", "--acme-ca-root", "/etc/pebble.pem", "--local-certs",
		"--auto-https", "disable_redirects", "--http-port", "8080", "--https-port", "8443", "--grace-period", "3s", "--debug"},
		env(map[string]string{EnvPublisherKey: "k", EnvServerName: "hub.test"}), io.Discard, io.Discard)
	if err != nil || !reflect.DeepEqual(f, want) {
		t.Fatalf("flags: %v\ngot  %+v\nwant %+v", err, f, want)
	}
	// auto_https off without tls files: plain HTTP on http_port.
	o, err := Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvServerName: "hub.test", EnvGlobalOptions: "auto_https off\nhttp_port 8080"}), io.Discard, io.Discard)
	if err != nil || o.Addr != ":8080" {
		t.Fatalf("auto_https off: %q, %v", o.Addr, err)
	}
	_, err = Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvGlobalOptions: "email a@example.com\nservers {\nhttp_port 99999\nauto_https on"}), io.Discard, io.Discard)
	for _, w := range []string{
		`GLOBAL_OPTIONS line 2: Herald does not read the global option "servers" (it reads email, acme_ca, acme_ca_root, local_certs, auto_https, http_port, https_port, grace_period, debug)`,
		`GLOBAL_OPTIONS line 3: http_port: "99999" is not a port (1-65535)`,
		`GLOBAL_OPTIONS line 4: auto_https: takes off or disable_redirects`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nwant %s", err, w)
		}
	}
}

// TestIssuers: the issuer directive, one line per setting of the reference's issuer block, and
// MERCURE_TRUSTED_ISSUERS, merged by identifier in the order given.
func TestIssuers(t *testing.T) {
	c, err := Load([]string{"--resource-identifier", "https://hub.example/.well-known/mercure"}, env(map[string]string{
		EnvPublisherKey:   "k",
		EnvTrustedIssuers: "https://app.example https://other.example",
		EnvExtraDirectives: "issuer https://as.example authorization_server\n" +
			"issuer https://as.example publisher jwks_uri https://as.example/jwks.json RS256\n" +
			"issuer https://as.example subscriber jwt secret HS512\n" +
			"issuer https://app.example subscriber jwt s2\n" +
			"protocol_version_compatibility 8",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []IssuerConfig{
		{ID: "https://app.example", Subscriber: KeyConfig{Key: "s2"}},
		{ID: "https://other.example"},
		{ID: "https://as.example", AuthorizationServer: true,
			Publisher:  KeyConfig{JWKS: "https://as.example/jwks.json", Alg: "RS256"},
			Subscriber: KeyConfig{Key: "secret", Alg: "HS512"}},
	}
	if !reflect.DeepEqual(c.Issuers, want) {
		t.Errorf("issuers %+v\nwant    %+v", c.Issuers, want)
	}
	// The reference hub's block form reads the same.
	blocks, err := Load(nil, env(map[string]string{
		EnvPublisherKey:   "k",
		EnvTrustedIssuers: "https://app.example https://other.example",
		EnvExtraDirectives: "issuer https://as.example {\n\tauthorization_server\n\tpublisher {\n\t\tjwks_uri https://as.example/jwks.json RS256\n\t}\n" +
			"\tsubscriber {\n\t\tjwt secret HS512 # comment\n\t}\n}\nissuer https://app.example {\n  subscriber {\n    jwt s2\n  }\n}\nanonymous",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(blocks.Issuers, want) || !blocks.Anonymous {
		t.Errorf("issuers from blocks %+v\nwant                %+v", blocks.Issuers, want)
	}
	if c.ResourceIdentifier != "https://hub.example/.well-known/mercure" {
		t.Errorf("resource identifier %q", c.ResourceIdentifier)
	}
	if len(c.Notes) != 0 {
		t.Errorf("notes %q", c.Notes)
	}
}

func TestCompatibilityDirectivesAreNoted(t *testing.T) {
	c, err := Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "subscriber_list_cache_size 100\nprotocol_version_compatibility 7", "CADDY_EXTRA_CONFIG": "x"}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Notes) != 2 || !strings.Contains(c.Notes[0], "subscriber_list_cache_size") || !strings.Contains(c.Notes[1], "CADDY_EXTRA_CONFIG") {
		t.Fatalf("notes %q", c.Notes)
	}
}

func TestHelpListsEveryOption(t *testing.T) {
	var out, errOut bytes.Buffer
	_, err := Load([]string{"--help"}, env(nil), &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	if errOut.Len() != 0 || !strings.HasPrefix(out.String(), "Usage: herald serve [flags]\n") {
		t.Errorf("help went to stderr, or begins %q", out.String()[:min(40, out.Len())])
	}
	for _, d := range directives() {
		if d.name == "publisher_jwt" || d.name == "subscriber_jwt" {
			continue
		}
		if name := "-" + strings.ReplaceAll(d.name, "_", "-"); !strings.Contains(out.String(), name) {
			t.Errorf("help does not list %s", name)
		}
	}
	for _, s := range []string{"-publisher-jwt-key", "-dev", "-config", EnvExtraDirectives, "default 40s"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("help does not mention %s", s)
		}
	}
}

func TestConnectionAndShutdownDirectives(t *testing.T) {
	c, err := Load([]string{"--max-connections", "5000"}, env(map[string]string{
		EnvPublisherKey:    "k",
		EnvExtraDirectives: "max_connections 100\nmax_connections_per_ip 20\ngrace_period 30s",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConnections != 5000 || c.MaxConnectionsPerIP != 20 || c.GracePeriod != 30*time.Second {
		t.Fatalf("max_connections %d, max_connections_per_ip %d, grace_period %v", c.MaxConnections, c.MaxConnectionsPerIP, c.GracePeriod)
	}
	c, err = Load([]string{"--grace-period", "0"}, env(map[string]string{EnvPublisherKey: "k"}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.GracePeriod != -1 || c.MaxConnections != 0 || c.MaxConnectionsPerIP != 0 {
		t.Fatalf("grace_period 0 gave %v; defaults max_connections %d, max_connections_per_ip %d", c.GracePeriod, c.MaxConnections, c.MaxConnectionsPerIP)
	}
	// The reference image's Caddy global option has the same name and meaning.
	c, err = Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvGlobalOptions: "grace_period 25s"}), io.Discard, io.Discard)
	if err != nil || c.GracePeriod != 25*time.Second || len(c.Notes) != 0 {
		t.Fatalf("GLOBAL_OPTIONS grace_period: %v, %v, notes %q", err, c.GracePeriod, c.Notes)
	}
	_, err = Load(nil, env(map[string]string{EnvPublisherKey: "k", EnvExtraDirectives: "max_connections -1\ngrace_period soon"}), io.Discard, io.Discard)
	for _, w := range []string{`max_connections: "-1" is not a non-negative whole number`, `grace_period: "soon" is not a duration`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not mention %q", err, w)
		}
	}
}

func TestHubURL(t *testing.T) {
	c, err := Load([]string{"--hub-url", "https://hub.example.com/.well-known/mercure"}, env(map[string]string{EnvPublisherKey: "k"}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HubURL != "https://hub.example.com/.well-known/mercure" {
		t.Errorf("HubURL = %q", c.HubURL)
	}
}
