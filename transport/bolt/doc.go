// Package bolt is the persistent Transport and Herald's default store: the log lives in one
// embedded bbolt file, so history (Last-Event-ID replay) survives a restart of the hub.
//
// # Layout
//
// Inside the top-level bucket (Options.BucketName, "updates" by default):
//
//	seq/  Seq as 8 bytes big-endian → the update in a compact binary encoding
//	id/   update ID → Seq, so that Lookup is one B+tree search, not a scan
//	meta  head, oldest retained Seq, oldest stored Seq and byte tallies
//
// The meta record keeps Head (and so Seq numbering) across restarts even when every update was
// dropped, and keeps the bounds' tallies so that Open never scans the log.
//
// # Durability and group commit
//
// Append returns nil only once its update is committed and fsynced. A single committer
// goroutine owns all writes: it takes every append queued while the previous commit was
// syncing and stores them in one transaction, so N concurrent publishers share one fsync. IDs
// are checked for duplicates inside that transaction, including against earlier appends of the
// same batch, and each Append gets its own result. If the commit fails (disk full, I/O error,
// Options.MaxFileSize reached) every Append of the batch returns an error wrapping
// transport.ErrUnavailable and none of them is visible.
//
// # Bounds
//
// After every append the log holds at most Options.Size updates whose summed memory.Cost is at
// most Options.MaxBytes (the newest update is always kept). Dropped updates are unreadable at
// once; deleting their records is done in the same commit with probability
// Options.CleanupFrequency, and always once enough of them are waiting. bbolt reuses freed
// pages but never shrinks the file: compact it offline with `bbolt compact` if needed.
//
// # Readers
//
// Read uses a read-only transaction and a cursor seek, holding at most limit updates; it does
// not block appends. Waiting readers are woken in process when a commit lands. Only one process
// may open the file (bbolt's file lock); a second one fails after Options.LockTimeout.
package bolt
