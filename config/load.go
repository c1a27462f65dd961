package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
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
	EnvConfigFile      = "HERALD_CONFIG"
)

// EnvGlobalOptions holds the reference image's Caddy global options, of which Herald reads
// grace_period only.
const EnvGlobalOptions = "GLOBAL_OPTIONS"

// caddyOnly are the reference image's other Caddy variables: Herald has no Caddy, so a
// non-empty one is reported rather than silently ignored.
var caddyOnly = []string{"CADDY_EXTRA_CONFIG", "CADDY_SERVER_EXTRA_DIRECTIVES"}

// applyGlobalOptions applies the grace_period line of the reference image's Caddy global
// options, which means the same there; other options are noted as not read.
func applyGlobalOptions(c *Config, text string) error {
	ignored := false
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "grace_period":
			if err := ApplyDirectives(c, EnvGlobalOptions, line); err != nil {
				return err
			}
		default:
			ignored = true
		}
	}
	if ignored {
		c.Notes = append(c.Notes, EnvGlobalOptions+" is Caddy configuration; Herald has no Caddy and reads only grace_period from it")
	}
	return nil
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
		"Environment: %s, %s/%s, %s/%s, %s, %s (one directive a line).",
		EnvServerName, EnvPublisherKey, EnvPublisherAlg, EnvSubscriberKey, EnvSubscriberAlg, EnvJWTKey, EnvExtraDirectives))
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
		addr, err := listenAddr(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvServerName, err))
		}
		c.Addr = addr
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
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// setIf sets *dst to v when v is not empty.
func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// listenAddr turns a SERVER_NAME such as ":3000", "localhost:3000", "http://host:8080" or a
// bare host name into a listen address. A bare name listens on port 80: Herald does not obtain
// certificates the way Caddy does.
func listenAddr(v string) (string, error) {
	v = strings.TrimSpace(v)
	if strings.ContainsAny(v, ", ") {
		return "", fmt.Errorf("%q: Herald listens on one address", v)
	}
	v = strings.TrimPrefix(v, "http://")
	if strings.HasPrefix(v, "https://") {
		return "", fmt.Errorf("%q: HTTPS needs the tls directive with a certificate and key; give a host:port", v)
	}
	v = strings.TrimSuffix(v, "/")
	if strings.HasPrefix(v, "[") || strings.Contains(v, ":") {
		return v, nil
	}
	return v + ":80", nil
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
	if c.MaxInflightBodyBytes > 0 && c.MaxBodyBytes > c.MaxInflightBodyBytes {
		errs = append(errs, fmt.Errorf("max_inflight_body_bytes %d is smaller than max_body_bytes %d: no body that large could ever be read", c.MaxInflightBodyBytes, c.MaxBodyBytes))
	}
	if !c.Dev && c.PublisherKey == "" && c.PublisherJWKS == "" {
		errs = append(errs, fmt.Errorf("no publisher key: set %s (or %s), use --publisher-jwt-key, or run with --dev", EnvPublisherKey, EnvJWTKey))
	}
	return errors.Join(errs...)
}
