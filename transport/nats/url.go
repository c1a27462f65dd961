package nats

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scheme is the transport_url scheme of this transport.
const Scheme = "nats"

// ParseURL reads a transport_url of the nats scheme:
//
//	nats://127.0.0.1:4222?stream=herald
//	nats://user:secret@nats-1:4222?servers=nats-2:4222,nats-3:4222&replicas=3
//	nats://s3cr3t-token@nats.example.com?stream=prod&size=500000
//
// The host defaults to 127.0.0.1 and the port to 4222. User info gives a user and password,
// or a token when there is no password. TLS is used when the server requires it, with the
// system's roots. Query parameters, each with its default:
//
//	stream     herald        the JetStream stream
//	subject    stream name   subject prefix of the updates (prefix.id.<hash of the id>)
//	size       100000        updates kept for history (the stream's max_msgs)
//	max_bytes  268435456     bound on the stream's bytes (max_bytes, as JetStream counts them)
//	replicas   1             copies of the stream (1 to 5; over 1 needs a JetStream cluster)
//	storage    file          file or memory
//	timeout    5s            bound on every request to NATS, and on the dial
//	creds      none          NATS credentials file (user JWT and NKey seed)
//	servers    none          more seed servers, host:port separated by commas
//
// A parameter given twice, a value out of range and any other parameter are errors that name
// it. Errors never contain the password or token.
func ParseURL(u *url.URL) (Options, error) {
	var opts Options
	if !strings.EqualFold(u.Scheme, Scheme) {
		return opts, fmt.Errorf("nats: transport url %q: scheme is %q, want %q", u.Redacted(), u.Scheme, Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") {
		return opts, fmt.Errorf("nats: transport url %q: want nats://host:port?stream=NAME", u.Redacted())
	}
	if u.Fragment != "" {
		return opts, fmt.Errorf("nats: transport url %q: fragment %q is not supported", u.Redacted(), u.Fragment)
	}
	server, err := serverURL(u.Host)
	if err != nil {
		return opts, fmt.Errorf("nats: transport url %q: %w", u.Redacted(), err)
	}
	opts.Servers = []string{server}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			opts.Username, opts.Password = u.User.Username(), pw
		} else {
			opts.Token = u.User.Username()
		}
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return opts, fmt.Errorf("nats: transport url %q: query: %w", u.Redacted(), err)
	}
	var unknown []string
	for key, values := range q {
		if len(values) != 1 {
			return opts, fmt.Errorf("nats: transport url: parameter %s given %d times", key, len(values))
		}
		v := values[0]
		bad := func(err error) error {
			return fmt.Errorf("nats: transport url: parameter %s=%q: %w", key, v, err)
		}
		switch key {
		case "stream":
			if v == "" {
				return opts, bad(fmt.Errorf("must not be empty"))
			}
			if err := checkStreamName(v); err != nil {
				return opts, bad(err)
			}
			opts.Stream = v
		case "subject":
			if err := checkSubject(v); err != nil {
				return opts, bad(err)
			}
			opts.Subject = v
		case "size":
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return opts, bad(err)
			}
			opts.Size = int(n)
		case "max_bytes":
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 0 {
				err = fmt.Errorf("must not be negative")
			}
			if err != nil {
				return opts, bad(err)
			}
			opts.MaxBytes = n
		case "replicas":
			n, err := strconv.Atoi(v)
			if err == nil && (n < 1 || n > 5) {
				err = fmt.Errorf("must be between 1 and 5")
			}
			if err != nil {
				return opts, bad(err)
			}
			opts.Replicas = n
		case "storage":
			s := Storage(strings.ToLower(v))
			if s != FileStorage && s != MemoryStorage {
				return opts, bad(fmt.Errorf("want %s or %s", FileStorage, MemoryStorage))
			}
			opts.Storage = s
		case "timeout":
			d, err := time.ParseDuration(v)
			if err == nil && d <= 0 {
				err = fmt.Errorf("must be positive")
			}
			if err != nil {
				return opts, bad(err)
			}
			opts.Timeout = d
		case "creds":
			if v == "" {
				return opts, bad(fmt.Errorf("must not be empty"))
			}
			opts.CredsFile = v
		case "servers":
			for hp := range strings.SplitSeq(v, ",") {
				s, err := serverURL(strings.TrimPrefix(strings.TrimSpace(hp), "nats://"))
				if err != nil || strings.TrimSpace(hp) == "" {
					return opts, bad(fmt.Errorf("want host:port separated by commas"))
				}
				opts.Servers = append(opts.Servers, s)
			}
		default:
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return opts, fmt.Errorf("nats: transport url: unknown parameter(s) %s (supported: stream, subject, size, max_bytes, replicas, storage, timeout, creds, servers)", strings.Join(unknown, ", "))
	}
	return opts, nil
}

// serverURL returns nats://host:port for a URL host, with the default host and port.
func serverURL(hostport string) (string, error) {
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
	} else if strings.Count(hostport, ":") == 1 && strings.HasSuffix(hostport, ":") {
		host = strings.TrimSuffix(hostport, ":")
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "4222"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return "nats://" + net.JoinHostPort(host, port), nil
}
