package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// handle runs one client frame. It runs on the connection's read side
// (reader.go), so a connection's requests are answered one at a time, in
// order.
func (c *conn) handle(data []byte) {
	f, err := protocol.DecodeFrame(data)
	if err != nil {
		c.h.metrics.frameIn(labelInvalid)
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeInvalidArgument, Message: err.Error()})
		c.violation()
		return
	}
	c.h.metrics.frameIn(f.Type)
	if !c.authed.Load() {
		c.handleFirstFrame(f)
		return
	}
	class := classOf(f.Type)
	rate := c.h.lim.Other
	switch class {
	case classMessages:
		rate = c.h.lim.Messages
	case classTyping:
		if stoppedTyping(f) {
			// "Stopped typing" right after "typing" is normal and cheap; it
			// is limited with the other frames, not by the typing bucket.
			class, rate = classOther, c.h.lim.Other
		} else {
			rate = c.h.lim.Typing
		}
	case classJoins:
		rate = c.h.lim.Joins
	}
	if !c.buckets[class].Allow(rate, c.h.now()) {
		c.h.metrics.rateLimited.WithLabelValues(class.String()).Inc()
		c.sendFrame(protocol.TypeError, f.ID, f.Channel, protocol.ErrorData{
			Code:    protocol.CodeRateLimited,
			Message: fmt.Sprintf("too many %s frames; slow down", class),
		})
		c.violation()
		return
	}
	switch f.Type {
	case protocol.TypeAuthenticate:
		c.handleReauthenticate(f)
	case protocol.TypeJoinChannel:
		c.handleJoin(f)
	case protocol.TypeLeaveChannel:
		c.handleLeave(f)
	case protocol.TypeSendMessage:
		c.handleSendMessage(f)
	case protocol.TypeEditMessage:
		c.handleEditMessage(f)
	case protocol.TypeDeleteMessage:
		c.handleDeleteMessage(f)
	case protocol.TypeUserTyping:
		c.handleTyping(f)
	case protocol.TypeSync:
		c.handleSync(f)
	case protocol.TypeMarkRead:
		c.handleMarkRead(f)
	case protocol.TypeSetStatus:
		c.handleSetStatus(f)
	case protocol.TypePing:
		c.sendFrame(protocol.TypePong, f.ID, "", nil)
	}
}

func stoppedTyping(f protocol.Frame) bool {
	var d protocol.TypingData
	return protocol.DecodeData(f.Data, &d) == nil && d.Typing != nil && !*d.Typing
}

// invalid answers a request whose data failed validation.
func (c *conn) invalid(f protocol.Frame, err error) {
	c.sendFrame(protocol.TypeError, f.ID, f.Channel, protocol.ErrorData{Code: protocol.CodeInvalidArgument, Message: err.Error()})
}

// handleFirstFrame authenticates a connection that did not authenticate on
// the upgrade request: its first frame must be authenticate.
func (c *conn) handleFirstFrame(f protocol.Frame) {
	if f.Type != protocol.TypeAuthenticate {
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeUnauthenticated, Message: "authenticate first"})
		c.closeWith(protocol.CloseAuthFailed, "authentication required")
		return
	}
	var d protocol.AuthenticateData
	if err := protocol.DecodeData(f.Data, &d); err != nil || d.Token == "" {
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeUnauthenticated, Message: "authenticate needs data.token"})
		c.closeWith(protocol.CloseAuthFailed, "authentication failed")
		return
	}
	if !c.h.enterSlot(c.ctx, setupsClass) {
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeRateLimited, Message: "server busy, retry"})
		c.closeWith(protocol.CloseTryAgainLater, "server busy")
		return
	}
	defer c.h.leaveSlot()
	ctx, cancel := context.WithTimeout(c.ctx, c.h.lim.CallTimeout)
	p, err := c.h.cfg.Verifier.Verify(ctx, d.Token)
	cancel()
	if err != nil {
		c.h.log.Debug("websocket authentication failed", slog.String("ip", c.ip), slog.Any("error", err))
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeUnauthenticated, Message: "invalid access token"})
		c.closeWith(protocol.CloseAuthFailed, "authentication failed")
		return
	}
	c.authenticated(p.UserID, d.Token, f.ID, false)
}

