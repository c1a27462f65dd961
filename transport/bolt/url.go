package bolt

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scheme is the transport_url scheme of this transport.
const Scheme = "bolt"

// ParseURL reads a transport_url of the bolt scheme, in the forms the reference Mercure hub
// accepts:
//
//	bolt:///var/lib/herald/updates.db   absolute path
//	bolt://herald.db                    path relative to the working directory
//	bolt://data/herald.db               idem
//
// Query parameters: bucket_name, size and cleanup_frequency as in the reference hub, plus
// max_bytes, lock_timeout (a Go duration such as 500ms) and max_file_size. A parameter given
// twice, a value out of range and any other parameter are errors that name it.
//
// Two values differ from the reference hub: size=0 selects DefaultSize (the log is always
// bounded; use a large size to keep more), and cleanup_frequency=0 means that dropped
// updates are deleted only by the forced cleanups (see Options.CleanupFrequency) — in both hubs
// a dropped update is never served again.
func ParseURL(u *url.URL) (path string, opts Options, err error) {
	if !strings.EqualFold(u.Scheme, Scheme) {
		return "", Options{}, fmt.Errorf("bolt: transport url %q: scheme is %q, want %q", u.Redacted(), u.Scheme, Scheme)
	}
	switch {
	case u.User != nil:
		return "", Options{}, fmt.Errorf("bolt: transport url %q: user info is not supported", u.Redacted())
	case u.Fragment != "":
		return "", Options{}, fmt.Errorf("bolt: transport url %q: fragment %q is not supported", u.Redacted(), u.Fragment)
	case u.Opaque != "":
		path = u.Opaque // bolt:herald.db
	default:
		path = u.Host + u.Path // bolt:///abs/path.db has no host; bolt://rel/path.db does
	}
	if path == "" {
		return "", Options{}, fmt.Errorf("bolt: transport url %q: no file path (want e.g. bolt://herald.db or bolt:///var/lib/herald/herald.db)", u.Redacted())
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return "", Options{}, fmt.Errorf("bolt: transport url %q: query: %w", u.Redacted(), err)
	}
	var unknown []string
	for key, values := range q {
		if len(values) != 1 {
			return "", Options{}, fmt.Errorf("bolt: transport url: parameter %s given %d times", key, len(values))
		}
		v := values[0]
		bad := func(err error) error {
			return fmt.Errorf("bolt: transport url: parameter %s=%q: %w", key, v, err)
		}
		switch key {
		case "bucket_name":
			if v == "" {
				return "", Options{}, bad(fmt.Errorf("must not be empty"))
			}
			opts.BucketName = v
		case "size":
			n, err := strconv.ParseUint(v, 10, 31)
			if err != nil {
				return "", Options{}, bad(err)
			}
			opts.Size = int(n)
		case "max_bytes":
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 0 {
				err = fmt.Errorf("must not be negative")
			}
			if err != nil {
				return "", Options{}, bad(err)
			}
			opts.MaxBytes = n
		case "cleanup_frequency":
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && !(f >= 0 && f <= 1) {
				err = fmt.Errorf("must be between 0 and 1")
			}
			if err != nil {
				return "", Options{}, bad(err)
			}
			if f == 0 {
				f = -1 // forced cleanups only; 0 would select the default
			}
			opts.CleanupFrequency = f
		case "lock_timeout":
			d, err := time.ParseDuration(v)
			if err == nil && d <= 0 {
				err = fmt.Errorf("must be positive")
			}
			if err != nil {
				return "", Options{}, bad(err)
			}
			opts.LockTimeout = d
		case "max_file_size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 0 {
				err = fmt.Errorf("must not be negative")
			}
			if err != nil {
				return "", Options{}, bad(err)
			}
			opts.MaxFileSize = n
		default:
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return "", Options{}, fmt.Errorf("bolt: transport url: unknown parameter(s) %s (supported: bucket_name, size, cleanup_frequency, max_bytes, lock_timeout, max_file_size)", strings.Join(unknown, ", "))
	}
	return path, opts, nil
}
