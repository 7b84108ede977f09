package hub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/gateway/internal/hub/ratelimit"
)

// closeSilent as a close code ends a connection without a close frame: the
// client went away, or a close frame was already sent.
const closeSilent = -1

// frameClass is a rate-limit class of client frames.
type frameClass uint8

const (
	classMessages frameClass = iota
	classTyping
	classJoins
	classOther
	numClasses
)

func (c frameClass) String() string {
	switch c {
	case classMessages:
		return "messages"
	case classTyping:
		return "typing"
	case classJoins:
		return "joins"
	}
	return "other"
}

func classOf(t string) frameClass {
	switch t {
	case protocol.TypeSendMessage, protocol.TypeEditMessage, protocol.TypeDeleteMessage:
		return classMessages
	case protocol.TypeUserTyping:
		return classTyping
	case protocol.TypeJoinChannel, protocol.TypeLeaveChannel, protocol.TypeSync:
		return classJoins
	}
	return classOther
}

// conn is one WebSocket connection. Fields below "read side" are owned by
// whoever reads the connection at the time (see reader.go); the rest are
// safe to share as documented.
type conn struct {
	h    *Hub
	ws   *websocket.Conn
	id   string
	ip   string
	slot uint32 // ping slot, set by register

	// send is the bounded queue the write loop drains.
	send sendQueue

	// ctx (&cctx) ends when the connection starts closing; requests made
	// for the connection derive from it. The queue and the context live
	// inside conn: every object an idle connection keeps costs about twice
	// its size in RSS (see docs/decisions/0010-idle-connections.md).
	ctx  context.Context
	cctx connCtx
	// closeCode is the first close requested (0: none yet); closeText is
	// written before cancel and read after ctx.Done.
	closeCode atomic.Int32
	closeText string
	// ends is made by the first of the read and write loops to finish.
	ends atomic.Pointer[loopEnds]

	// authed is set once welcome is queued; userID is written before it
	// and never changes after.
	authed atomic.Bool
	userID string
	// token is the user's current access token (authenticate may refresh
	// it); recovery reads it from other goroutines.
	token   atomic.Pointer[string]
	userCap bool // holds a userCaps slot

	// lastRead is when the client last sent a frame, in Unix nanoseconds
	// (see pingLoop).
	lastRead atomic.Int64
	// readState says who reads the connection (see reader.go); poll, raw
	// and pollTok are set before the poller first sees the connection.
	readState atomic.Uint32
	poll      *readPoller
	raw       syscall.RawConn
	pollTok   uint64

	// read side
	rd      wsReader
	buckets [numClasses]ratelimit.Bucket
	abuse   ratelimit.Window
	subs    subSet   // joined channels
	friends []string // users followed as friends

	// presEpoch dedupes presence frames; only the presence pump uses it.
	presEpoch uint64
}

// loopEnds tells each of a connection's read side and write loop that the
// other has ended.
// Only closing connections need it, so it is made then (conn.loopEnds).
type loopEnds struct {
	// reader is closed when reading has ended.
	reader chan struct{}
	// writer is closed when the write loop has run the close sequence.
	writer chan struct{}
}

func newConn(h *Hub, ws *websocket.Conn, ip string) *conn {
	// Not derived from h.base: drain closes every connection itself
	// (closeWith cancels ctx), and register refuses new ones from then on.
	c := &conn{
		h:  h,
		ws: ws,
		id: randomID(12),
		ip: ip,
	}
	c.send.max = h.lim.SendQueueSize
	c.ctx = &c.cctx
	c.touch()
	return c
}

// cancel ends ctx.
func (c *conn) cancel() { c.cctx.cancel() }

// loopEnds returns the connection's loopEnds, making it on the first call.
func (c *conn) loopEnds() *loopEnds {
	if e := c.ends.Load(); e != nil {
		return e
	}
	e := &loopEnds{reader: make(chan struct{}), writer: make(chan struct{})}
	if c.ends.CompareAndSwap(nil, e) {
		return e
	}
	return c.ends.Load()
}