// handleReauthenticate replaces the token of an open connection: access
// tokens expire long before a connection need close.
func (c *conn) handleReauthenticate(f protocol.Frame) {
	var d protocol.AuthenticateData
	if err := protocol.DecodeData(f.Data, &d); err != nil || d.Token == "" {
		c.invalid(f, errors.New("authenticate needs data.token"))
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.h.lim.CallTimeout)
	p, err := c.h.cfg.Verifier.Verify(ctx, d.Token)
	cancel()
	switch {
	case err != nil:
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeUnauthenticated, Message: "invalid access token"})
	case p.UserID != c.userID:
		c.sendFrame(protocol.TypeError, f.ID, "", protocol.ErrorData{Code: protocol.CodeForbidden, Message: "the token is another user's"})
	default:
		c.token.Store(&d.Token)
		c.ack(f, nil)
	}
}

func (c *conn) handleJoin(f protocol.Frame) {
	res, _, err := c.join(f.Channel, -1)
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, res)
}

// join authorises the user for the channel and subscribes this connection.
// Joining again refreshes the permissions. syncFrom >= 0 joins for a sync
// from that seq (see fanout.join).
func (c *conn) join(channelID string, syncFrom int64) (protocol.JoinResult, bool, error) {
	if !c.subs.has(channelID) && c.subs.len() >= c.h.lim.MaxChannelsPerConn {
		return protocol.JoinResult{}, false, status.Errorf(codes.FailedPrecondition, "a connection joins at most %d channels", c.h.lim.MaxChannelsPerConn)
	}
	ctx, cancel := c.h.serviceCtx(c.ctx)
	acc, err := c.h.cfg.Chat.CheckAccess(ctx, &chatv1.CheckAccessRequest{ChannelId: channelID, UserId: c.userID})
	cancel()
	if err != nil {
		return protocol.JoinResult{}, false, err
	}
	if !acc.GetCanRead() {
		return protocol.JoinResult{}, false, status.Error(codes.PermissionDenied, "not allowed to read this channel")
	}
	st, owned, err := c.h.fan.join(c.ctx, c, channelID, acc, syncFrom)
	if err != nil {
		return protocol.JoinResult{}, false, err
	}
	c.subs.set(channelID, st)
	return protocol.JoinResult{
		Channel:     channelID,
		ChannelType: acc.GetChannelType(),
		IsMember:    acc.GetIsMember(),
		CanWrite:    acc.GetCanWrite(),
		Role:        acc.GetRole(),
	}, owned, nil
}

func (c *conn) handleLeave(f protocol.Frame) {
	if c.subs.del(f.Channel) {
		c.h.fan.leave(c, f.Channel)
	}
	c.ack(f, nil)
}

func (c *conn) handleSendMessage(f protocol.Frame) {
	var d protocol.SendMessageData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
	defer cancel()
	resp, err := c.h.cfg.Chat.SendMessage(ctx, &chatv1.SendMessageRequest{
		ChannelId:    f.Channel,
		Content:      d.Content,
		Type:         d.Type,
		ClientMsgId:  d.ClientMsgID,
		Metadata:     d.Metadata,
		AttachmentId: d.AttachmentID,
	})
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, resp.GetMessage())
}

func (c *conn) handleEditMessage(f protocol.Frame) {
	var d protocol.EditMessageData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
	defer cancel()
	resp, err := c.h.cfg.Chat.EditMessage(ctx, &chatv1.EditMessageRequest{ChannelId: f.Channel, MessageId: d.MessageID, Content: d.Content})
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, resp.GetMessage())
}

func (c *conn) handleDeleteMessage(f protocol.Frame) {
	var d protocol.DeleteMessageData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
	defer cancel()
	resp, err := c.h.cfg.Chat.DeleteMessage(ctx, &chatv1.DeleteMessageRequest{ChannelId: f.Channel, MessageId: d.MessageID})
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, resp.GetMessage())
}

