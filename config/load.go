package config

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldhub/herald/internal/cli"
)

// Environment variables read by Load, as the reference hub names them.
const (
	EnvServerName      = "SERVER_NAME"
	EnvPublisherKey    = "MERCURE_PUBLISHER_JWT_KEY"
	EnvPublisherAlg    = "MERCURE_PUBLISHER_JWT_ALG"
	EnvSubscriberKey   = "MERCURE_SUBSCRIBER_JWT_KEY"
	EnvSubscriberAlg   = "MERCURE_SUBSCRIBER_JWT_ALG"
	EnvJWTKey          = "MERCURE_JWT_KEY" // both keys at once, below the specific ones
	EnvJWTAlg          = "MERCURE_JWT_ALG"
	EnvExtraDirectives = "MERCURE_EXTRA_DIRECTIVES"
	EnvTransportURL    = "MERCURE_TRANSPORT_URL"
	// EnvTrustedIssuers names the trusted issuers of draft-08 access tokens, separated by
	// spaces, checked with the top-level keys, as the reference image's issuer block does.
	// Unset, and with no issuer directive, the hub trusts DefaultTrustedIssuer.
	EnvTrustedIssuers = "MERCURE_TRUSTED_ISSUERS"
	EnvConfigFile     = "HERALD_CONFIG"
)

// EnvGlobalOptions holds the reference image's Caddy global options. Herald reads those that
// mean something to it (globalOptions); any other is an error naming it.
const EnvGlobalOptions = "GLOBAL_OPTIONS"

// caddyOnly are the reference image's other Caddy variables: Herald has no Caddy, so a
// non-empty one is reported rather than silently ignored.
var caddyOnly = []string{"CADDY_EXTRA_CONFIG", "CADDY_SERVER_EXTRA_DIRECTIVES"}

// globalOptions are the Caddy global options Herald reads from GLOBAL_OPTIONS: each is also a
// directive of the same name and meaning.
var globalOptions = []string{"email", "acme_ca", "acme_ca_root", "local_certs", "auto_https", "http_port", "https_port", "grace_period", "debug"}

// applyGlobalOptions applies the reference image's Caddy global options, one a line, as the
// directives of the same names. An option Herald does not read is an error naming it: it may
// be one that matters, such as a storage or a CA setting.
func applyGlobalOptions(c *Config, text string) error {
	lines := strings.Split(text, "\n")
	var errs []error
	for i, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || slices.Contains(globalOptions, fields[0]) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s line %d: Herald does not read the global option %q (it reads %s)", EnvGlobalOptions, i+1, fields[0], strings.Join(globalOptions, ", ")))
		lines[i] = "" // keeps the line numbers of the others
	}
	errs = append(errs, ApplyDirectives(c, EnvGlobalOptions, strings.Join(lines, "\n")))
	return errors.Join(errs...)
}

