// Package sse encodes and parses the text/event-stream format (Server-Sent Events).
//
// The hub encodes each update once with AppendEvent and shares the resulting bytes with every
// subscriber; the parser (Reader) serves the Go client, the load generator and the tests.
// Encoding never lets caller data start a new SSE field: line breaks in the id and type are
// dropped and every line of data gets its own "data: " prefix.
package sse
