package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// pageSize is the chat service's maximum GetMessages/ListMembers page.
const pageSize = 100

// fanout holds the hub's channel subscriptions: one NATS subscription per
// channel with local subscribers, shared by all of them.
type fanout struct {
	h *Hub

	mu       sync.Mutex
	channels map[string]*channelSub

	// Channels waiting for a catch-up; true: every subscriber (NATS
	// reconnected), false: those whose stream showed a gap.
	recMu   sync.Mutex
	pending map[*channelSub]bool
	wake    chan struct{}
}

// channelSub is one channel's NATS subscription and its local subscribers.
type channelSub struct {
	id, subject string
	sub         *nats.Subscription
	// ready is closed once the subscription is known to the server.
	ready chan struct{}

	mu       sync.Mutex
	members  map[*conn]*subState
	chType   string
	receipts bool // delivered receipts are published for this channel
	closed   bool // removed from fanout.channels

	// watched are the members whose presence is followed for this
	// channel; guarded by presenceIndex.mu.
	watched map[string]struct{}
}

func (cs *channelSub) isClosed() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.closed
}

// subState is one connection's view of one channel, guarded by the
// channelSub's mu. While buffering, the owner of catchDone (a sync or a
// recovery) may use hwm and known without the lock: the dispatcher leaves
// them alone then.
type subState struct {
	cs       *channelSub
	writable bool
	// revoked: the user was removed from a non-public channel; nothing more
	// is delivered until they join again.
	revoked bool
	left    bool
	// hwm is the highest message seq queued to the connection; known says
	// whether hwm is a real baseline (gaps are detected only then).
	hwm   int64
	known bool
	// buffering holds live frames in buf while history is replayed;
	// overflow drops them once more arrived than the replay may queue.
	buffering bool
	overflow  bool
	buf       []*outFrame
	// catchDone is non-nil while a sync or recovery owns the state, and
	// closed when it is done.
	catchDone chan struct{}
}

func newFanout(h *Hub) *fanout {
	return &fanout{
		h:        h,
		channels: make(map[string]*channelSub),
		pending:  make(map[*channelSub]bool),
		wake:     make(chan struct{}, 1),
	}
}

func (f *fanout) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.channels)
}

// maxBuffered bounds a replaying connection's buffer to half the queue, so
// flushing it into a queue the replay left half full cannot overflow.
func (f *fanout) maxBuffered() int { return f.h.lim.SendQueueSize / 2 }

// join subscribes c to the channel, creating the NATS subscription for the
// first local subscriber. A new subscriber starts from the channel's
// current last seq, so a later gap in its live stream is noticed; with
// syncFrom >= 0 (a sync joining) it instead starts buffering at once, owned
// by the caller (owned true), so no live frame overtakes the replay.
func (f *fanout) join(ctx context.Context, c *conn, id string, acc *chatv1.CheckAccessResponse, syncFrom int64) (st *subState, owned bool, err error) {
	f.mu.Lock()
	cs := f.channels[id]
	created := false
	if cs == nil {
		cs = &channelSub{id: id, subject: f.h.channelSubject(id), ready: make(chan struct{}), members: make(map[*conn]*subState)}
		sub, err := f.h.nc.Subscribe(cs.subject, func(m *nats.Msg) { f.dispatch(cs, m) })
		if err != nil {
			f.mu.Unlock()
			return nil, false, fmt.Errorf("subscribe %s: %w", cs.subject, err)
		}
		cs.sub = sub
		f.channels[id] = cs
		created = true
	}
	cs.mu.Lock()
	st = cs.members[c]
	fresh := st == nil
	if fresh {
		st = &subState{cs: cs}
		cs.members[c] = st
		if syncFrom >= 0 {
			st.own(syncFrom)
			owned = true
		}
	}
	st.writable = acc.GetCanWrite()
	st.revoked = false
	cs.chType = acc.GetChannelType()
	cs.mu.Unlock()
	f.mu.Unlock()

	if created {
		// Until the server has the subscription, history read now could
		// miss a message published in between.
		fctx, cancel := context.WithTimeout(ctx, f.h.lim.CallTimeout)
		if err := f.h.nc.FlushWithContext(fctx); err != nil && ctx.Err() == nil {
			// NATS is down: the recovery after its reconnection covers it.
			f.h.log.Warn("nats flush after subscribe", slog.String("subject", cs.subject), slog.Any("error", err))
		}
		cancel()
		close(cs.ready)
		f.loadMembers(ctx, cs, c.currentToken())
	} else {
		select {
		case <-cs.ready:
		case <-ctx.Done():
			f.leave(c, id)
			return nil, false, ErrClosed
		}
	}
	if fresh && !owned {
		f.baseline(ctx, c, st)
	}
	return st, owned, nil
}

