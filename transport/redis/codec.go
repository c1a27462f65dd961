package redis

import "errors"

// errCorrupt reports a stream entry, index entry or meta field that Herald did not write
// (the keys were changed by something else). Updates themselves are encoded by
// transport/internal/codec.
var errCorrupt = errors.New("corrupt stream entry")
