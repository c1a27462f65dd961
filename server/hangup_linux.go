package server

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangupWatcher notices, without a goroutine per connection, that clients of hijacked streams
// closed or reset their connections: one epoll set watches every socket for EPOLLRDHUP,
// EPOLLHUP and EPOLLERR (never for data, so a client sending bytes wakes nothing). Without it
// a vanished client would only be noticed at the next heartbeat.
type hangupWatcher struct {
	epfd    int
	onHup   func(*rawStream)
	mu      sync.Mutex
	streams map[int]*rawStream // by socket descriptor
	stop    chan struct{}
	done    chan struct{}
}

func newHangupWatcher(onHup func(*rawStream)) (*hangupWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	w := &hangupWatcher{epfd: epfd, onHup: onHup, streams: make(map[int]*rawStream), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w, nil
}

// add watches rs's socket and returns its descriptor.
func (w *hangupWatcher) add(rs *rawStream) (int, error) {
	sc, ok := rs.conn.(syscall.Conn)
	if !ok {
		if nc, ok := rs.conn.(interface{ NetConn() net.Conn }); ok { // TLS
			sc, ok = nc.NetConn().(syscall.Conn)
		}
		if !ok {
			return -1, errors.New("the connection exposes no descriptor")
		}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var addErr error
	err = raw.Control(func(f uintptr) {
		fd = int(f)
		w.mu.Lock()
		defer w.mu.Unlock()
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET, Fd: int32(fd)}
		if addErr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); addErr == nil {
			w.streams[fd] = rs
		}
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		return -1, fmt.Errorf("epoll_ctl add: %w", err)
	}
	return fd, nil
}

// remove stops watching fd. It must be called before the connection is closed, so that a
// descriptor number reused by a new connection is never mistaken for the old one.
func (w *hangupWatcher) remove(fd int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.streams, fd)
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run waits for hang-ups until close. The short timeout lets it notice close promptly.
func (w *hangupWatcher) run() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 128)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n, err := unix.EpollWait(w.epfd, events, 100)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			w.mu.Lock()
			rs := w.streams[int(ev.Fd)]
			w.mu.Unlock()
			if rs != nil {
				w.onHup(rs)
			}
		}
	}
}

// close stops the watcher.
func (w *hangupWatcher) close() {
	close(w.stop)
	<-w.done
	_ = unix.Close(w.epfd)
}