// own starts a replay from seq: live frames are buffered from now on and
// the caller owns the state until release. Called with cs.mu held and
// catchDone nil.
func (st *subState) own(seq int64) {
	st.catchDone = make(chan struct{})
	st.buffering, st.buf, st.overflow = true, nil, false
	st.hwm, st.known = seq, true
}

// baseline sets a new subscriber's high-water mark to the channel's newest
// message, unless a live message set it first.
func (f *fanout) baseline(ctx context.Context, c *conn, st *subState) {
	cctx, cancel := f.h.userCtx(ctx, c.currentToken())
	resp, err := f.h.cfg.Chat.GetMessages(cctx, &chatv1.GetMessagesRequest{ChannelId: st.cs.id, Limit: 1})
	cancel()
	if err != nil {
		f.h.log.Debug("join baseline", slog.String("channel", st.cs.id), slog.Any("error", err))
		return
	}
	var last int64
	if msgs := resp.GetMessages(); len(msgs) > 0 {
		last = msgs[len(msgs)-1].GetSeq()
	}
	st.cs.mu.Lock()
	if !st.known && !st.buffering {
		st.hwm, st.known = last, true
	}
	st.cs.mu.Unlock()
}

// loadMembers reads the first members of a new channel subscription: their
// presence is followed for the local subscribers, and the member count
// decides whether delivered receipts are worth publishing.
func (f *fanout) loadMembers(ctx context.Context, cs *channelSub, token string) {
	limit := f.h.lim.PresenceMembers
	var ids []string
	complete := false
	pageToken := ""
	for len(ids) < limit {
		cctx, cancel := f.h.userCtx(ctx, token)
		resp, err := f.h.cfg.Chat.ListMembers(cctx, &chatv1.ListMembersRequest{ChannelId: cs.id, PageSize: int32(min(pageSize, limit-len(ids))), PageToken: pageToken})
		cancel()
		if err != nil {
			f.h.log.Debug("list members", slog.String("channel", cs.id), slog.Any("error", err))
			break
		}
		for _, m := range resp.GetMembers() {
			if protocol.ValidID(m.GetUserId()) {
				ids = append(ids, m.GetUserId())
			}
		}
		pageToken = resp.GetNextPageToken()
		if pageToken == "" {
			complete = true
			break
		}
	}
	if len(ids) > limit {
		ids = ids[:limit]
	}
	cs.mu.Lock()
	small := complete && f.h.lim.ReceiptMaxMembers > 0 && len(ids) <= f.h.lim.ReceiptMaxMembers
	cs.receipts = small && (cs.chType == "group" || cs.chType == "private")
	cs.mu.Unlock()
	if len(ids) > 0 {
		f.h.pres.watchChannel(cs, ids)
	}
}

