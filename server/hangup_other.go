//go:build !linux

package server

import "errors"

// hangupWatcher is Linux-only; elsewhere a vanished client is noticed at the next write
// (a heartbeat at the latest).
type hangupWatcher struct{}

func newHangupWatcher(func(*rawStream)) (*hangupWatcher, error) {
	return nil, errors.New("not supported on this system")
}

func (w *hangupWatcher) add(*rawStream) (int, error) { return -1, errors.New("not supported") }
func (w *hangupWatcher) remove(int)                  {}
func (w *hangupWatcher) close()                      {}
