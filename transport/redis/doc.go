// Package redis is the Transport for clusters on Redis Streams: every Herald node appends to
// and tails one Redis stream, so a subscriber on any node receives what was published on any
// other, in the same order everywhere.
//
// Open it with a URL (see ParseURL) such as redis://127.0.0.1:6379/0?stream=herald. It
// needs Redis 6.2 or later (XTRIM MINID); it was tested with 7.0. Redis Cluster and Sentinel
// discovery are not supported: point it at one primary (a managed endpoint that fails over
// is fine, within the durability limits below).
//
// # Keys
//
// For Options.Stream = "herald":
//
//	herald         the stream; entry "0-<seq>" has fields u (the encoded update) and f
//	               (the first retained Seq once it was appended)
//	herald:ids     sorted set: update ID → Seq (the score), the Last-Event-ID index
//	herald:meta    hash: head (the last Seq), first (no retained update has a lower Seq),
//	               bytes, sfirst (the oldest retained system update's Seq)
//	herald:costs   list: the memory.Cost of each retained update, oldest first
//	herald:sys     the stream of system updates (subscription events, control updates)
//	herald:sysids  sorted set: system update ID → Seq
//
// # Appending
//
// Append is one Lua script (EVALSHA), atomic in Redis: it refuses a retained duplicate ID
// (ZSCORE, nothing written), takes Seq = head+1, XADDs the entry with the explicit ID
// "0-<seq>", adds the ID to the index, then drops the oldest updates while the log holds more
// than Options.Size updates or more than Options.MaxBytes of summed memory.Cost: XTRIM MINID
// (exact) on the stream, ZREMRANGEBYSCORE on the index, LTRIM on the cost list. The bounds
// are therefore exact after every append, like the bolt transport's, and the index holds
// exactly the retained updates, so Lookup is one ZSCORE and no scan. The script checks
// everything before its first write, so a failing script leaves the log unchanged.
//
// A system update (transport.Update.System) goes through the same script, with the same
// duplicate check and the next Seq from the same head, but is XADDed to the system stream,
// trimmed to exactly Options.SystemSize entries (XTRIM MAXLEN, its index by
// ZREMRANGEBYSCORE): a flood of subscription events never drops a publisher's update. The
// cost list's length is the number of retained publishers' updates, since Seqs have gaps.
//
// Exact trimming (rather than XADD MAXLEN ~) costs little: Redis then walks at most one
// stream node to mark the dropped entry, 2 µs per append in INFO commandstats, against 21 µs
// for the whole script (and far less than an fsync). Approximate trimming would have kept
// whole extra nodes around, so reads and lookups would have had to filter by a separate
// bound; exact trimming keeps them single commands.
//
// Seq is the stream entry's sequence number, the same on every node and strictly increasing
// across both streams. Lua numbers are doubles, so Seqs are exact up to 2^53.
//
// # Reading and tailing
//
// Read without wait is one XRANGE from "0-<after+1>" on each stream (pipelined), merged by
// Seq. Every node runs one watcher goroutine that tails both streams with one XREAD BLOCK
// (5 s at a time) from the position it has reached,
// and keeps the newest 1024 updates (at most 8 MiB) in memory: waiting Reads, such as the
// hub's dispatch loop, are served from there without asking Redis again, and readers further
// behind read the stream itself from their own position, so nobody skips an update that the
// bounds kept. The f field tells the watcher which updates the bounds dropped since.
//
// # Outages
//
// Each call to Redis is bounded by Options.Timeout. While Redis is down, Append, Read
// (without wait), Lookup and Head fail promptly with errors wrapping
// transport.ErrUnavailable (the hub answers 503), and waiting Reads keep waiting. The client
// reconnects by itself; the watcher retries with backoff (50 ms to 1 s) and resumes from the
// last Seq it read, so each node tails on with no gap and no duplicate.
//
// An Append whose connection breaks after the script was sent has an unknown outcome: Append
// repeats it once, and the script takes an identical retained update under that ID for the
// one the lost call stored, so a nil error means stored once. If the repeat cannot reach
// Redis either, Append returns ErrUnavailable although the update may have been stored; a
// retry by the publisher with the same ID then gets ErrDuplicateID (409), never a second
// copy.
//
// # Durability
//
// Append returns once Redis has run the script. What survives a crash is Redis's
// persistence: with appendonly yes and appendfsync always the AOF is fsynced before the reply,
// so an acknowledged update survives a crash of Redis or of its machine; with everysec it
// survives a crash of Redis but up to about a second can be lost with the machine; with RDB
// snapshots only, everything since the last snapshot is lost. Replication is asynchronous: a
// failover can lose acknowledged updates. If the log goes back (Redis restarted without its
// data), every node logs an error and tails on from the new head.
//
// # Client
//
// The client is rueidis rather than go-redis, by measurement (BenchmarkAppend's script
// against redis-server with appendfsync always, 2 vCPU): equal with one publisher (2 200 to
// 2 600 appends/s each), rueidis ahead with 64 concurrent publishers (about 23 000 appends/s
// against 12 000 to 19 000 for go-redis with a 64-connection pool, 10 000 with a 16-connection
// one) at 40 % less client CPU per append (12 µs against 20 µs), thanks to its automatic
// pipelining over a few connections; XRANGE of 100 000 entries measured the same with both.
// rueidis also aborts a blocking XREAD when its context is cancelled, which Close relies on.
package redis