// leave unsubscribes c from the channel, and the hub from NATS when c was
// its last local subscriber.
func (f *fanout) leave(c *conn, id string) {
	f.mu.Lock()
	cs := f.channels[id]
	if cs == nil {
		f.mu.Unlock()
		return
	}
	cs.mu.Lock()
	if st := cs.members[c]; st != nil {
		st.left = true
		delete(cs.members, c)
	}
	empty := len(cs.members) == 0
	if empty {
		cs.closed = true
		delete(f.channels, id)
	}
	cs.mu.Unlock()
	f.mu.Unlock()
	if empty {
		f.unsubscribe(cs)
	}
}

func (f *fanout) unsubscribe(cs *channelSub) {
	if err := cs.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		f.h.log.Warn("nats unsubscribe", slog.String("subject", cs.subject), slog.Any("error", err))
	}
	f.h.pres.unwatchChannel(cs)
}

// leaveAll unsubscribes a closing connection from all its channels.
func (f *fanout) leaveAll(c *conn) {
	for _, id := range c.subs.ids() {
		f.leave(c, id)
	}
	c.subs = subSet{}
}

// closeAll drops every subscription (after the last connection ended).
func (f *fanout) closeAll() {
	f.mu.Lock()
	subs := make([]*channelSub, 0, len(f.channels))
	for id, cs := range f.channels {
		cs.mu.Lock()
		cs.closed = true
		cs.mu.Unlock()
		subs = append(subs, cs)
		delete(f.channels, id)
	}
	f.mu.Unlock()
	for _, cs := range subs {
		f.unsubscribe(cs)
	}
}

// canWrite reports whether the connection may write in the channel of st.
func (st *subState) canWrite() bool {
	st.cs.mu.Lock()
	defer st.cs.mu.Unlock()
	return st.writable && !st.revoked && !st.left
}

// dispatch runs on the channel's NATS subscription goroutine for every live
// frame. It decodes the frame's header once, then offers the same bytes to
// every local subscriber without blocking.
func (f *fanout) dispatch(cs *channelSub, m *nats.Msg) {
	h := f.h
	var hdr rtHeader
	if err := json.Unmarshal(m.Data, &hdr); err != nil || hdr.Type == "" {
		h.metrics.natsDropped.Inc()
		h.log.Debug("undecodable realtime frame", slog.String("subject", m.Subject), slog.Any("error", err))
		return
	}
	fr := &outFrame{
		data:    wsText(m.Data),
		kind:    kindOf(hdr.Type),
		channel: cs.id,
		sender:  hdr.UserID,
		recvAt:  h.now().UnixNano(),
	}
	if hdr.Timestamp > 0 {
		fr.pubAt = int64(hdr.Timestamp) * 1e6
	}
	if fr.kind == kindMessage {
		fr.seq = int64(hdr.Data.Seq)
	}
	// The member a user_joined/user_left is about.
	member := hdr.Data.UserID
	if member == "" {
		member = hdr.UserID
	}
	maxBuf := f.maxBuffered()
	gap := false
	// Connections whose write loop this frame would start: they are
	// written to once the channel's lock is released (conn.writeNow),
	// so joins and leaves never wait for a hundred system calls. That is
	// only while the channel keeps up: with messages already waiting
	// behind this one, its write loops start as goroutines, which write
	// in parallel and find several frames queued per connection.
	inline := keepsUp(m.Sub)
	var idle []*conn
	cs.mu.Lock()
	fr.receipts = fr.kind == kindMessage && cs.receipts
	for c, st := range cs.members {
		if st.revoked {
			continue
		}
		if fr.kind == kindUserTyping && c.userID == fr.sender {
			continue // the typist's own connections know
		}
		if st.buffering {
			st.bufferFrame(fr, maxBuf)
			continue
		}
		if fr.kind == kindMessage && fr.seq > 0 {
			if st.known {
				if fr.seq <= st.hwm {
					continue // already delivered
				}
				if fr.seq > st.hwm+1 {
					// Something was lost before this frame: hold the
					// stream and replay the hole from history.
					st.buffering = true
					st.bufferFrame(fr, maxBuf)
					gap = true
					continue
				}
			}
			st.hwm, st.known = fr.seq, true
		}
		switch {
		case !c.claim(fr):
		case inline:
			if idle == nil {
				idle = make([]*conn, 0, len(cs.members))
			}
			idle = append(idle, c)
		default:
			go c.writeLoop()
		}
		if fr.kind == kindUserLeft && member == c.userID && cs.chType != "public" {
			st.revoked = true
		}
	}
	cs.mu.Unlock()
	for _, c := range idle {
		c.writeNow()
	}
	if gap {
		f.requestRecovery(cs, false)
	}
	switch fr.kind {
	case kindUserJoined:
		h.pres.channelMemberJoined(cs, member)
	case kindUserLeft:
		h.pres.channelMemberLeft(cs, member)
	}
}

