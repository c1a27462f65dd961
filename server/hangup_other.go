//go:build !linux

package server

import (
	"errors"
	"net"
)

// hangupWatcher is Linux-only; elsewhere a vanished client is noticed at the next write
// (a heartbeat at the latest), and streams stay in Go's poller.
type hangupWatcher struct{}

func newHangupWatcher() (*hangupWatcher, error) {
	return nil, errors.New("not supported on this system")
}

func (w *hangupWatcher) add(*rawStream) (int, bool, error) {
	return -1, false, errors.New("not supported")
}
func (w *hangupWatcher) wantWrite(*rawStream, bool) error { return errors.New("not supported") }
func (w *hangupWatcher) remove(*rawStream)                {}
func (w *hangupWatcher) register(net.Conn, watched, uint32) (int, bool, uint64, error) {
	return -1, false, 0, errors.New("not supported")
}
func (w *hangupWatcher) modify(int, uint64, uint32, bool) error { return errors.New("not supported") }
func (w *hangupWatcher) unregister(int, uint64)                 {}

// watched is what the watcher reports events to; see hangup_linux.go.
type watched interface{ wake(events uint32) }

func (w *hangupWatcher) close() {}

// Raw streams exist only on Linux: these are never called elsewhere.
var errWouldBlock = errors.New("would block")

func writeFull(int, []byte) (int, error) { return 0, errors.New("not supported") }
func closeFD(int) error                  { return errors.New("not supported") }
