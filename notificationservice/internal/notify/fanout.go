package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// recipient is one user a chat event may notify, with what was decided.
type recipient struct {
	userID   string
	trigger  Trigger
	decision Decision
}

// HandleMessageSent notifies the members of the message's channel, except
// the sender and those who have read it already, who have no live
// connection, according to their preferences; direct messages and mentions
// are high priority, and go into the email digest too.
//
// Read positions matter when this handler runs late (a backlog after an
// outage or under load): presence then tells who is connected now, not
// who was when the message was sent, and a member who has read past the
// message saw it.
//
// Presence: the presence service knows whether a user is connected, not
// which channel they are looking at. A connected user sees the message in
// the app (the channel list shows unread counts), so only users with no
// live connection are notified; pushing to a phone while the user reads on
// the web would notify twice.
//
// Handling the same event again is harmless: notification ids derive from
// the event id and the recipient, jobs are de-duplicated by their key, and
// digest items by the message id.
func (s *Service) HandleMessageSent(ctx context.Context, m MessageSent) error {
	if m.ChannelID == "" || m.SenderID == "" || m.EventID == "" {
		return Permanent(fmt.Errorf("%w: message.sent without event id, channel or sender", ErrInvalidArgument))
	}
	members, err := s.cfg.Members.ListMembers(ctx, m.ChannelID)
	if err != nil {
		return fmt.Errorf("members of channel %s: %w", m.ChannelID, err)
	}
	ids := make([]string, 0, len(members))
	for _, mem := range members {
		if m.Seq > 0 && mem.LastReadSeq >= m.Seq {
			continue // read it already
		}
		ids = append(ids, mem.UserID)
	}
	candidates := without(unique(ids), m.SenderID)
	if len(candidates) == 0 {
		return nil
	}
	connected, err := s.cfg.Presence.Connected(ctx, candidates)
	if err != nil {
		return fmt.Errorf("presence of channel %s members: %w", m.ChannelID, err)
	}
	offline := make([]string, 0, len(candidates))
	for _, id := range candidates {
		if !connected[id] {
			offline = append(offline, id)
		}
	}
	if len(offline) == 0 {
		return nil
	}
	mentioned, sender, err := s.mentions(ctx, m, offline)
	if err != nil {
		return err
	}
	prefs, err := s.cfg.Store.PreferencesOf(ctx, offline)
	if err != nil {
		return fmt.Errorf("preferences: %w", err)
	}
	if m.ChannelName == "" && m.ChannelType != ChatPrivate && s.cfg.Channels != nil {
		// Only for the title: without it the notification still goes out.
		if m.ChannelName, err = s.cfg.Channels.ChannelName(ctx, m.ChannelID); err != nil {
			s.log.WarnContext(ctx, "channel name for notification title", slog.String("channel_id", m.ChannelID), slog.Any("error", err))
		}
	}
	now := s.clock()
	text := messageText(m)
	var notify []recipient
	var errs []error
	for _, id := range offline {
		p, ok := prefs[id]
		if !ok {
			p = DefaultPreferences()
		}
		t := Trigger{Kind: messageKind(m.ChannelType, mentioned[id]), ChannelType: m.ChannelType, ChannelID: m.ChannelID, Mentioned: mentioned[id]}
		if p.DigestWanted(t, now) {
			it := DigestItem{
				ID: deriveID("digest", id, m.ChannelID, m.MessageID), UserID: id, Kind: t.Kind,
				ChannelID: m.ChannelID, ChannelName: m.ChannelName, MessageID: m.MessageID, Seq: m.Seq,
				SenderName: sender.Name(), Text: truncateRunes(text, maxPushBody), CreatedAt: now,
			}
			if err := s.cfg.Store.AddDigestItem(ctx, it); err != nil {
				errs = append(errs, fmt.Errorf("digest item for %s: %w", id, err))
			}
		}
		if d := p.decide(t, now, s.zones.load); d.Notify || d.Suppressed {
			notify = append(notify, recipient{userID: id, trigger: t, decision: d})
		}
	}
	if len(notify) > 0 {
		errs = append(errs, s.notifyAll(ctx, m.EventID, notify, func(r recipient) Notification {
			return messageNotification(m, r.trigger, sender, text)
		}, now))
	}
	return errors.Join(errs...)
}

