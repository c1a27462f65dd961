package auth

import (
	"errors"
	"fmt"
)

// ErrInvalidToken is wrapped by every error Verify and FromRequest return for
// a token that must not be trusted. An HTTP layer answers 401 for it; the
// error's text is a short reason that is safe to put in the response body.
var ErrInvalidToken = errors.New("invalid token")

// ErrExpired is wrapped by the error Verify returns for a token whose exp
// claim is in the past. It wraps ErrInvalidToken as well, so one
// errors.Is(err, ErrInvalidToken) test covers both; test for ErrExpired when
// the caller wants to say "expired" specifically (for example to let a
// client refresh its token).
var ErrExpired = fmt.Errorf("%w: token expired", ErrInvalidToken)

// ErrOriginNotAllowed is wrapped by the errors CheckOrigin returns. An HTTP
// layer answers 403 for it.
var ErrOriginNotAllowed = errors.New("origin not allowed")

// tokenError is a rejection with a short public reason (its Error text), a
// sentinel kind (ErrInvalidToken or ErrExpired) and, optionally, the
// underlying cause for logs and errors.Is/As.
type tokenError struct {
	reason string
	kind   error
	cause  error
}

func (e *tokenError) Error() string { return e.reason }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// invalid returns an ErrInvalidToken rejection with the given public reason.
func invalid(reason string, cause error) error {
	return &tokenError{reason: reason, kind: ErrInvalidToken, cause: cause}
}

// invalidf is invalid with a formatted reason and no cause.
func invalidf(format string, args ...any) error {
	return &tokenError{reason: fmt.Sprintf(format, args...), kind: ErrInvalidToken}
}
