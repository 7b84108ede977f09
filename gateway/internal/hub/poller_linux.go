//go:build linux

package hub

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// readPoller waits for every polled connection's socket to become readable
// with one epoll instance and one goroutine, so an idle connection needs no
// goroutine of its own: a goroutine blocked in a read keeps at least a
// 2 KiB stack and a 0.4 KiB record, about half of what an idle connection
// cost (docs/decisions/0012-read-poller.md).
//
// Each socket is registered level-triggered and one-shot: an event disarms
// it until the connection has dealt with what it read (rearm), so one
// connection's frames are read and handled one batch at a time, in order,
// as a read loop would. The runtime's own poller keeps its registration of
// the socket; reads and writes still go through the net package.
//
// Registrations are keyed by a token, never by descriptor: the kernel drops
// a closed socket from the epoll set, and its number may be reused at once
// by a new connection, but a token is never reused, and every epoll_ctl
// runs inside RawConn.Control, which keeps the socket open meanwhile.
type readPoller struct {
	epfd int
	// wake is an eventfd that stops run.
	wake int
	// buf receives every read; only run uses it.
	buf []byte
	log *slog.Logger

	mu    sync.Mutex
	conns map[uint64]*conn
	next  uint64

	done chan struct{}
}

// pollReadSize is the most read from one socket per event; a larger frame
// is put together over several events.
const pollReadSize = 64 << 10

// wakeToken is the eventfd's token; connections' tokens start at 1.
const wakeToken = 0

func newReadPoller(log *slog.Logger) (*readPoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("hub: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("hub: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, wakeToken)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		_ = unix.Close(wake)
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("hub: epoll_ctl: %w", err)
	}
	return &readPoller{
		epfd:  epfd,
		wake:  wake,
		buf:   make([]byte, pollReadSize),
		log:   log,
		conns: make(map[uint64]*conn),
		done:  make(chan struct{}),
	}, nil
}

func setToken(ev *unix.EpollEvent, tok uint64) {
	ev.Fd = int32(uint32(tok))
	ev.Pad = int32(uint32(tok >> 32))
}

func tokenOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// add gives c a token; arm registers its socket.
func (p *readPoller) add(c *conn) {
	p.mu.Lock()
	p.next++
	c.pollTok = p.next
	p.conns[c.pollTok] = c
	p.mu.Unlock()
}

// remove forgets c: an event still on its way for it finds nothing.
func (p *readPoller) remove(c *conn) {
	p.mu.Lock()
	delete(p.conns, c.pollTok)
	p.mu.Unlock()
}

// arm asks for one event when c's socket is readable (or closed by the
// client). It fails once the socket is closed.
func (p *readPoller) arm(c *conn) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, c.pollTok)
	var opErr error
	err := c.raw.Control(func(fd uintptr) {
		opErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		if errors.Is(opErr, unix.ENOENT) {
			opErr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		}
	})
	if err != nil {
		return err
	}
	return opErr
}

// read reads what c's socket holds without waiting: nothing (and no
// error) when it holds nothing, io.EOF when the client has closed it.
func (p *readPoller) read(c *conn) ([]byte, error) {
	var n int
	var err error
	rerr := c.raw.Read(func(fd uintptr) bool {
		for {
			n, err = unix.Read(int(fd), p.buf)
			if err != unix.EINTR {
				return true
			}
		}
	})
	switch {
	case rerr != nil:
		return nil, rerr
	case err == unix.EAGAIN:
		return nil, nil
	case err != nil:
		return nil, err
	case n == 0:
		return nil, io.EOF
	}
	return p.buf[:n], nil
}

// run waits for events until stop.
func (p *readPoller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Nothing recoverable: a broken epoll descriptor. Every
			// polled connection still ends, by the ping loop's liveness
			// check and its close.
			p.log.Error("read poller stopped", slog.Any("error", err))
			return
		}
		for i := range events[:n] {
			tok := tokenOf(&events[i])
			if tok == wakeToken {
				return
			}
			p.mu.Lock()
			c := p.conns[tok]
			p.mu.Unlock()
			if c != nil {
				c.readable(p)
			}
		}
	}
}

// stop ends run and releases the poller; every polled connection must have
// ended.
func (p *readPoller) stop() {
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; any non-zero value wakes
	_, _ = unix.Write(p.wake, one[:])
	<-p.done
	_ = unix.Close(p.wake)
	_ = unix.Close(p.epfd)
}

// writeNonBlocking writes what of b the socket's buffer takes now: n
// bytes, and an error unless all were taken (unix.EAGAIN when the buffer
// is full). It runs inside RawConn.Control, not Write, which would refuse
// once an earlier blocking write's deadline has passed: writes are
// serialised by the send queue (one owner at a time), and this one never
// waits.
func writeNonBlocking(raw syscall.RawConn, b []byte) (n int, err error) {
	cerr := raw.Control(func(fd uintptr) {
		for n < len(b) {
			var m int
			m, err = unix.Write(int(fd), b[n:])
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				return
			}
			n += m
		}
	})
	if cerr != nil {
		return n, cerr
	}
	return n, err
}