// HandleFriendRequested notifies the target of a friend request. Unlike
// messages it does not depend on presence: the web app has no live
// friend-request frame, so a connected user would otherwise learn of it
// only by opening the friends list.
func (s *Service) HandleFriendRequested(ctx context.Context, f FriendRequested) error {
	if f.ToUserID == "" || f.EventID == "" {
		return Permanent(fmt.Errorf("%w: friend.requested without event id or target", ErrInvalidArgument))
	}
	from := s.lookupOne(ctx, f.FromUserID)
	prefs, err := s.cfg.Store.PreferencesOf(ctx, []string{f.ToUserID})
	if err != nil {
		return fmt.Errorf("preferences: %w", err)
	}
	p, ok := prefs[f.ToUserID]
	if !ok {
		p = DefaultPreferences()
	}
	now := s.clock()
	t := Trigger{Kind: KindFriendRequest}
	d := p.decide(t, now, s.zones.load)
	if !d.Notify && !d.Suppressed {
		return nil
	}
	return s.notifyAll(ctx, f.EventID, []recipient{{userID: f.ToUserID, trigger: t, decision: d}}, func(recipient) Notification {
		return Notification{
			Kind:     KindFriendRequest,
			Title:    from.Name() + " sent you a friend request",
			Body:     "Open Parley to accept or decline.",
			Priority: PriorityNormal,
			Data:     map[string]string{"kind": string(KindFriendRequest), "user_id": f.FromUserID},
		}
	}, now)
}

// notifyAll records and queues, for each recipient, one notification per
// channel of their devices. Users without devices get nothing (the digest
// still covers direct messages and mentions).
func (s *Service) notifyAll(ctx context.Context, eventID string, rs []recipient, build func(recipient) Notification, now time.Time) error {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.userID
	}
	devs, err := s.cfg.Store.DevicesOf(ctx, ids)
	if err != nil {
		return fmt.Errorf("devices: %w", err)
	}
	var ns []Notification
	for _, r := range rs {
		for _, g := range byChannel(devs[r.userID]) {
			n := build(r)
			n.ID = deriveID("event", eventID, r.userID, string(g.channel))
			n.UserID, n.Channel, n.Targets = r.userID, g.channel, g.targets
			n.ChatChannelID = r.trigger.ChannelID
			n.Status = StatusQueued
			if r.decision.Suppressed {
				n.Status, n.FailureReason = StatusSuppressed, r.decision.Reason
			}
			ns = append(ns, n)
		}
	}
	// One write and one publish batch per bounded chunk, rather than a
	// round trip per recipient: a channel's fan-out is one event.
	for start := 0; start < len(ns); start += maxDispatchBatch {
		if _, err := s.dispatchAll(ctx, ns[start:min(start+maxDispatchBatch, len(ns))], nil, now); err != nil {
			return err
		}
	}
	return nil
}

// maxDispatchBatch bounds one insert and one publish batch of a fan-out.
const maxDispatchBatch = 500

