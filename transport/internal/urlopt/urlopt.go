// Package urlopt parses the query parameters of a transport_url the same way for every
// transport (bolt, redis, nats): each parameter at most once, a bad value or an unknown
// parameter is an error that names it, and values are checked by a few shared rules.
package urlopt

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Param is one supported query parameter: Set checks its value and stores it in the options
// being built, or says what is wrong with it.
type Param struct {
	Name string
	Set  func(v string) error
}

// Parse applies the query of u to params. pkg prefixes every error (the transport's name,
// as in "redis: transport url: …"). Errors show u only redacted, never its password.
// Unknown parameters are reported together, sorted, after the known ones were applied, with
// the list of the supported ones in the order of params.
func Parse(pkg string, u *url.URL, params ...Param) error {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return fmt.Errorf("%s: transport url %q: query: %w", pkg, u.Redacted(), err)
	}
	var unknown []string
	for key, values := range q {
		if len(values) != 1 {
			return fmt.Errorf("%s: transport url: parameter %s given %d times", pkg, key, len(values))
		}
		i := slices.IndexFunc(params, func(p Param) bool { return p.Name == key })
		if i < 0 {
			unknown = append(unknown, key)
			continue
		}
		if err := params[i].Set(values[0]); err != nil {
			return fmt.Errorf("%s: transport url: parameter %s=%q: %w", pkg, key, values[0], err)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		names := make([]string, len(params))
		for i, p := range params {
			names[i] = p.Name
		}
		return fmt.Errorf("%s: transport url: unknown parameter(s) %s (supported: %s)", pkg, strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return nil
}

// Set returns a Param's Set that parses the value with parse and stores it in dst.
func Set[T any](dst *T, parse func(string) (T, error)) func(string) error {
	return func(v string) error {
		x, err := parse(v)
		if err != nil {
			return err
		}
		*dst = x
		return nil
	}
}

// NonEmpty accepts any value but the empty one (a name).
func NonEmpty(v string) (string, error) {
	if v == "" {
		return "", errors.New("must not be empty")
	}
	return v, nil
}

// Size parses a number of updates: 0 to 2^31-1.
func Size(v string) (int, error) {
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		return 0, err
	}
	return int(n), nil
}

// Bytes parses a non-negative number of bytes.
func Bytes(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err == nil && n < 0 {
		err = errors.New("must not be negative")
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Duration parses a positive Go duration such as 500ms.
func Duration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d <= 0 {
		err = errors.New("must be positive")
	}
	if err != nil {
		return 0, err
	}
	return d, nil
}