// currentToken returns the user's access token.
func (c *conn) currentToken() string {
	if p := c.token.Load(); p != nil {
		return *p
	}
	return ""
}

// closeWith starts closing the connection with a close frame of code
// (closeSilent: none). The first call wins; it never blocks.
func (c *conn) closeWith(code int, text string) {
	if !c.closeCode.CompareAndSwap(0, int32(code)) {
		return
	}
	c.closeText = text
	if code > 0 {
		c.h.metrics.closes.WithLabelValues(strconv.Itoa(code)).Inc()
		if code == protocol.CloseSlowConsumer {
			c.h.metrics.slowConsumer.Inc()
		}
	}
	c.cancel()
	if c.send.kick() {
		go c.writeLoop()
	}
}

// enqueue queues f, starting the write loop if it is parked; false when the
// queue is full.
func (c *conn) enqueue(f *outFrame) bool {
	ok, start := c.send.push(f)
	if start {
		go c.writeLoop()
	}
	return ok
}

// enqueueNow is enqueue for callers that hold no lock: if no write loop
// runs, the frame is written at once on the caller's goroutine (writeNow).
func (c *conn) enqueueNow(f *outFrame) bool {
	ok, start := c.send.push(f)
	if start {
		c.writeNow()
	}
	return ok
}

// offer queues a frame without blocking, for fan-out: a full queue means the
// client does not keep up, and it is closed rather than allowed to slow the
// sender (4013).
func (c *conn) offer(f *outFrame) {
	if c.claim(f) {
		go c.writeLoop()
	}
}

// claim is offer without starting the write loop: true when the caller
// must start it, or write the queue itself with writeNow (the fan-out does
// once it has released the channel's lock).
func (c *conn) claim(f *outFrame) bool {
	ok, start := c.send.push(f)
	if !ok {
		if c.ctx.Err() == nil {
			c.h.log.Info("closing slow consumer", slog.String("conn", c.id), slog.String("user_id", c.userIDIfAuthed()))
		}
		c.closeWith(protocol.CloseSlowConsumer, "slow consumer")
	}
	return start
}

// reply queues a frame answering the client's own request, waiting for
// room: that only holds up this connection's reading.
func (c *conn) reply(f *outFrame) {
	for !c.enqueueNow(f) {
		select {
		case <-c.send.spaceSignal():
		case <-c.ctx.Done():
			return
		}
	}
}

