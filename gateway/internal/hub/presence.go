package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// presenceBuffer is the capacity of the channel every presence subscription
// delivers into. Presence changes are rare next to messages; if the pump
// still falls behind, NATS drops changes (counted) rather than blocking.
const presenceBuffer = 8192

// presenceIndex follows the presence of the users someone here cares
// about: one NATS subscription per followed user (reference counted), all
// delivering into one channel drained by one pump goroutine, so following
// thousands of users costs no goroutine each.
type presenceIndex struct {
	h  *Hub
	ch chan *nats.Msg

	mu    sync.Mutex
	users map[string]*presenceSub
	epoch uint64 // pump only
}

// presenceSub is one followed user: who follows them, directly (friends)
// or through a channel they are a member of.
type presenceSub struct {
	sub      *nats.Subscription
	friendOf map[*conn]int
	channels map[*channelSub]struct{}
	// version of the newest change seen, to drop reordered older ones.
	version int64
}

func newPresenceIndex(h *Hub) *presenceIndex {
	return &presenceIndex{h: h, ch: make(chan *nats.Msg, presenceBuffer), users: make(map[string]*presenceSub)}
}

func (p *presenceIndex) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.users)
}

// get returns the user's entry, subscribing for a new one; called with mu
// held. Nil when the subscription failed.
func (p *presenceIndex) get(userID string) *presenceSub {
	if ps := p.users[userID]; ps != nil {
		return ps
	}
	sub, err := p.h.nc.ChanSubscribe(p.h.presenceSubject(userID), p.ch)
	if err != nil {
		p.h.log.Warn("nats presence subscribe", slog.String("user_id", userID), slog.Any("error", err))
		return nil
	}
	ps := &presenceSub{sub: sub}
	p.users[userID] = ps
	return ps
}

// release unsubscribes an entry nobody follows any more; called with mu held.
func (p *presenceIndex) release(userID string, ps *presenceSub) {
	if len(ps.friendOf) > 0 || len(ps.channels) > 0 {
		return
	}
	delete(p.users, userID)
	if err := ps.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
		p.h.log.Warn("nats presence unsubscribe", slog.String("user_id", userID), slog.Any("error", err))
	}
}

// followFriends reads the user's friends and follows their presence.
func (c *conn) followFriends() {
	users := c.h.cfg.Users
	if users == nil {
		return
	}
	var ids []string
	pageToken := ""
	for len(ids) < c.h.lim.MaxFriends {
		ctx, cancel := c.h.userCtx(c.ctx, c.currentToken())
		resp, err := users.ListFriends(ctx, &userv1.ListFriendsRequest{State: "friend", PageSize: pageSize, PageToken: pageToken})
		cancel()
		if err != nil {
			if c.ctx.Err() == nil {
				c.h.log.Warn("list friends", slog.String("conn", c.id), slog.Any("error", err))
			}
			break
		}
		for _, fr := range resp.GetFriends() {
			if id := fr.GetUser().GetId(); protocol.ValidID(id) && id != c.userID && len(ids) < c.h.lim.MaxFriends {
				ids = append(ids, id)
			}
		}
		if pageToken = resp.GetNextPageToken(); pageToken == "" {
			break
		}
	}
	if len(ids) == 0 {
		return
	}
	p := c.h.pres
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ids {
		if ps := p.get(id); ps != nil {
			if ps.friendOf == nil {
				ps.friendOf = make(map[*conn]int)
			}
			ps.friendOf[c]++
			c.friends = append(c.friends, id)
		}
	}
}

// unfollowFriends drops a closing connection's friend interests.
func (p *presenceIndex) unfollowFriends(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range c.friends {
		ps := p.users[id]
		if ps == nil {
			continue
		}
		if ps.friendOf[c]--; ps.friendOf[c] <= 0 {
			delete(ps.friendOf, c)
		}
		p.release(id, ps)
	}
	c.friends = nil
}

// watchChannel follows the given members of a channel for its subscribers.
func (p *presenceIndex) watchChannel(cs *channelSub, ids []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cs.isClosed() {
		return // unwatchChannel may have run already
	}
	for _, id := range ids {
		p.addChannel(cs, id)
	}
}

func (p *presenceIndex) addChannel(cs *channelSub, id string) {
	if _, ok := cs.watched[id]; ok {
		return
	}
	if ps := p.get(id); ps != nil {
		if ps.channels == nil {
			ps.channels = make(map[*channelSub]struct{})
		}
		ps.channels[cs] = struct{}{}
		if cs.watched == nil {
			cs.watched = make(map[string]struct{})
		}
		cs.watched[id] = struct{}{}
	}
}

func (p *presenceIndex) removeChannel(cs *channelSub, id string) {
	if _, ok := cs.watched[id]; !ok {
		return
	}
	delete(cs.watched, id)
	if ps := p.users[id]; ps != nil {
		delete(ps.channels, cs)
		p.release(id, ps)
	}
}

