// Package server is Herald's HTTP layer: the Mercure publish and subscribe endpoints, CORS and
// discovery headers. It turns requests into hub calls and hub events into SSE bytes; the
// protocol logic that does not need HTTP lives in package hub.
//
// Start with Server.Handler (the routes), then publish.go and subscribe.go.
package server