// Load builds the configuration of `herald serve` from its arguments (without the command
// name) and the environment (getenv, usually os.Getenv). It returns flag.ErrHelp after
// printing help to stdout when asked for it; a mistake in the flags is printed to stderr with
// the usage, and returned.
func Load(args []string, getenv func(string) string, stdout, stderr io.Writer) (Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	configFile := fs.String("config", getenv(EnvConfigFile), "configuration file: one directive a line, as in "+EnvExtraDirectives+" (env "+EnvConfigFile+")")
	dev := fs.Bool("dev", false, "development mode: a random JWT key when none is set, anonymous subscribers, CORS and cookie publishes from any origin; prints a ready token")
	pubKey := fs.String("publisher-jwt-key", "", "publishers' JWT key (env "+EnvPublisherKey+")")
	pubAlg := fs.String("publisher-jwt-alg", "", "publishers' JWT algorithm, default HS256 (env "+EnvPublisherAlg+")")
	subKey := fs.String("subscriber-jwt-key", "", "subscribers' JWT key (env "+EnvSubscriberKey+")")
	subAlg := fs.String("subscriber-jwt-alg", "", "subscribers' JWT algorithm, default HS256 (env "+EnvSubscriberAlg+")")
	jwtKey := fs.String("jwt-key", "", "JWT key for both publishers and subscribers (env "+EnvJWTKey+")")
	// One flag per directive: --name_with_dashes, its value split on spaces like a directive line.
	dirFlags := map[string]*string{}
	boolFlags := map[string]*bool{}
	for _, d := range directives() {
		if d.name == "publisher_jwt" || d.name == "subscriber_jwt" {
			continue
		}
		name := strings.ReplaceAll(d.name, "_", "-")
		usage := d.usage
		if d.args == "" {
			boolFlags[d.name] = fs.Bool(name, false, usage)
		} else {
			dirFlags[d.name] = fs.String(name, "", d.args+": "+usage)
		}
	}
	cli.SetUsage(fs, "serve [flags]", fmt.Sprintf("Runs the hub. Flags override environment variables, which override the configuration file.\n"+
		"Environment: %s, %s/%s, %s/%s, %s, %s (one directive a line), %s (Caddy global options: the HTTPS ones, grace_period, debug).",
		EnvServerName, EnvPublisherKey, EnvPublisherAlg, EnvSubscriberKey, EnvSubscriberAlg, EnvJWTKey, EnvExtraDirectives, EnvGlobalOptions))
	if err := cli.Parse(fs, args, stdout, stderr); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	var errs []error
	// 1. The configuration file.
	if *configFile != "" {
		text, err := os.ReadFile(*configFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading configuration file: %w", err))
		} else if err := ApplyDirectives(&c, *configFile, string(text)); err != nil {
			errs = append(errs, err)
		}
	}
	// 2. The environment.
	if v := getenv(EnvServerName); v != "" {
		addr, names, err := parseServerName(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvServerName, err))
		}
		c.Addr, c.ServerNames = addr, names
	}
	setIf(&c.PublisherKey, getenv(EnvJWTKey))
	setIf(&c.SubscriberKey, getenv(EnvJWTKey))
	setIf(&c.PublisherAlg, getenv(EnvJWTAlg))
	setIf(&c.SubscriberAlg, getenv(EnvJWTAlg))
	setIf(&c.PublisherKey, getenv(EnvPublisherKey))
	setIf(&c.PublisherAlg, getenv(EnvPublisherAlg))
	setIf(&c.SubscriberKey, getenv(EnvSubscriberKey))
	setIf(&c.SubscriberAlg, getenv(EnvSubscriberAlg))
	setIf(&c.TransportURL, getenv(EnvTransportURL))
	for _, id := range strings.Fields(getenv(EnvTrustedIssuers)) {
		c.issuer(id)
	}
	if v := getenv(EnvExtraDirectives); v != "" {
		if err := ApplyDirectives(&c, EnvExtraDirectives, v); err != nil {
			errs = append(errs, err)
		}
	}
	if err := applyGlobalOptions(&c, getenv(EnvGlobalOptions)); err != nil {
		errs = append(errs, err)
	}
	for _, name := range caddyOnly {
		if strings.TrimSpace(getenv(name)) != "" {
			c.Notes = append(c.Notes, name+" is Caddy configuration; Herald has no Caddy and does not read it")
		}
	}
	// 3. Flags, in the order the user gave them.
	fs.Visit(func(f *flag.Flag) {
		dname := strings.ReplaceAll(f.Name, "-", "_")
		if p, ok := dirFlags[dname]; ok {
			errs = append(errs, applyFlag(&c, f.Name, dname, *p))
		}
		if p, ok := boolFlags[dname]; ok {
			errs = append(errs, applyFlag(&c, f.Name, dname, strconv.FormatBool(*p)))
		}
	})
	setIf(&c.PublisherKey, *jwtKey)
	setIf(&c.SubscriberKey, *jwtKey)
	setIf(&c.PublisherKey, *pubKey)
	setIf(&c.PublisherAlg, *pubAlg)
	setIf(&c.SubscriberKey, *subKey)
	setIf(&c.SubscriberAlg, *subAlg)
	c.Dev = *dev
	c.resolveHTTPS()
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// DefaultTrustedIssuer is the issuer `herald serve` trusts, with the top-level keys, when
// neither an issuer directive nor EnvTrustedIssuers names one: the reference image's default.
const DefaultTrustedIssuer = "https://localhost"

