// Package transport defines the ordered log of updates that every Herald node reads from.
//
// A Transport is the single source of truth for what was published and in which order. A
// publish is acknowledged only once Append has returned, and every node learns about updates by
// reading the log (Read with wait=true), whether the log lives in memory, in an embedded file or
// in a shared server. That one path is what lets the same hub code serve one node and many.
//
// Start with the Transport interface; transporttest holds the conformance suite that every
// implementation must pass.
package transport

import (
	"context"
	"errors"
)

// Update is one published message as the log stores it. Fields mirror the Mercure publish form.
// An Update is immutable once appended: readers share it and must not modify it.
type Update struct {
	// Seq is the update's position in the log, assigned by Append: strictly increasing, starting
	// at 1, never reused. Zero means "not appended yet".
	Seq uint64
	// ID is the update's public identifier (the SSE id). It is unique among retained updates.
	ID string
	// Topics lists the update's topics; the first one is canonical. Never empty.
	Topics []string
	// Private updates are only delivered to subscribers authorised for one of the topics.
	Private bool
	// Type is the SSE event type; empty for the default "message".
	Type string
	// Retry is the SSE reconnection time in milliseconds; zero means unset.
	Retry uint64
	// Data is the payload, sent as one or more "data:" lines.
	Data string
	// System marks an update the hub writes for itself (subscription events, hub-to-hub
	// control updates) rather than one a publisher sent. System updates take their Seq from
	// the same order as the others, but the transport retains them under a bound of their
	// own, so that however many of them are written, they never evict publishers' history;
	// a transport may keep them only in memory. Set by the caller before Append.
	System bool
}

// Errors returned by transports. Implementations wrap them with context; callers test with
// errors.Is.
var (
	// ErrClosed is returned by every method once Close has been called.
	ErrClosed = errors.New("transport: closed")
	// ErrDuplicateID is returned by Append when a retained update already has the same ID.
	ErrDuplicateID = errors.New("transport: duplicate update id")
	// ErrUnknownID is returned by Lookup for an ID that is not (or no longer) retained.
	ErrUnknownID = errors.New("transport: unknown update id")
	// ErrUnavailable wraps failures of the underlying store or server (disk full, connection
	// lost); the update was not stored and the caller may retry.
	ErrUnavailable = errors.New("transport: unavailable")
)

// Transport is an ordered, bounded log of updates.
//
// Rules every implementation follows (transporttest checks them):
//   - Append is atomic and durable to the transport's promise: once it returns nil, every later
//     Read on any node sees the update, in the same position for every reader.
//   - Sequence numbers are strictly increasing in log order. They may have gaps.
//   - Read never returns an update twice for the same `after` and never skips a retained one.
//   - Retention is bounded: old updates may be dropped from the front; Read then starts at the
//     oldest retained update, and Lookup of a dropped ID returns ErrUnknownID.
//   - System updates (Update.System) and the others are two retention classes in one order,
//     each with its own bound: appending system updates never pushes publishers' updates
//     below theirs, however many are appended. (A transport with one limit for both, nats,
//     lets publishers' updates use the share that system updates leave unused, and so push
//     out system updates older than the oldest publishers' update it keeps.) Read returns
//     both classes merged in Seq order, Lookup finds both, and a retained ID is unique across
//     both. Whether system updates survive a restart is up to the transport (they describe
//     live connections).
//   - All methods are safe for concurrent use. Close makes blocked Reads return ErrClosed.
type Transport interface {
	// Append stores u at the end of the log and sets u.Seq. u.ID must be set by the caller.
	// It returns ErrDuplicateID, leaving the log unchanged, when u.ID is already retained.
	Append(ctx context.Context, u *Update) error

	// Read returns at most limit updates with Seq greater than after, oldest first. When none
	// is available and wait is true, it blocks until one is appended, ctx ends (returning
	// ctx.Err()) or the transport is closed (ErrClosed); with wait false it returns an empty
	// slice at once.
	Read(ctx context.Context, after uint64, limit int, wait bool) ([]*Update, error)

	// Lookup returns the sequence number of the retained update with this ID, or
	// ErrUnknownID.
	Lookup(ctx context.Context, id string) (uint64, error)

	// Head returns the sequence number of the newest update (0 when the log is empty).
	Head(ctx context.Context) (uint64, error)

	// Close releases resources. It is safe to call more than once.
	Close() error
}
