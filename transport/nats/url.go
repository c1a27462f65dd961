package nats

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/heraldhub/herald/transport/internal/urlopt"
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
//	system_size  10000       system updates (subscription events) kept apart from size
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

	err = urlopt.Parse("nats", u,
		urlopt.Param{Name: "stream", Set: urlopt.Set(&opts.Stream, func(v string) (string, error) {
			if _, err := urlopt.NonEmpty(v); err != nil {
				return "", err
			}
			return v, checkStreamName(v)
		})},
		urlopt.Param{Name: "subject", Set: urlopt.Set(&opts.Subject, func(v string) (string, error) {
			return v, checkSubject(v)
		})},
		urlopt.Param{Name: "size", Set: urlopt.Set(&opts.Size, urlopt.Size)},
		urlopt.Param{Name: "max_bytes", Set: urlopt.Set(&opts.MaxBytes, urlopt.Bytes)},
		urlopt.Param{Name: "system_size", Set: urlopt.Set(&opts.SystemSize, urlopt.Size)},
		urlopt.Param{Name: "replicas", Set: urlopt.Set(&opts.Replicas, func(v string) (int, error) {
			n, err := strconv.Atoi(v)
			if err == nil && (n < 1 || n > 5) {
				err = fmt.Errorf("must be between 1 and 5")
			}
			return n, err
		})},
		urlopt.Param{Name: "storage", Set: urlopt.Set(&opts.Storage, func(v string) (Storage, error) {
			s := Storage(strings.ToLower(v))
			if s != FileStorage && s != MemoryStorage {
				return "", fmt.Errorf("want %s or %s", FileStorage, MemoryStorage)
			}
			return s, nil
		})},
		urlopt.Param{Name: "timeout", Set: urlopt.Set(&opts.Timeout, urlopt.Duration)},
		urlopt.Param{Name: "creds", Set: urlopt.Set(&opts.CredsFile, urlopt.NonEmpty)},
		urlopt.Param{Name: "servers", Set: func(v string) error {
			for hp := range strings.SplitSeq(v, ",") {
				s, err := serverURL(strings.TrimPrefix(strings.TrimSpace(hp), "nats://"))
				if err != nil || strings.TrimSpace(hp) == "" {
					return fmt.Errorf("want host:port separated by commas")
				}
				opts.Servers = append(opts.Servers, s)
			}
			return nil
		}},
	)
	if err != nil {
		return opts, err
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
