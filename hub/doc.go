// Package hub is Herald's core: subscribers, the topic index and the dispatch loop. It holds no
// HTTP code, so it can be embedded as a library and tested without a network.
//
// Data flow: Publish appends an update to the transport (the ordered log). Run tails the log
// and, for each update, encodes its SSE frame once and hands that shared frame to the queue of
// every matching subscriber. A Subscriber's owner (the HTTP layer) drains the queue and writes
// the frames; the hub itself never blocks on a subscriber: a full queue closes that subscriber
// with ErrSlow, and the client catches up from history when it reconnects.
//
// Lock order: Hub.mu before Subscriber.mu. No lock is held during I/O.
//
// Start with Hub.Run, Hub.dispatch and Subscriber.enqueue.
package hub