// keepsUp reports whether no message waits behind the one a channel's
// subscription is delivering (a nil subscription: a test's direct call).
// nats.go counts the message being delivered as pending until its
// handler returns.
func keepsUp(sub *nats.Subscription) bool {
	if sub == nil {
		return true
	}
	n, _, err := sub.Pending()
	return err == nil && n <= 1
}

func (st *subState) bufferFrame(fr *outFrame, max int) {
	switch {
	case st.overflow:
	case len(st.buf) >= max:
		// The replay reads history again once it is done, which covers
		// the messages dropped here.
		st.overflow, st.buf = true, nil
	default:
		st.buf = append(st.buf, fr)
	}
}

// requestRecovery queues a catch-up of the channel.
func (f *fanout) requestRecovery(cs *channelSub, all bool) {
	f.recMu.Lock()
	f.pending[cs] = f.pending[cs] || all
	f.recMu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// recoverAll queues a catch-up of every channel (after a NATS reconnect).
func (f *fanout) recoverAll() {
	f.mu.Lock()
	subs := make([]*channelSub, 0, len(f.channels))
	for _, cs := range f.channels {
		subs = append(subs, cs)
	}
	f.mu.Unlock()
	for _, cs := range subs {
		f.requestRecovery(cs, true)
	}
}

func (f *fanout) takePending() (*channelSub, bool, bool) {
	f.recMu.Lock()
	defer f.recMu.Unlock()
	for cs, all := range f.pending {
		delete(f.pending, cs)
		if len(f.pending) > 0 {
			// Wake another worker for the rest.
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
		return cs, all, true
	}
	return nil, false, false
}

// recoveryWorker runs queued catch-ups until ctx ends.
func (f *fanout) recoveryWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for ctx.Err() == nil {
			cs, all, ok := f.takePending()
			if !ok {
				break
			}
			f.recoverChannel(ctx, cs, all)
		}
	}
}

type replayTarget struct {
	c  *conn
	st *subState
}

