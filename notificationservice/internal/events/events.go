// Package events turns the durable events the notification service
// consumes into domain calls: message.sent (chat service) and
// friend.requested (user service). Payloads are decoded tolerantly — extra
// fields are ignored, the message may be protojson in either field-name
// style — and a payload that cannot be decoded is dead-lettered at once.
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// TypeFriendRequested is the user service's event for a new friend request
// (the eventbus library has no constant for it).
const TypeFriendRequested = "friend.requested"

// Types are the event types the notification service consumes.
func Types() []string { return []string{eventbus.TypeMessageSent, TypeFriendRequested} }

// Notifier is the domain side: notify.Service.
type Notifier interface {
	HandleMessageSent(ctx context.Context, m notify.MessageSent) error
	HandleFriendRequested(ctx context.Context, f notify.FriendRequested) error
}

// Handler returns the event consumer's handler. Domain errors marked
// permanent, and undecodable payloads, become eventbus.Permanent so the
// event is dead-lettered instead of retried.
func Handler(n Notifier) eventbus.Handler {
	return func(ctx context.Context, ev eventbus.Event) error {
		var err error
		switch ev.Type {
		case eventbus.TypeMessageSent:
			var m notify.MessageSent
			if m, err = DecodeMessageSent(ev); err == nil {
				err = n.HandleMessageSent(ctx, m)
			}
		case TypeFriendRequested:
			var f notify.FriendRequested
			if f, err = DecodeFriendRequested(ev); err == nil {
				err = n.HandleFriendRequested(ctx, f)
			}
		default:
			return nil // not ours; the consumer filters, so this is defensive
		}
		if err != nil && notify.IsPermanent(err) {
			return eventbus.Permanent(err)
		}
		return err
	}
}

// messageSentData is the chat service's message.sent payload:
//
//	{"channel_id", "channel_type", "actor_id", "message": <chat.v1.Message
//	 as protojson>, "mentions": ["username", ...]}
//
// plus fields other producers may add (channel_name, mentioned_user_ids).
type messageSentData struct {
	ChannelID        string          `json:"channel_id"`
	ChannelType      string          `json:"channel_type"`
	ChannelName      string          `json:"channel_name"`
	ActorID          string          `json:"actor_id"`
	Message          json.RawMessage `json:"message"`
	Mentions         []string        `json:"mentions"`
	MentionedUserIDs []string        `json:"mentioned_user_ids"`
}

// DecodeMessageSent decodes a message.sent event.
func DecodeMessageSent(ev eventbus.Event) (notify.MessageSent, error) {
	var d messageSentData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return notify.MessageSent{}, eventbus.Permanent(fmt.Errorf("message.sent %s: %w", ev.ID, err))
	}
	msg := &chatv1.Message{}
	if len(d.Message) > 0 && string(d.Message) != "null" {
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(d.Message, msg); err != nil {
			return notify.MessageSent{}, eventbus.Permanent(fmt.Errorf("message.sent %s: message: %w", ev.ID, err))
		}
	}
	m := notify.MessageSent{
		EventID:          ev.ID,
		ChannelID:        first(d.ChannelID, msg.GetChannelId(), ev.Subject),
		ChannelType:      strings.ToLower(d.ChannelType),
		ChannelName:      d.ChannelName,
		MessageID:        msg.GetId(),
		Seq:              msg.GetSeq(),
		SenderID:         first(msg.GetUserId(), d.ActorID),
		Content:          msg.GetContent(),
		MessageType:      msg.GetType(),
		Mentions:         d.Mentions,
		MentionedUserIDs: d.MentionedUserIDs,
		SentAt:           ev.Timestamp,
	}
	if msg.GetCreatedAt() != nil {
		m.SentAt = msg.GetCreatedAt().AsTime()
	}
	if m.ChannelID == "" || m.SenderID == "" {
		return notify.MessageSent{}, eventbus.Permanent(fmt.Errorf("message.sent %s: no channel or sender", ev.ID))
	}
	return m, nil
}

// friendData is the user service's friend.* payload: user_id acted,
// friend_id is the other user (the target of a request).
type friendData struct {
	UserID   string `json:"user_id"`
	FriendID string `json:"friend_id"`
}

// DecodeFriendRequested decodes a friend.requested event; the target falls
// back to the envelope's subject, which the user service sets to it.
func DecodeFriendRequested(ev eventbus.Event) (notify.FriendRequested, error) {
	var d friendData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return notify.FriendRequested{}, eventbus.Permanent(fmt.Errorf("friend.requested %s: %w", ev.ID, err))
	}
	f := notify.FriendRequested{EventID: ev.ID, FromUserID: d.UserID, ToUserID: first(d.FriendID, ev.Subject)}
	if f.ToUserID == "" || f.ToUserID == f.FromUserID {
		return notify.FriendRequested{}, eventbus.Permanent(fmt.Errorf("friend.requested %s: no target", ev.ID))
	}
	return f, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