// mentions resolves who among the recipients the message mentions, and
// looks the sender up for the notification titles.
func (s *Service) mentions(ctx context.Context, m MessageSent, recipients []string) (map[string]bool, User, error) {
	names := map[string]bool{}
	for _, n := range ParseMentions(m.Content) {
		names[n] = true
	}
	for _, n := range m.Mentions {
		names[strings.ToLower(strings.TrimPrefix(n, "@"))] = true
	}
	mentioned := map[string]bool{}
	for _, id := range m.MentionedUserIDs {
		mentioned[id] = true
	}
	if len(names) == 0 {
		return mentioned, s.lookupOne(ctx, m.SenderID), nil
	}
	users, err := s.cfg.Users.Users(ctx, append([]string{m.SenderID}, recipients...))
	if err != nil {
		// Without usernames a mention would lose its priority (and in a
		// public channel its notification): retry the event instead.
		return nil, User{}, fmt.Errorf("resolve mentions: %w", err)
	}
	for _, id := range recipients {
		if u, ok := users[id]; ok && names[strings.ToLower(u.Username)] {
			mentioned[id] = true
		}
	}
	sender, ok := users[m.SenderID]
	if !ok {
		sender = User{ID: m.SenderID}
	}
	return mentioned, sender, nil
}

// lookupOne finds a user for a notification's wording; a failure only
// costs the name ("Someone"), so it is logged rather than retried.
func (s *Service) lookupOne(ctx context.Context, id string) User {
	if id == "" {
		return User{}
	}
	users, err := s.cfg.Users.Users(ctx, []string{id})
	if err != nil {
		s.log.WarnContext(ctx, "look up user for notification text", slog.String("user_id", id), slog.Any("error", err))
	}
	if u, ok := users[id]; ok {
		return u
	}
	return User{ID: id}
}

// messageKind: messages in private channels are direct; elsewhere a
// mention is a mention.
func messageKind(channelType string, mentioned bool) Kind {
	switch {
	case channelType == ChatPrivate:
		return KindDirect
	case mentioned:
		return KindMention
	default:
		return KindMessage
	}
}

func messageNotification(m MessageSent, t Trigger, sender User, text string) Notification {
	prio := PriorityNormal
	if t.Kind == KindDirect || t.Kind == KindMention || t.Mentioned {
		prio = PriorityHigh
	}
	in := ""
	if m.ChannelName != "" {
		in = " in #" + m.ChannelName
	}
	var title string
	switch t.Kind {
	case KindDirect:
		title = sender.Name()
	case KindMention:
		title = sender.Name() + " mentioned you" + in
	default:
		title = sender.Name() + in
	}
	data := map[string]string{
		"kind":       string(t.Kind),
		"channel_id": m.ChannelID,
		"sender_id":  m.SenderID,
	}
	if m.MessageID != "" {
		data["message_id"] = m.MessageID
	}
	if m.Seq > 0 {
		data["seq"] = strconv.FormatInt(m.Seq, 10)
	}
	return Notification{Kind: t.Kind, Title: truncateRunes(title, 200), Body: truncateRunes(text, maxPushBody), Priority: prio, Data: data}
}

// messageText is what a notification shows of a message.
func messageText(m MessageSent) string {
	if c := strings.TrimSpace(m.Content); c != "" {
		return c
	}
	switch m.MessageType {
	case "image":
		return "sent an image"
	case "file":
		return "sent a file"
	}
	return "sent a message"
}

// ParseMentions returns the lower-cased usernames mentioned as @name in
// text, once each, in order. A username is 3-32 characters of [a-z0-9_.]
// (case-insensitive); the '@' must start the text or follow a character
// that cannot be part of a username or email local part, so "a@b.com" is
// not a mention. A trailing '.' ends the sentence, not the name.
func ParseMentions(text string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || (i > 0 && !mentionBoundary(text[i-1])) {
			continue
		}
		j := i + 1
		for j < len(text) && usernameChar(text[j]) {
			j++
		}
		name := strings.TrimRight(strings.ToLower(text[i+1:j]), ".")
		i = j - 1
		if len(name) < 3 || len(name) > 32 || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

func usernameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

func mentionBoundary(c byte) bool {
	return !usernameChar(c) && c != '-' && c != '+' && c != '@'
}

func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func without(ids []string, drop string) []string {
	out := ids[:0:0]
	for _, id := range ids {
		if id != drop {
			out = append(out, id)
		}
	}
	return out
}