// handleTyping publishes user_typing on the channel's subject, at most once
// per TypingThrottle per user and channel across the user's connections
// here ("stopped typing" always passes).
func (c *conn) handleTyping(f protocol.Frame) {
	var d protocol.TypingData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	st := c.subs.get(f.Channel)
	if st == nil {
		c.invalid(f, errors.New("join the channel before typing in it"))
		return
	}
	if !st.canWrite() {
		c.sendFrame(protocol.TypeError, f.ID, f.Channel, protocol.ErrorData{Code: protocol.CodeForbidden, Message: "not allowed to write in this channel"})
		return
	}
	typing := d.Typing == nil || *d.Typing
	if typing && !c.h.typing.allow(c.userID, f.Channel, c.h.now(), c.h.lim.TypingThrottle) {
		c.ack(f, map[string]bool{"throttled": true})
		return
	}
	now := c.h.now()
	b, err := encodeFrame(protocol.TypeUserTyping, "", f.Channel, map[string]bool{"typing": typing}, now, c.userID)
	if err != nil {
		c.fail(f, err)
		return
	}
	c.h.publish(c.h.channelSubject(f.Channel), b)
	c.ack(f, nil)
}

func (c *conn) handleSync(f protocol.Frame) {
	var d protocol.SyncData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	if len(d.Channels) == 0 {
		c.invalid(f, errors.New("sync needs data.channels: {channel id: last seq}"))
		return
	}
	if len(d.Channels) > c.h.lim.MaxSyncChannels {
		c.invalid(f, fmt.Errorf("sync at most %d channels at once", c.h.lim.MaxSyncChannels))
		return
	}
	ids := make([]string, 0, len(d.Channels))
	for id, seq := range d.Channels {
		if !protocol.ValidID(id) {
			c.invalid(f, fmt.Errorf("invalid channel id %q", truncateString(id, 70)))
			return
		}
		if seq < 0 {
			c.invalid(f, fmt.Errorf("channel %s: seq must be >= 0", id))
			return
		}
		ids = append(ids, id)
	}
	// Sorted, so a client sees its channels replayed in a stable order.
	slices.Sort(ids)
	res := protocol.SyncResult{Channels: make(map[string]protocol.SyncChannelResult, len(ids))}
	for _, id := range ids {
		if c.ctx.Err() != nil {
			return
		}
		res.Channels[id] = c.syncChannel(id, int64(d.Channels[id]))
	}
	c.ack(f, res)
}

// syncChannel joins the channel if needed (subscribing before reading
// history) and replays what follows lastSeq.
func (c *conn) syncChannel(channelID string, lastSeq int64) protocol.SyncChannelResult {
	owned := false
	if !c.subs.has(channelID) {
		var err error
		if _, owned, err = c.join(channelID, lastSeq); err != nil {
			code, msg := errorCode(err)
			return protocol.SyncChannelResult{LastSeq: lastSeq, Error: &protocol.ErrorData{Code: code, Message: msg}}
		}
	}
	r, err := c.h.fan.syncOne(c, channelID, lastSeq, owned)
	if err != nil && !errors.Is(err, ErrClosed) {
		code, msg := errorCode(err)
		if code == protocol.CodeInternal {
			c.h.log.Error("sync", slog.String("channel", channelID), slog.String("conn", c.id), slog.Any("error", err))
		}
		r.Error = &protocol.ErrorData{Code: code, Message: msg}
	}
	return r
}

func (c *conn) handleMarkRead(f protocol.Frame) {
	var d protocol.MarkReadData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
	defer cancel()
	resp, err := c.h.cfg.Chat.MarkRead(ctx, &chatv1.MarkReadRequest{ChannelId: f.Channel, Seq: int64(d.Seq)})
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, resp)
}

func (c *conn) handleSetStatus(f protocol.Frame) {
	var d protocol.SetStatusData
	if err := protocol.DecodeData(f.Data, &d); err != nil {
		c.invalid(f, err)
		return
	}
	if c.h.cfg.Presence == nil {
		c.fail(f, status.Error(codes.Unimplemented, "presence is not available"))
		return
	}
	ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
	defer cancel()
	resp, err := c.h.cfg.Presence.UpdateStatus(ctx, &presencev1.UpdateStatusRequest{Status: d.Status, StatusMessage: d.StatusMessage})
	if err != nil {
		c.fail(f, err)
		return
	}
	c.ack(f, resp.GetPresence())
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