// recoverChannel replays history to the channel's subscribers that lost
// live frames: those buffering after a gap, or (all) every subscriber with
// a baseline. History is read once, from the lowest high-water mark.
func (f *fanout) recoverChannel(ctx context.Context, cs *channelSub, all bool) {
	cs.mu.Lock()
	if cs.closed {
		cs.mu.Unlock()
		return
	}
	var targets []replayTarget
	from := int64(math.MaxInt64)
	for c, st := range cs.members {
		if st.revoked || st.catchDone != nil || !st.known {
			continue
		}
		if !st.buffering {
			if !all {
				continue
			}
			st.buffering, st.buf, st.overflow = true, nil, false
		}
		st.catchDone = make(chan struct{})
		targets = append(targets, replayTarget{c, st})
		from = min(from, st.hwm)
	}
	cs.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	f.h.metrics.recoveries.Inc()
	budget := f.h.lim.MaxSyncMessages
	var (
		frames []*outFrame
		more   bool
		err    error
	)
	// Any local subscriber may read the channel; try a few tokens in case
	// one has expired.
	for i, t := range targets {
		if i == 3 {
			break
		}
		frames, more, err = f.fetchRange(ctx, t.c.currentToken(), cs.id, from, budget)
		if code := status.Code(err); code != codes.Unauthenticated && code != codes.PermissionDenied {
			break
		}
	}
	if err != nil || more {
		// The hole cannot be replayed here: the clients reconnect (to any
		// gateway) and sync, which pages or tells them to page history.
		reason := "missed more messages than a replay covers"
		if err != nil {
			reason = "could not replay missed messages"
			if ctx.Err() == nil {
				f.h.log.Warn("recovery: read history", slog.String("channel", cs.id), slog.Any("error", err))
			}
		}
		for _, t := range targets {
			f.endReplay(cs, t.st)
			t.c.closeWith(protocol.CloseServiceRestart, reason)
		}
		return
	}
	for _, t := range targets {
		if _, err := f.replay(ctx, t.c, t.st, frames, budget); err != nil && !errors.Is(err, ErrClosed) {
			f.h.log.Warn("recovery: replay", slog.String("channel", cs.id), slog.String("conn", t.c.id), slog.Any("error", err))
			t.c.closeWith(protocol.CloseServiceRestart, "could not replay missed messages")
		}
	}
}

// syncOne replays a joined channel after lastSeq to c (the sync frame);
// owned says the join already made c's state buffer from lastSeq.
func (f *fanout) syncOne(c *conn, id string, lastSeq int64, owned bool) (protocol.SyncChannelResult, error) {
	res := protocol.SyncChannelResult{LastSeq: lastSeq}
	st := c.subs.get(id)
	if st == nil {
		return res, status.Error(codes.Internal, "sync of a channel not joined")
	}
	if !owned {
		cs := st.cs
		cs.mu.Lock()
		for st.catchDone != nil {
			// A recovery is replaying this channel to c: let it finish.
			done := st.catchDone
			cs.mu.Unlock()
			select {
			case <-done:
			case <-c.ctx.Done():
				return res, ErrClosed
			}
			cs.mu.Lock()
		}
		st.own(lastSeq)
		cs.mu.Unlock()
	}

	r, err := f.replay(c.ctx, c, st, nil, f.h.lim.MaxSyncMessages)
	res.Delivered = r.delivered
	res.LastSeq = r.lastSeq
	if r.truncated {
		res.Truncated = true
		res.NextAfterSeq = r.truncatedAt
	}
	return res, err
}

type replayResult struct {
	delivered int
	lastSeq   int64
	truncated bool
	// truncatedAt is the last seq replayed before the budget ran out.
	truncatedAt int64
}

// replay delivers history after st.hwm to c and then releases the live
// frames buffered meanwhile, skipping what history covered. prefetched
// (ascending, possibly starting below st.hwm) saves the first read. The
// caller owns st (catchDone set, buffering); replay always releases it.
func (f *fanout) replay(ctx context.Context, c *conn, st *subState, prefetched []*outFrame, budget int) (replayResult, error) {
	var res replayResult
	cs := st.cs
	pending, fetch := prefetched, prefetched == nil
	more := false
	allowGap := false
	for {
		if fetch {
			if res.delivered >= budget {
				res.truncated = true
				break
			}
			var err error
			pending, more, err = f.fetchPage(ctx, c.currentToken(), cs.id, st.hwm, budget-res.delivered)
			if err != nil {
				res.lastSeq = st.hwm
				f.endReplay(cs, st)
				return res, err
			}
		}
		for _, fr := range pending {
			if fr.seq <= st.hwm {
				continue
			}
			if err := c.enqueueFlow(fr); err != nil {
				res.lastSeq = st.hwm
				f.endReplay(cs, st)
				return res, err
			}
			st.hwm, st.known = fr.seq, true
			res.delivered++
		}
		pending, fetch = nil, true
		if more {
			continue
		}
		done, flushed, last := f.finishReplay(c, st, allowGap, false)
		if done {
			res.delivered += flushed
			res.lastSeq = last
			return res, nil
		}
		// The buffer overflowed or starts after a hole: read history
		// again; what is still missing then is missing for good (a seq
		// that was never stored).
		allowGap = true
	}
	// Budget spent: the client pages the rest over REST. The next live
	// message sets a new baseline rather than counting as a gap.
	res.truncatedAt = st.hwm
	_, flushed, last := f.finishReplay(c, st, true, true)
	res.delivered += flushed
	res.lastSeq = last
	return res, nil
}

