package hub

import (
	"bytes"
	"net"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Reading a connection. Its first frame (unless the upgrade request
// authenticated) is read on the upgrade handler's goroutine (readFirst).
// After that the hub's read poller watches the socket, and a batch of
// frames is read when the socket has some, then handled on a short-lived
// goroutine; an idle connection holds no goroutine at all. Where there is
// no poller (the hub is not running, Config.BlockingReads, a system other
// than Linux, a socket that is not TCP) a goroutine of its own reads the
// connection (readLoop). Either way one connection's frames are handled
// one at a time, in order, and the read side of the connection (its rate
// limits, its channels) is owned by whoever handles the current batch.

// Read states of a connection (conn.readState).
const (
	// readUnpolled: read by readFirst or readLoop, not by the poller.
	readUnpolled uint32 = iota
	// readArmed: the poller waits for the socket.
	readArmed
	// readBusy: a batch is being read or handled; its owner rearms.
	readBusy
	// readStopping: busy, and the socket has been closed meanwhile; the
	// batch's owner ends reading instead of rearming.
	readStopping
	// readEnded: endRead has been started.
	readEnded
)

// readChunk is the read buffer of readFirst and readLoop.
const readChunk = 512

// wsMessage is a data message or a control frame other than a pong, with
// its own copy of the payload.
type wsMessage struct {
	op      byte
	payload []byte
}

// touch records that the client sent something; see pingLoop.
func (c *conn) touch() { c.lastRead.Store(c.h.now().UnixNano()) }

// consume parses what was left over from the last read followed by in,
// and keeps an incomplete frame for the next. first stops after the first
// data message, keeping what follows unparsed.
func (c *conn) consume(in []byte, first bool) ([]wsMessage, error) {
	if len(c.rd.partial) > 0 {
		in = append(c.rd.partial, in...)
	}
	var msgs []wsMessage
	used, err := c.rd.parse(in, c.h.lim.MaxMessageBytes, func(op byte, payload []byte) bool {
		c.touch()
		if op == opPong {
			return true
		}
		msgs = append(msgs, wsMessage{op: op, payload: bytes.Clone(payload)})
		return op != opClose && (!first || op >= opClose)
	})
	c.rd.partial = nil
	if err == nil && used < len(in) {
		c.rd.partial = bytes.Clone(in[used:])
	}
	return msgs, err
}

// runMessages handles msgs in order: a ping is answered, a close frame
// ends reading (errPeerClosed), a data message is handled unless the
// connection is closing.
func (c *conn) runMessages(msgs []wsMessage) error {
	for _, m := range msgs {
		switch m.op {
		case opPing:
			_ = c.ws.WriteControl(websocket.PongMessage, m.payload, c.h.now().Add(c.h.lim.WriteWait))
		case opClose:
			c.answerClose(m.payload)
			return errPeerClosed
		default:
			if c.ctx.Err() == nil {
				c.handle(m.payload)
			}
		}
	}
	return nil
}

// answerClose echoes the code of the client's close frame, unless the
// server has started closing (its own close frame is the counterpart).
func (c *conn) answerClose(payload []byte) {
	if c.closeCode.Load() != 0 {
		return
	}
	var msg []byte
	if code := closeCodeOf(payload); code != 1005 {
		msg = websocket.FormatCloseMessage(code, "")
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, msg, c.h.now().Add(c.h.lim.WriteWait))
}

// readFirst reads and handles frames until the first data message, which
// must authenticate, has been handled; it gives up after AuthTimeout.
func (c *conn) readFirst() error {
	nc := c.ws.NetConn()
	_ = nc.SetReadDeadline(c.h.now().Add(c.h.lim.AuthTimeout))
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	buf := make([]byte, readChunk)
	for {
		n, err := nc.Read(buf)
		msgs, perr := c.consume(buf[:n], true)
		if rerr := c.runMessages(msgs); rerr != nil {
			return rerr
		}
		if len(msgs) > 0 && msgs[len(msgs)-1].op < opClose {
			return nil
		}
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
	}
}

// startReading hands the connection to the hub's poller, or to a read
// loop of its own.
func (c *conn) startReading() {
	c.poll = c.h.poller()
	if c.poll != nil {
		c.raw = rawConnOf(c.ws.NetConn())
	}
	if c.raw == nil {
		c.poll = nil
		go c.readLoop()
		return
	}
	c.poll.add(c)
	c.readState.Store(readBusy)
	// Frames that came with the first one are handled now, as a batch:
	// the poller hears only of bytes still in the socket.
	msgs, err := c.consume(nil, false)
	c.runBatch(msgs, err)
}

// rawConnOf returns the socket under the hijacked connection, or nil when
// it cannot be polled.
func rawConnOf(nc net.Conn) syscall.RawConn {
	if l, ok := nc.(*lazyDeadlineConn); ok {
		nc = l.Conn
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// readable runs on the poller's goroutine when the socket has something
// to read, or the client has gone. Pongs and parts of frames are dealt
// with here; anything else goes to a goroutine (runBatch).
func (c *conn) readable(p *readPoller) {
	if !c.readState.CompareAndSwap(readArmed, readBusy) {
		return // an event for a connection that has ended
	}
	in, err := p.read(c)
	if err != nil {
		c.endPolled(err)
		return
	}
	msgs, err := c.consume(in, false)
	if err == nil && len(msgs) == 0 {
		c.rearm()
		return
	}
	go c.runBatch(msgs, err)
}

// runBatch handles a batch the poller read, then ends reading with err (a
// protocol error found after the batch's frames) or rearms.
func (c *conn) runBatch(msgs []wsMessage, err error) {
	if rerr := c.runMessages(msgs); rerr != nil {
		err = rerr
	}
	if err != nil {
		c.endPolled(err)
		return
	}
	c.rearm()
}

// rearm ends a batch: the poller watches the socket again, unless the
// socket was closed meanwhile.
func (c *conn) rearm() {
	if !c.readState.CompareAndSwap(readBusy, readArmed) {
		c.endPolled(net.ErrClosed) // readStopping
		return
	}
	if err := c.poll.arm(c); err != nil && c.readState.CompareAndSwap(readArmed, readEnded) {
		c.poll.remove(c)
		go c.endRead(err)
	}
}

// endPolled ends a polled connection's reading; only the owner of a batch
// calls it.
func (c *conn) endPolled(err error) {
	c.readState.Store(readEnded)
	c.poll.remove(c)
	go c.endRead(err)
}

// dropSocket closes the connection's socket, and with it the reading: every
// close of a served connection's socket goes through here.
func (c *conn) dropSocket() {
	_ = c.ws.Close()
	c.stopReading()
}

// stopReading ends reading once the socket is closed: the poller hears
// nothing from a closed socket. A connection read by its own goroutine
// needs nothing: its read fails.
func (c *conn) stopReading() {
	for {
		switch c.readState.Load() {
		case readArmed:
			if c.readState.CompareAndSwap(readArmed, readEnded) {
				c.poll.remove(c)
				go c.endRead(net.ErrClosed)
				return
			}
		case readBusy:
			if c.readState.CompareAndSwap(readBusy, readStopping) {
				return
			}
		default:
			return
		}
	}
}

// endRead finishes the connection once reading has ended.
func (c *conn) endRead(err error) {
	c.readFailed(err)
	c.finish()
}

// readLoop reads the connection on a goroutine of its own until it ends.
// Each batch of frames is handled on a short-lived goroutine (runFresh),
// so the loop's own stack stays at the 2 KiB minimum while it waits.
func (c *conn) readLoop() {
	c.endRead(c.readFrames())
}

//go:noinline
func (c *conn) readFrames() error {
	nc := c.ws.NetConn()
	buf := make([]byte, readChunk)
	var in []byte // none at first: the frames readFirst left over
	for {
		msgs, perr := c.consume(in, false)
		if rerr := c.runFresh(msgs); rerr != nil {
			return rerr
		}
		if perr != nil {
			return perr
		}
		n, err := nc.Read(buf)
		if err != nil && n == 0 {
			return err
		}
		in = buf[:n]
	}
}

// runFresh runs msgs on a short-lived goroutine and waits for it.
func (c *conn) runFresh(msgs []wsMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- c.runMessages(msgs) }()
	return <-done
}
