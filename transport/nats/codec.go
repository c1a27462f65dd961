package nats

import "errors"

// errCorrupt reports a stream message that does not decode (not written by Herald, or by a
// newer one). Updates are encoded by transport/internal/codec.
var errCorrupt = errors.New("corrupt stream message")
