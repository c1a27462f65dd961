package redis

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/heraldhub/herald/transport/internal/urlopt"
)

// Schemes of this transport's URLs: plain TCP and TLS.
const (
	Scheme    = "redis"
	SchemeTLS = "rediss"
)

// ParseURL reads a transport_url of the redis or rediss (TLS) scheme:
//
//	redis://127.0.0.1:6379/0?stream=herald
//	rediss://user:secret@redis.example.com:6380/2?stream=prod&size=500000
//
// The host defaults to 127.0.0.1 and the port to 6379; the path is the database number
// (default 0); user info gives the ACL user and password (AUTH). Query parameters, each with
// its default:
//
//	stream       herald     key of the stream; the index, meta and costs keys are named after it
//	size         100000     updates kept for history
//	max_bytes    268435456  bound on their summed cost (see memory.Cost)
//	system_size  10000      system updates (subscription events) kept apart from size
//	timeout      5s         bound on every call to Redis, and on the dial
//
// A parameter given twice, a value out of range and any other parameter are errors that name
// it. Errors never contain the password.
func ParseURL(u *url.URL) (Options, error) {
	var opts Options
	scheme := strings.ToLower(u.Scheme)
	if scheme != Scheme && scheme != SchemeTLS {
		return opts, fmt.Errorf("redis: transport url %q: scheme is %q, want %q or %q", u.Redacted(), u.Scheme, Scheme, SchemeTLS)
	}
	if u.Opaque != "" {
		return opts, fmt.Errorf("redis: transport url %q: want redis://host:port/db", u.Redacted())
	}
	if u.Fragment != "" {
		return opts, fmt.Errorf("redis: transport url %q: fragment %q is not supported", u.Redacted(), u.Fragment)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return opts, fmt.Errorf("redis: transport url %q: bad port %q", u.Redacted(), port)
	}
	opts.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.ParseUint(db, 10, 31)
		if err != nil {
			return opts, fmt.Errorf("redis: transport url %q: the path must be a database number, got %q", u.Redacted(), db)
		}
		opts.DB = int(n)
	}
	if scheme == SchemeTLS {
		opts.TLS = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}

	err := urlopt.Parse("redis", u,
		urlopt.Param{Name: "stream", Set: urlopt.Set(&opts.Stream, urlopt.NonEmpty)},
		urlopt.Param{Name: "size", Set: urlopt.Set(&opts.Size, urlopt.Size)},
		urlopt.Param{Name: "max_bytes", Set: urlopt.Set(&opts.MaxBytes, urlopt.Bytes)},
		urlopt.Param{Name: "system_size", Set: urlopt.Set(&opts.SystemSize, urlopt.Size)},
		urlopt.Param{Name: "timeout", Set: urlopt.Set(&opts.Timeout, urlopt.Duration)},
	)
	if err != nil {
		return opts, err
	}
	return opts, nil
}