// unwatchChannel drops a channel subscription's interests.
func (p *presenceIndex) unwatchChannel(cs *channelSub) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range cs.watched {
		p.removeChannel(cs, id)
	}
}

// channelMemberJoined follows a new member of a followed channel, within
// the PresenceMembers bound.
func (p *presenceIndex) channelMemberJoined(cs *channelSub, userID string) {
	if !protocol.ValidID(userID) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !cs.isClosed() && len(cs.watched) < p.h.lim.PresenceMembers {
		p.addChannel(cs, userID)
	}
}

// channelMemberLeft stops following a member who left the channel.
func (p *presenceIndex) channelMemberLeft(cs *channelSub, userID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeChannel(cs, userID)
}

// closeAll drops every presence subscription.
func (p *presenceIndex) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ps := range p.users {
		ps.friendOf, ps.channels = nil, nil
		p.release(id, ps)
	}
}

// presenceChange is what the presence service publishes on
// presence.<user id>.
type presenceChange struct {
	UserID      string          `json:"user_id"`
	Status      string          `json:"status"`
	LastSeen    json.RawMessage `json:"last_seen"`
	DeviceCount int             `json:"device_count"`
	Version     int64           `json:"version"`
}

// run is the presence pump: it turns changes into user_online and
// user_offline frames for the connections that follow the user.
func (p *presenceIndex) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-p.ch:
			p.deliver(m)
		}
	}
}

func (p *presenceIndex) deliver(m *nats.Msg) {
	var ch presenceChange
	if err := json.Unmarshal(m.Data, &ch); err != nil {
		p.h.metrics.natsDropped.Inc()
		p.h.log.Debug("undecodable presence change", slog.String("subject", m.Subject), slog.Any("error", err))
		return
	}
	if ch.UserID == "" {
		ch.UserID = strings.TrimPrefix(m.Subject, p.h.presenceSubject(""))
	}
	typ := protocol.TypeUserOnline
	if ch.Status == "offline" {
		typ = protocol.TypeUserOffline
	}
	lastSeen := ch.LastSeen
	if string(lastSeen) == "null" {
		lastSeen = nil
	}
	b, err := encodeFrame(typ, "", "", protocol.PresenceData{
		UserID:      ch.UserID,
		Status:      ch.Status,
		LastSeen:    lastSeen,
		DeviceCount: ch.DeviceCount,
	}, p.h.now(), ch.UserID)
	if err != nil {
		p.h.log.Error("encode presence frame", slog.Any("error", err))
		return
	}
	fr := &outFrame{data: wsText(b), kind: kindOf(typ), recvAt: p.h.now().UnixNano()}

	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.users[ch.UserID]
	if ps == nil {
		return
	}
	if ch.Version > 0 {
		if ch.Version <= ps.version {
			return // an older change overtaken by a newer one
		}
		ps.version = ch.Version
	}
	// A connection that follows the user several ways gets one frame.
	p.epoch++
	for c := range ps.friendOf {
		if c.presEpoch != p.epoch {
			c.presEpoch = p.epoch
			c.offer(fr)
		}
	}
	for cs := range ps.channels {
		cs.mu.Lock()
		for c, st := range cs.members {
			if st.revoked || c.userID == ch.UserID || c.presEpoch == p.epoch {
				continue
			}
			c.presEpoch = p.epoch
			c.offer(fr)
		}
		cs.mu.Unlock()
	}
}

// heartbeatLoop tells the presence service, once per HeartbeatInterval,
// every connection this node holds, and connects again those it forgot.
func (h *Hub) heartbeatLoop(ctx context.Context) {
	if h.cfg.Presence == nil {
		return
	}
	t := time.NewTicker(h.lim.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.heartbeat(ctx)
	}
}

func (h *Hub) heartbeat(ctx context.Context) {
	h.mu.Lock()
	ids := make([]string, 0, len(h.conns))
	for c := range h.conns {
		if c.authed.Load() && c.ctx.Err() == nil {
			ids = append(ids, c.id)
		}
	}
	h.mu.Unlock()
	if len(ids) > heartbeatChunk {
		h.log.Warn("more connections than one presence heartbeat may list: each call drops the others' connections, which reconnect",
			slog.Int("connections", len(ids)), slog.Int("limit", heartbeatChunk))
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), heartbeatChunk)]
		ids = ids[len(chunk):]
		cctx, cancel := h.serviceCtx(ctx)
		resp, err := h.cfg.Presence.Heartbeat(cctx, &presencev1.HeartbeatRequest{NodeId: h.cfg.NodeID, ConnectionIds: chunk})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				h.log.Warn("presence heartbeat", slog.Int("connections", len(chunk)), slog.Any("error", err))
			}
			continue
		}
		for _, id := range resp.GetUnknownConnectionIds() {
			h.mu.Lock()
			c := h.byID[id]
			h.mu.Unlock()
			if c != nil && c.authed.Load() && c.ctx.Err() == nil {
				c.presenceConnect()
			}
		}
	}
}