// finishReplay releases the buffer into c's queue and ends the replay,
// unless (done false) the buffer overflowed or, with !allowGap, its first
// new message does not follow st.hwm. truncated drops the baseline first.
func (f *fanout) finishReplay(c *conn, st *subState, allowGap, truncated bool) (done bool, flushed int, last int64) {
	cs := st.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if st.left {
		st.release()
		return true, 0, st.hwm
	}
	if st.overflow {
		st.overflow, st.buf = false, nil
		if !truncated {
			return false, 0, st.hwm
		}
	}
	if !allowGap {
		for _, fr := range st.buf {
			if fr.kind == kindMessage && fr.seq > st.hwm {
				if fr.seq > st.hwm+1 {
					return false, 0, st.hwm
				}
				break
			}
		}
	}
	if truncated {
		st.known = false
	}
	for _, fr := range st.buf {
		if fr.kind == kindMessage && fr.seq > 0 {
			if st.known && fr.seq <= st.hwm {
				continue
			}
			st.hwm, st.known = fr.seq, true
			flushed++
		}
		c.offer(fr)
	}
	st.release()
	return true, flushed, st.hwm
}

// endReplay abandons a replay (the connection closed or history failed),
// releasing the buffer as it is.
func (f *fanout) endReplay(cs *channelSub, st *subState) {
	cs.mu.Lock()
	st.release()
	cs.mu.Unlock()
}

// release ends buffering and ownership; called with cs.mu held.
func (st *subState) release() {
	st.buffering, st.overflow, st.buf = false, false, nil
	if st.catchDone != nil {
		close(st.catchDone)
		st.catchDone = nil
	}
}

// fetchPage reads up to limit (at most one page of) messages after seq.
func (f *fanout) fetchPage(ctx context.Context, token, channelID string, after int64, limit int) ([]*outFrame, bool, error) {
	cctx, cancel := f.h.userCtx(ctx, token)
	defer cancel()
	resp, err := f.h.cfg.Chat.GetMessages(cctx, &chatv1.GetMessagesRequest{
		ChannelId: channelID,
		AfterSeq:  &after,
		Limit:     int32(min(pageSize, max(limit, 1))),
	})
	if err != nil {
		return nil, false, err
	}
	frames := make([]*outFrame, 0, len(resp.GetMessages()))
	for _, m := range resp.GetMessages() {
		fr, err := messageFrame(m)
		if err != nil {
			return nil, false, fmt.Errorf("encode message %d: %w", m.GetSeq(), err)
		}
		frames = append(frames, fr)
	}
	more := resp.GetHasMore()
	if len(frames) == 0 {
		// A page that makes no progress cannot be followed.
		more = false
	}
	return frames, more, nil
}

// fetchRange reads up to budget messages after seq, reporting whether more
// exist beyond them.
func (f *fanout) fetchRange(ctx context.Context, token, channelID string, after int64, budget int) ([]*outFrame, bool, error) {
	var all []*outFrame
	for {
		page, more, err := f.fetchPage(ctx, token, channelID, after, budget-len(all))
		if err != nil {
			return nil, false, err
		}
		all = append(all, page...)
		if !more {
			return all, false, nil
		}
		if len(all) >= budget {
			return all, true, nil
		}
		after = page[len(page)-1].seq
	}
}