// enqueueFlow queues a replayed frame once the queue is at most half full,
// so a replay of up to thousands of messages never starves live fan-out of
// the queue's other half. A client that stays behind for WriteWait is a
// slow consumer.
func (c *conn) enqueueFlow(f *outFrame) error {
	limit := c.send.max / 2
	var timer *time.Timer
	for c.send.len() >= limit {
		if timer == nil {
			timer = time.NewTimer(c.h.lim.WriteWait)
			defer timer.Stop()
		}
		select {
		case <-c.send.spaceSignal():
		case <-c.ctx.Done():
			return ErrClosed
		case <-timer.C:
			c.closeWith(protocol.CloseSlowConsumer, "slow consumer")
			return ErrClosed
		}
	}
	for !c.enqueueNow(f) {
		select {
		case <-c.send.spaceSignal():
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
	return nil
}

func (c *conn) userIDIfAuthed() string {
	if c.authed.Load() {
		return c.userID
	}
	return ""
}

// serve runs authentication on the caller's goroutine (the HTTP
// handler's), then hands the connection to the read poller (or a read loop
// goroutine of its own) and returns. Two reasons: net/http keeps its
// per-request buffers (about 10 KiB) for as long as the handler runs, and
// the deep stack authentication grows (JSON, token check, service calls)
// would stay with a goroutine that waited for the connection's frames. The
// write loop starts with the first frame queued (see sendQueue).
func (c *conn) serve(pre *preAuth) {
	switch {
	case pre == nil:
		// The first frame must authenticate; read it here.
		if err := c.readFirst(); err != nil {
			go c.endRead(err)
			return
		}
	case pre.err != nil:
		c.h.log.Debug("websocket header authentication failed", slog.String("ip", c.ip), slog.Any("error", pre.err))
		c.sendError("", protocol.CodeUnauthenticated, "invalid access token")
		c.closeWith(protocol.CloseAuthFailed, "authentication failed")
	default:
		c.authenticated(pre.principal.UserID, pre.token, "", pre.capHeld)
	}
	c.startReading()
}

func (c *conn) readFailed(err error) {
	if c.ctx.Err() == nil {
		c.h.log.Debug("websocket read ended", slog.String("conn", c.id), slog.String("user_id", c.userIDIfAuthed()), slog.Any("error", err))
	}
	var netErr net.Error
	var wsErr *wsError
	switch {
	case errors.As(err, &wsErr):
		c.closeWith(wsErr.code, wsErr.text)
	case errors.As(err, &netErr) && netErr.Timeout() && !c.authed.Load() && c.ctx.Err() == nil:
		c.closeWith(protocol.CloseAuthFailed, "authentication timeout")
	default:
		c.closeWith(closeSilent, "")
	}
}

// writeLoop writes queued frames until the queue is empty (the next push
// starts it again) or the connection closes.
func (c *conn) writeLoop() {
	for {
		f, step := c.send.next(c.ctx)
		switch step {
		case stepPark:
			return
		case stepClose:
			c.closeSequence()
			return
		}
		if err := c.write(f); err != nil {
			if c.ctx.Err() == nil {
				c.h.log.Debug("websocket write failed", slog.String("conn", c.id), slog.Any("error", err))
			}
			c.closeWith(closeSilent, "")
		}
	}
}

// closeSequence ends the connection's writing. Unless the client is gone
// or too slow, what is still queued (say, the error frame explaining the
// close) is flushed before the close frame. Then the client gets
// closeGrace to answer before the socket is dropped, which ends the read
// loop.
func (c *conn) closeSequence() {
	ends := c.loopEnds()
	defer close(ends.writer)
	code := int(c.closeCode.Load())
	switch {
	case code == protocol.CloseSlowConsumer:
		// What is queued is abandoned; an error frame says why, ahead of
		// the close frame.
		b, err := encodeFrame(protocol.TypeError, "", "", protocol.ErrorData{
			Code:    protocol.CodeSlowConsumer,
			Message: "the connection fell too far behind; reconnect and sync",
		}, c.h.now(), c.userIDIfAuthed())
		if err == nil {
			_ = c.write(&outFrame{data: wsText(b), kind: kindError})
		}
	case code > 0:
		c.flushQueue()
	}
	c.send.markDead()
	if code > 0 {
		msg := websocket.FormatCloseMessage(code, c.closeText)
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, c.h.now().Add(c.h.lim.WriteWait))
		grace := time.NewTimer(closeGrace)
		select {
		case <-ends.reader:
		case <-grace.C:
		}
		grace.Stop()
	}
	c.dropSocket()
}

// flushQueue writes what is queued, without waiting for more.
func (c *conn) flushQueue() {
	for {
		f, ok := c.send.pop()
		if !ok {
			return
		}
		if f.ping {
			continue
		}
		if err := c.write(f); err != nil {
			return
		}
	}
}

// write writes f, waiting up to WriteWait for the client to take it. Data
// frames are framed already (wsText) and go to the socket as they are;
// gorilla writes only the control frames.
func (c *conn) write(f *outFrame) error {
	now := c.h.now()
	if f.ping {
		return c.ws.WriteControl(websocket.PingMessage, nil, now.Add(c.h.lim.WriteWait))
	}
	nc := c.ws.NetConn()
	if err := nc.SetWriteDeadline(now.Add(c.h.lim.WriteWait)); err != nil {
		return err
	}
	if _, err := nc.Write(f.data); err != nil {
		return err
	}
	c.wrote(f)
	return nil
}

// writeNowLimit is how many frames writeNow writes before it hands the
// rest to a write loop, so a busy connection cannot hold up the goroutine
// that happened to queue to it first (a fan-out with others to serve).
const writeNowLimit = 8

// writeNow is what the caller that would start a connection's write loop
// does instead, when the read poller watches the connection: it writes
// the queued frames on its own goroutine, without waiting. Only when the
// socket's buffer is full (the client is behind), the connection closes,
// a ping is due or writeNowLimit frames are written does a write loop
// take over, with the rest. Most deliveries then cost one system call and
// no goroutine: starting a writer per frame, growing its stack for the
// write, and gorilla's framing into a pooled buffer made about a fifth of
// the write path's CPU at 20,000 deliveries a second (docs/performance.md,
// eleventh session).
func (c *conn) writeNow() {
	// Past readUnpolled, raw is set (startReading) and the poller's
	// system calls work on the socket; otherwise it is read by a
	// goroutine of its own, and written by one too.
	if c.readState.Load() == readUnpolled {
		go c.writeLoop()
		return
	}
	for range writeNowLimit {
		f, step := c.send.peek(c.ctx)
		switch step {
		case stepPark:
			return
		case stepClose:
			go c.writeLoop()
			return
		}
		if f.ping {
			break
		}
		// A failure other than a full buffer is left to the write loop:
		// its blocking write meets it too, and closes the connection.
		n, _ := writeNonBlocking(c.raw, f.data)
		if n < len(f.data) {
			if n > 0 {
				rest := *f
				rest.data = f.data[n:]
				c.send.replaceHead(&rest)
			}
			break
		}
		c.send.pop()
		c.wrote(f)
	}
	go c.writeLoop()
}

// wrote counts a frame written in full.
func (c *conn) wrote(f *outFrame) {
	c.h.metrics.out[f.kind].Inc()
	if f.recvAt != 0 {
		since := f.recvAt
		if f.pubAt != 0 && f.pubAt < since {
			since = f.pubAt
		}
		c.h.metrics.fanoutLatency.Observe(float64(c.h.now().UnixNano()-since) / 1e9)
	}
	if f.receipts && f.kind == kindMessage && f.sender != c.userID {
		c.h.receipts.record(f.channel, c.userID, f.seq)
	}
}

// finish runs once reading has ended: it waits for the write loop, then
// releases everything the connection held.
func (c *conn) finish() {
	c.closeWith(closeSilent, "")
	ends := c.loopEnds()
	close(ends.reader)
	<-ends.writer
	c.h.unregister(c)
	c.h.ipCaps.Release(c.ip)
	authed := c.authed.Load()
	if authed && c.userCap {
		c.h.userCaps.Release(c.userID)
	}
	// The presence disconnect takes a setup slot: when every client
	// leaves at once, the calls would otherwise all run together, each
	// with its deep stack and the service's garbage. The wait comes first,
	// so a waiting goroutine keeps a shallow stack.
	slot := authed && c.h.enterSlot(c.h.base, teardownsClass)
	c.h.fan.leaveAll(c)
	c.h.pres.unfollowFriends(c)
	if slot {
		c.presenceDisconnect()
		c.h.leaveSlot()
	} else if authed {
		c.h.log.Debug("presence disconnect skipped: no setup slot; the next heartbeat drops the connection", slog.String("conn", c.id))
	}
	c.h.active.Done()
}

// authenticated completes authentication: caps, welcome, presence, friends.
// id is the authenticate frame's id, echoed by welcome.
func (c *conn) authenticated(userID, token, id string, capHeld bool) {
	if !capHeld {
		if !c.h.userCaps.Acquire(userID) {
			c.h.metrics.rateLimited.WithLabelValues("conns_user").Inc()
			c.sendError(id, protocol.CodeRateLimited, "too many connections for this user")
			c.closeWith(protocol.ClosePolicy, "too many connections")
			return
		}
	}
	c.userCap = true
	c.userID = userID
	c.token.Store(&token)
	c.authed.Store(true)
	c.sendFrame(protocol.TypeWelcome, id, "", protocol.WelcomeData{
		UserID:              userID,
		SessionID:           c.id,
		NodeID:              c.h.cfg.NodeID,
		HeartbeatIntervalMS: c.h.lim.PingInterval.Milliseconds(),
		MaxFrameBytes:       c.h.lim.MaxMessageBytes,
	})
	c.presenceConnect()
	c.followFriends()
}

func (c *conn) presenceConnect() {
	if c.h.cfg.Presence == nil {
		return
	}
	ctx, cancel := c.h.serviceCtx(c.ctx)
	defer cancel()
	_, err := c.h.cfg.Presence.Connect(ctx, &presencev1.ConnectRequest{UserId: c.userID, ConnectionId: c.id, NodeId: c.h.cfg.NodeID})
	if err != nil && c.ctx.Err() == nil {
		// The next heartbeat reports the connection as unknown and it is
		// connected again then.
		c.h.log.Warn("presence connect", slog.String("conn", c.id), slog.Any("error", err))
	}
}

func (c *conn) presenceDisconnect() {
	if c.h.cfg.Presence == nil {
		return
	}
	// The connection's context is over; the hub's lives until Run drained.
	ctx, cancel := c.h.serviceCtx(c.h.base)
	defer cancel()
	_, err := c.h.cfg.Presence.Disconnect(ctx, &presencev1.DisconnectRequest{UserId: c.userID, ConnectionId: c.id, NodeId: c.h.cfg.NodeID})
	if err != nil {
		// Heartbeats stop naming the connection, so it expires anyway.
		c.h.log.Warn("presence disconnect", slog.String("conn", c.id), slog.Any("error", err))
	}
}

// sendFrame encodes and queues a reply frame.
func (c *conn) sendFrame(typ, id, channel string, data any) {
	b, err := encodeFrame(typ, id, channel, data, c.h.now(), c.userIDIfAuthed())
	if err != nil {
		c.h.log.Error("encode frame", slog.String("type", typ), slog.Any("error", err))
		return
	}
	c.reply(&outFrame{data: wsText(b), kind: kindOf(typ)})
}

// ack answers a request that carried an id.
func (c *conn) ack(f protocol.Frame, data any) {
	if f.ID == "" {
		return
	}
	if data == nil {
		data = struct{}{}
	}
	c.sendFrame(protocol.TypeAck, f.ID, f.Channel, data)
}

func (c *conn) sendError(id, code, msg string) {
	c.sendFrame(protocol.TypeError, id, "", protocol.ErrorData{Code: code, Message: msg})
}

// fail answers a request with an error frame for err.
func (c *conn) fail(f protocol.Frame, err error) {
	code, msg := errorCode(err)
	if code == protocol.CodeInternal && c.ctx.Err() == nil {
		c.h.log.Error("websocket request failed", slog.String("type", f.Type), slog.String("conn", c.id), slog.Any("error", err))
	}
	c.sendFrame(protocol.TypeError, f.ID, f.Channel, protocol.ErrorData{Code: code, Message: msg})
}

// violation counts a refused or malformed frame toward abuse (4008).
func (c *conn) violation() {
	if c.abuse.Add(c.h.now(), c.h.lim.AbuseWindow, c.h.lim.AbuseThreshold) {
		c.h.log.Info("closing abusive connection", slog.String("conn", c.id), slog.String("ip", c.ip), slog.String("user_id", c.userIDIfAuthed()))
		c.closeWith(protocol.ClosePolicy, "rate limit abuse")
	}
}
