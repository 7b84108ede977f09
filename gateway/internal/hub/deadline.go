package hub

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// gorilla/websocket sets the socket's write deadline before every frame it
// writes. For the runtime that is a lock and a timer moved in its heap, and
// the deepest point of a write: at 20,000 deliveries a second it took a
// fifth of the write loops' CPU, and it was where their fresh 2 KiB stacks
// had to grow. lazyDeadlineConn passes a write deadline on to the socket
// only when it is earlier than the one the socket has, or later by more
// than a slack, so a connection that writes often moves its timer a few
// times per WriteWait instead of once per frame. A write then has at least
// its wait minus the slack (7.5 s of the default 10 s) before it times out.

// deadlineSlack is the part of Limits.WriteWait by which a write's deadline
// may come early.
const deadlineSlack = 4

// lazyDeadlineConn is the hijacked socket as gorilla sees it. gorilla
// calls SetWriteDeadline only while it holds its write lock; the atomic
// keeps the wrapper correct without relying on that.
type lazyDeadlineConn struct {
	net.Conn
	slack time.Duration
	// set is the socket's write deadline in Unix nanoseconds, 0 for none.
	set atomic.Int64
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// SetWriteDeadline keeps the socket's deadline if t is at most the slack
// later than it.
func (c *lazyDeadlineConn) SetWriteDeadline(t time.Time) error {
	want, cur := unixNanos(t), c.set.Load()
	if want == cur || (cur != 0 && want > cur && want-cur <= int64(c.slack)) {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.set.Store(want)
	return nil
}

// SetDeadline sets both deadlines, and so the one SetWriteDeadline compares
// with.
func (c *lazyDeadlineConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetDeadline(t); err != nil {
		return err
	}
	c.set.Store(unixNanos(t))
	return nil
}

// lazyDeadlineWriter hands the upgrader a lazyDeadlineConn when it hijacks
// the connection.
type lazyDeadlineWriter struct {
	http.ResponseWriter
	writeWait time.Duration
}

func (w lazyDeadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked")
	}
	conn, brw, err := h.Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &lazyDeadlineConn{Conn: conn, slack: w.writeWait / deadlineSlack}, brw, nil
}
