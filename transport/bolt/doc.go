// Package bolt is the persistent Transport and Herald's default store: the log lives in one
// embedded bbolt file, so history (Last-Event-ID replay) survives a restart of the hub.
//
// # Layout
//
// Inside the top-level bucket (Options.BucketName, "updates" by default):
//
//	seq/  Seq as 8 bytes big-endian → the update in a compact binary encoding
//	id/   update ID → Seq, so that Lookup is one B+tree search, not a scan
//	meta  head, oldest retained Seq, oldest stored Seq, counts and byte tallies
//
// The meta record keeps Head (and so Seq numbering) across restarts even when every update was
// dropped, and keeps the bounds' tallies so that Open never scans the log.
//
// # Durability: a write-ahead log, then bbolt
//
// Append returns nil only once its update is in the write-ahead log (two files beside the bbolt
// file, see wal.go) and the log is synced. A single committer goroutine writes the log: it
// takes every append queued while the previous sync ran, checks IDs for duplicates (including
// against earlier appends of the same batch), assigns Seqs and syncs them together (group
// commit), and each Append gets its own result. If the write fails every Append of the batch
// returns an error wrapping transport.ErrUnavailable and none of them is visible.
//
// With Options.SyncInterval (sync_interval in the URL) Append returns once the batch is
// written to the log, and the committer syncs it at most an interval later, before moving to
// the other log file, and at Close: a power loss may then lose the last interval's updates,
// never leaving a gap (wal.go explains why), and a crash of the process alone loses nothing.
//
// An applier goroutine then commits the acknowledged updates to bbolt, many per transaction;
// until it has, Read, Lookup and the duplicate check find them in memory. While bbolt refuses
// commits (disk full, Options.MaxFileSize) the applier retries and appends go on in the log,
// up to a bound past which they fail with the cause. Open commits to bbolt what the log holds
// beyond bbolt's head (updates acknowledged before a crash), then starts the log over.
//
// # Bounds
//
// After every append the log holds at most Options.Size updates whose summed memory.Cost is at
// most Options.MaxBytes (the newest update is always kept). Dropped updates are unreadable at
// once; deleting their records is done in the same bbolt commit with probability
// Options.CleanupFrequency, and always once enough of them are waiting. bbolt reuses freed
// pages but never shrinks the file: compact it offline with `bbolt compact` if needed.
//
// # System updates
//
// System updates (transport.Update.System: subscription events, control updates) describe
// this process's live connections and need no durability. Append puts them in an in-memory
// ring bounded by Options.SystemSize, never in the write-ahead log or bbolt, so a flood of
// them costs no sync and no disk and never evicts stored history. Their Seq comes from the
// same counter as stored updates', so stored Seqs have gaps; the write-ahead log covers each
// gap with a skip record (see wal.go). While the committer syncs a batch whose Seqs it has
// taken, system updates appended meanwhile get later Seqs and stay unreadable until the batch
// is resolved, so that no reader passes the batch's Seqs before they are readable. Close
// stores the last Seq given in meta; after a crash the Seqs of system updates since the last
// stored update may be given again, to a process none of whose readers saw them.
//
// # Readers
//
// Read uses a read-only transaction and a cursor seek for what bbolt holds, then the updates
// waiting for bbolt in memory, holding at most limit updates; it does not block appends.
// Waiting readers are woken in process when an append is acknowledged. Only one process
// may open the file (bbolt's file lock); a second one fails after Options.LockTimeout.
package bolt
