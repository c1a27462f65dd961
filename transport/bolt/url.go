package bolt

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhub/herald/transport/internal/urlopt"
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
// max_bytes, lock_timeout (a Go duration such as 500ms), max_file_size, sync_interval (a Go
// duration; 0, the default, syncs before acknowledging, see Options.SyncInterval) and
// system_size (the system updates kept in memory, see Options.SystemSize). A parameter given
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

	err = urlopt.Parse("bolt", u,
		urlopt.Param{Name: "bucket_name", Set: urlopt.Set(&opts.BucketName, urlopt.NonEmpty)},
		urlopt.Param{Name: "size", Set: urlopt.Set(&opts.Size, urlopt.Size)},
		urlopt.Param{Name: "cleanup_frequency", Set: urlopt.Set(&opts.CleanupFrequency, func(v string) (float64, error) {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil && !(f >= 0 && f <= 1) {
				err = fmt.Errorf("must be between 0 and 1")
			}
			if err != nil {
				return 0, err
			}
			if f == 0 {
				f = -1 // forced cleanups only; 0 would select the default
			}
			return f, nil
		})},
		urlopt.Param{Name: "max_bytes", Set: urlopt.Set(&opts.MaxBytes, urlopt.Bytes)},
		urlopt.Param{Name: "lock_timeout", Set: urlopt.Set(&opts.LockTimeout, urlopt.Duration)},
		urlopt.Param{Name: "max_file_size", Set: urlopt.Set(&opts.MaxFileSize, urlopt.Bytes)},
		urlopt.Param{Name: "sync_interval", Set: urlopt.Set(&opts.SyncInterval, func(v string) (time.Duration, error) {
			d, err := time.ParseDuration(v)
			switch {
			case err != nil:
				return 0, err
			case d < 0:
				return 0, fmt.Errorf("must not be negative")
			case d == 0:
				return -1, nil // sync before acknowledging, given explicitly
			}
			return d, nil
		})},
		urlopt.Param{Name: "system_size", Set: urlopt.Set(&opts.SystemSize, urlopt.Size)},
	)
	if err != nil {
		return "", Options{}, err
	}
	return path, opts, nil
}