// setIf sets *dst to v when v is not empty.
func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// parseServerName reads SERVER_NAME as Caddy reads a site address. ":PORT" and "http://..."
// are plain HTTP on that address (a host without a port listens on 80). Host names, one or
// several separated by commas or spaces, with or without "https://", are served over HTTPS
// with certificates for them: names holds them, and addr is ":PORT" when they give a port
// (all the same one) or "" for the https_port, which resolveHTTPS fills in.
func parseServerName(v string) (addr string, names []string, err error) {
	sites := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(sites) == 0 {
		return "", nil, errors.New("empty")
	}
	port := ""
	for _, site := range sites {
		plain := strings.HasPrefix(site, "http://")
		site = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(site, "http://"), "https://"), "/")
		host, p := site, ""
		if strings.HasPrefix(site, ":") || strings.HasPrefix(site, "[") || strings.Count(site, ":") == 1 {
			if host, p, err = net.SplitHostPort(site); err != nil {
				return "", nil, fmt.Errorf("%q: %w", site, err)
			}
		}
		if plain || host == "" {
			if len(sites) > 1 {
				return "", nil, fmt.Errorf("%q: a plain HTTP address must be the only one", v)
			}
			if p == "" {
				p = "80"
			}
			return net.JoinHostPort(host, p), nil, nil
		}
		if len(names) > 0 && p != port {
			return "", nil, fmt.Errorf("%q: every host name must use the same port", v)
		}
		port = p
		names = append(names, host)
	}
	if port != "" {
		addr = ":" + port
	}
	return addr, names, nil
}

// resolveHTTPS completes the HTTPS settings once every source is read: host names without a
// port listen on https_port, or, with auto_https off and no tls files, serve plain HTTP on
// http_port.
func (c *Config) resolveHTTPS() {
	if len(c.ServerNames) == 0 || c.Addr != "" {
		return
	}
	if c.AutoHTTPS == "off" && c.TLSCert == "" {
		c.Addr = ":" + strconv.Itoa(cmp.Or(c.HTTPPort, 80))
		return
	}
	c.Addr = ":" + strconv.Itoa(cmp.Or(c.HTTPSPort, 443))
}

// Validate checks values that directives cannot check alone.
func (c Config) Validate() error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls needs both a certificate and a key"))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.SyncInterval != 0 {
		if u, err := url.Parse(c.TransportURL); err == nil && u.Scheme != "bolt" {
			errs = append(errs, fmt.Errorf("sync_interval applies to the bolt transport only, and transport_url's scheme is %q", u.Scheme))
		}
	}
	if c.HubURL != "" {
		if u, err := url.Parse(c.HubURL); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "/.well-known/mercure" || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("hub_url %q: want an absolute URL whose path is /.well-known/mercure", c.HubURL))
		}
	}
	if c.MaxInflightBodyBytes > 0 && c.MaxBodyBytes > c.MaxInflightBodyBytes {
		errs = append(errs, fmt.Errorf("max_inflight_body_bytes %d is smaller than max_body_bytes %d: no body that large could ever be read", c.MaxInflightBodyBytes, c.MaxBodyBytes))
	}
	if c.ResourceIdentifier != "" {
		if u, err := url.Parse(c.ResourceIdentifier); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("resource_identifier %q: want an absolute URL such as https://hub.example.com/.well-known/mercure", c.ResourceIdentifier))
		}
	}
	if !c.Dev && c.PublisherKey == "" && c.PublisherJWKS == "" {
		errs = append(errs, fmt.Errorf("no publisher key: set %s (or %s), use --publisher-jwt-key, or run with --dev", EnvPublisherKey, EnvJWTKey))
	}
	return errors.Join(errs...)
}
