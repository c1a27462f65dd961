package server

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangupWatcher notices, without a goroutine per connection, what happens to the sockets of
// hijacked streams: one epoll set watches every socket for EPOLLRDHUP, EPOLLHUP and EPOLLERR
// (never for data, so a client sending bytes wakes nothing, except on a stream that seals its
// own TLS records: see rawStream.watchEvents), and, while a raw stream's socket
// is full, for EPOLLOUT. Without it a vanished client would only be noticed at the next
// heartbeat, and streams could not leave Go's poller.
type hangupWatcher struct {
	epfd    int
	mu      sync.Mutex
	streams map[uint64]watched // by token, the data of its epoll registration
	next    uint64             // the next token
	peak    int                // most entries streams has held since it was last made
	stop    chan struct{}
	done    chan struct{}
}

// watched is what the watcher reports a socket's events to: a hijacked stream, or an HTTP/2
// connection of the hub's own server. wake must not block.
type watched interface {
	wake(events uint32)
}

// wake reports the events of rs's socket: a hang-up (or, on a stream that seals its own
// records, anything readable) ends it; writable lets it flush what the socket refused.
func (rs *rawStream) wake(events uint32) {
	switch {
	case events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLIN) != 0:
		rs.p.hangup(rs)
	case events&unix.EPOLLOUT != 0:
		rs.p.schedule(rs)
	}
}

// hangupEvents are the events every watched socket is registered for, edge-triggered.
const hangupEvents = unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET

func newHangupWatcher() (*hangupWatcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	w := &hangupWatcher{epfd: epfd, streams: make(map[uint64]watched),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w, nil
}

// add watches rs's socket. For a plain TCP connection it takes the socket out of Go's poller:
// it returns a duplicate of the descriptor, watched, with raw true, and the caller closes
// rs.conn, which frees the poller's state for the connection (the runtime never returns
// that memory to the system, so it would otherwise grow with the peak number of streams).
// For a TLS connection, which must be written through its net.Conn, it watches the
// connection's own descriptor and returns raw false.
func (w *hangupWatcher) add(rs *rawStream) (fd int, raw bool, err error) {
	fd, raw, rs.token, err = w.register(rs.conn, rs, rs.watchEvents())
	return fd, raw, err
}

// register watches conn's socket for events on behalf of x, as add says, and returns the
// token that names the registration.
func (w *hangupWatcher) register(conn net.Conn, x watched, events uint32) (fd int, raw bool, tok uint64, err error) {
	sc, plain := conn.(syscall.Conn)
	if !plain {
		nc, ok := conn.(interface{ NetConn() net.Conn }) // TLS
		if ok {
			sc, ok = nc.NetConn().(syscall.Conn)
		}
		if !ok {
			return -1, false, 0, errors.New("the connection exposes no descriptor")
		}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false, 0, err
	}
	fd = -1
	var opErr error
	err = rc.Control(func(f uintptr) {
		if !plain {
			fd = int(f)
			return
		}
		// The duplicate shares the open file description, non-blocking as Go set it.
		fd, opErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
		if opErr != nil {
			opErr = fmt.Errorf("dup: %w", opErr)
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		return -1, false, 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Events carry a token rather than the descriptor: a descriptor number is reused as soon
	// as it is closed, and an event read just before its stream ended must not reach a new
	// stream that got the same number.
	w.next++
	ev := event(events, w.next)
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		if plain {
			_ = unix.Close(fd)
		}
		return -1, false, 0, fmt.Errorf("epoll_ctl add: %w", err)
	}
	w.streams[w.next] = x
	w.peak = max(w.peak, len(w.streams))
	return fd, plain, w.next, nil
}

// watchEvents are the events rs's socket is watched for: a stream that seals its own TLS
// records cannot read what the client sends, so anything readable ends it as a hang-up.
func (rs *rawStream) watchEvents() uint32 {
	if rs.tls != nil {
		return hangupEvents | unix.EPOLLIN
	}
	return hangupEvents
}

// event makes an epoll event whose data is token.
func event(events uint32, token uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: events, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
}

// token returns the data of an epoll event made by event.
func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// wantWrite starts or stops watching rs's socket for EPOLLOUT. Starting reports an event at
// once if the socket is writable already, so no wake-up is lost between a short write and
// this call.
func (w *hangupWatcher) wantWrite(rs *rawStream, on bool) error {
	return w.modify(rs.fd, rs.token, rs.watchEvents(), on)
}

// modify sets the events the registration tok of fd is watched for: events, and EPOLLOUT
// when out is set.
func (w *hangupWatcher) modify(fd int, tok uint64, events uint32, out bool) error {
	if out {
		events |= unix.EPOLLOUT
	}
	ev := event(events, tok)
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl mod: %w", err)
	}
	return nil
}

// remove stops watching rs's socket. It must be called before the descriptor is closed.
func (w *hangupWatcher) remove(rs *rawStream) { w.unregister(rs.fd, rs.token) }

// unregister ends the registration tok of fd. It must be called before fd is closed.
func (w *hangupWatcher) unregister(fd int, tok uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.streams, tok)
	_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	w.streams = shrink(w.streams, &w.peak)
}

// run waits for events until close, with a timeout so that it sees stop.
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
			x := w.streams[token(&ev)]
			w.mu.Unlock()
			if x != nil {
				x.wake(ev.Events)
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

// errWouldBlock is what a write to a full non-blocking socket fails with.
var errWouldBlock = unix.EAGAIN

// writeFull writes b to the non-blocking descriptor fd until it is all written or the write
// fails, errWouldBlock included, and returns how much was written.
func writeFull(fd int, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n, err := unix.Write(fd, b[done:])
		if n > 0 {
			done += n
		}
		switch {
		case err == nil && n <= 0:
			return done, io.ErrShortWrite // a socket never does this; do not spin if one did
		case err == nil:
		case errors.Is(err, unix.EINTR):
		default:
			return done, err
		}
	}
	return done, nil
}

// closeFD closes a descriptor of the pool's own.
func closeFD(fd int) error { return unix.Close(fd) }
