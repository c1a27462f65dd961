// Package nats is the Transport for clusters on NATS JetStream: every Herald node appends to
// and tails one JetStream stream, so a subscriber on any node receives what was published on
// any other, in the same order everywhere.
//
// Open it with a URL (see ParseURL) such as nats://127.0.0.1:4222?stream=herald. It needs a
// NATS server with JetStream (2.9 or later; tested with 2.9.10).
//
// # The stream
//
// One stream (Options.Stream, "herald" by default) with subjects "<subject>.id.*" and
// "<subject>.sys.*", limits retention, MaxMsgs = Options.Size + Options.SystemSize, MaxBytes
// = Options.MaxBytes + Options.SystemMaxBytes, one message per subject, discard old, file
// storage and Options.Replicas replicas by default, and direct gets allowed. Open creates it,
// or checks that an existing one has the same subjects (or only the first, as streams made
// before system updates had their slots) and storage and updates its subjects, limits and
// replicas to the options (the last node to open sets them: give every node the same URL).
//
// System updates (subscription events, hub-to-hub control updates) go to SystemSize slot
// subjects "<subject>.sys.<k>", one message each, so that at most SystemSize are retained and
// a flood of them never pushes publishers' updates out (see system.go).
//
// Each update is one message on its own subject, "<subject>.id." followed by the base64url
// SHA-256 (first 128 bits) of its ID, whatever characters the ID holds; the body is the
// encoded update.
//
// # Appending
//
// Append publishes with the header Nats-Expected-Last-Subject-Sequence: 0, so JetStream
// stores the message only if no message of that subject is retained: a retained duplicate ID
// is refused atomically (ErrDuplicateID) on whichever node it arrives, and an ID whose update
// the limits dropped may be published again. Seq is the stream sequence from the ack, the
// same on every node.
//
// Lookup (Last-Event-ID) gets the last message of the ID's subject (a direct get from
// JetStream's per-subject index): no scan, and it finds exactly the retained updates.
//
// JetStream applies the limits itself after every message; its byte count is the message as
// stored (subject and headers included, about 90 bytes more than the update for a typical
// one), so MaxBytes is a little stricter than memory.Cost would make it.
//
// # Reading and tailing
//
// Every node runs one ordered consumer (nats.go's jetstream.OrderedConsumer) from the head
// it found at Open; it recreates itself after a lost connection or a missed message, resuming
// after the last sequence it delivered. A watcher goroutine keeps the newest 1024 updates it
// delivered (at most 8 MiB) in memory: waiting Reads, such as the hub's dispatch loop, are
// served from there. Other Reads (history replay, readers further behind) create a short-lived
// consumer starting at after+1, fetch up to limit messages without waiting, and delete it;
// JetStream starts it at the oldest retained message when after+1 is gone, so a reader
// resumes from its own position and never skips what the limits kept. (Batched direct gets
// would save the consumer, but need NATS 2.10.)
//
// # Outages
//
// Each request is bounded by Options.Timeout. The client never buffers publishes while
// disconnected, so during an outage Append fails at once, or after Timeout for a publish in
// flight when the server went away, with an error wrapping transport.ErrUnavailable (the hub
// answers 503); Read (without wait), Lookup and Head fail the same way and waiting Reads keep
// waiting. The client reconnects by itself (every 250 ms) and the ordered consumer resumes.
// A publish whose ack was lost may have been stored although Append failed: a retry with the
// same ID then gets ErrDuplicateID (409), never a second copy.
//
// # Durability
//
// Append returns once JetStream has acknowledged the message: stored by the stream's leader
// and, with replicas > 1, by a majority of the replicas. With file storage, the restart test
// kills nats-server (SIGKILL) while publishing and finds every acknowledged update after the
// restart. JetStream fsyncs its files every two minutes by default (sync_interval; every
// write is possible from NATS 2.10), so a machine crash or power loss can lose recent updates
// unless replicas on other machines hold them. Memory storage loses the stream when every
// replica restarts.
package nats
