// Package events publishes the chat service's events through the eventbus
// library: the durable event on JetStream (events.<type>, Nats-Msg-Id = the
// event id) for the notification service and the audit log, and the
// realtime frame on core NATS (<prefix>rt.channel.<id>) that every gateway
// forwards as it is to the WebSocket clients of the channel.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/protoconv"
	"github.com/parleyhq/parley/eventbus"
)

// Bus is the part of *eventbus.Publisher used here.
type Bus interface {
	Publish(ctx context.Context, ev eventbus.Event) error
	PublishRealtime(ctx context.Context, subject string, data []byte) error
}

var _ Bus = (*eventbus.Publisher)(nil)

// Config configures a Publisher.
type Config struct {
	// Source names the service in event envelopes (default "chatservice").
	Source string
	// RealtimePrefix is prepended to realtime subjects ("" by default;
	// tests sharing a NATS server set a unique one).
	RealtimePrefix string
}

// Publisher implements chat.EventPublisher.
type Publisher struct {
	bus Bus
	cfg Config
}

var _ chat.EventPublisher = (*Publisher)(nil)

// New returns a publisher on bus.
func New(bus Bus, cfg Config) *Publisher {
	if cfg.Source == "" {
		cfg.Source = "chatservice"
	}
	return &Publisher{bus: bus, cfg: cfg}
}

// ChannelSubject is the realtime subject of a channel.
func (p *Publisher) ChannelSubject(channelID string) string {
	return p.cfg.RealtimePrefix + eventbus.RealtimeChannelSubject(channelID)
}

// durable lists the event types that go to JetStream.
func durable(typ string) bool {
	switch typ {
	case chat.EventMessageSent, chat.EventMessageUpdated, chat.EventMessageDeleted,
		chat.EventChannelCreated, chat.EventUserJoined, chat.EventUserLeft:
		return true
	}
	return false
}

// frameType is the WebSocket frame type of an event, "" for none.
func frameType(typ string) string {
	switch typ {
	case chat.EventMessageSent:
		return "message"
	case chat.EventMessageUpdated:
		return "message_updated"
	case chat.EventMessageDeleted:
		return "message_deleted"
	case chat.EventUserJoined:
		return "user_joined"
	case chat.EventUserLeft:
		return "user_left"
	case chat.EventReceipt:
		return "receipt"
	}
	return ""
}

// Publish publishes the durable event (if the type has one) and the
// realtime frame (if the type has one). The frame goes out even when the
// durable publish failed, so people see the message; the error makes the
// outbox keep the event for the relay, whose republish JetStream
// de-duplicates (a repeated frame is harmless: clients drop a seq they
// have).
func (p *Publisher) Publish(ctx context.Context, ev chat.Event) error {
	var errs []error
	if durable(ev.Type) {
		if err := p.publishDurable(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	if ft := frameType(ev.Type); ft != "" {
		frame, err := Frame(ev)
		if err == nil {
			err = p.bus.PublishRealtime(ctx, p.ChannelSubject(ev.ChannelID), frame)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("realtime %s frame: %w", ft, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Publisher) publishDurable(ctx context.Context, ev chat.Event) error {
	data, err := EventData(ev)
	if err != nil {
		return err
	}
	bev := eventbus.Event{
		ID: ev.ID, Type: ev.Type, Source: p.cfg.Source, Subject: ev.ChannelID,
		Data: data, Timestamp: ev.Time, Version: eventbus.CurrentVersion,
	}
	if err := p.bus.Publish(ctx, bev); err != nil {
		return fmt.Errorf("durable %s event: %w", ev.Type, err)
	}
	return nil
}

// frame is the WebSocket envelope (DESIGN section 3).
type frame struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Data      json.RawMessage `json:"data"`
	Timestamp int64           `json:"timestamp"`
	UserID    string          `json:"user_id"`
}

type receiptData struct {
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"`
	UserID string `json:"user_id"`
}

// Frame returns the realtime frame of an event, exactly as the gateway
// writes it to WebSocket clients: {"type","channel","data","timestamp",
// "user_id"} with data the stored message (protojson, proto field names),
// the membership for user_joined/user_left, or {"kind":"read","seq",
// "user_id"} for a receipt.
func Frame(ev chat.Event) ([]byte, error) {
	var (
		data json.RawMessage
		err  error
	)
	switch {
	case ev.Type == chat.EventReceipt:
		data, err = json.Marshal(receiptData{Kind: "read", Seq: ev.ReadSeq, UserID: ev.ActorID})
	case ev.Message != nil:
		data, err = protoJSON(protoconv.ToProtoMessage(*ev.Message))
	case ev.Member != nil:
		data, err = protoJSON(protoconv.ToProtoMember(*ev.Member))
	default:
		data = json.RawMessage("{}")
	}
	if err != nil {
		return nil, fmt.Errorf("frame data of %s: %w", ev.Type, err)
	}
	b, err := json.Marshal(frame{
		Type: frameType(ev.Type), Channel: ev.ChannelID, Data: data,
		Timestamp: ev.Time.UnixMilli(), UserID: ev.ActorID,
	})
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return b, nil
}

// Data is the payload of a durable chat event. Consumers (notifications)
// get what they need without calling back: the channel type, the message,
// the mentioned usernames; member lists come from ListMembers.
type Data struct {
	ChannelID   string          `json:"channel_id"`
	ChannelType string          `json:"channel_type,omitempty"`
	ActorID     string          `json:"actor_id,omitempty"`
	Message     json.RawMessage `json:"message,omitempty"`
	Mentions    []string        `json:"mentions,omitempty"`
	Channel     json.RawMessage `json:"channel,omitempty"`
	MemberIDs   []string        `json:"member_ids,omitempty"`
	Member      json.RawMessage `json:"member,omitempty"`
}

// EventData returns the JSON data of a durable event.
func EventData(ev chat.Event) (json.RawMessage, error) {
	d := Data{
		ChannelID: ev.ChannelID, ChannelType: ev.ChannelType, ActorID: ev.ActorID,
		Mentions: ev.Mentions, MemberIDs: ev.MemberIDs,
	}
	var err error
	if ev.Message != nil {
		if d.Message, err = protoJSON(protoconv.ToProtoMessage(*ev.Message)); err != nil {
			return nil, err
		}
	}
	if ev.Channel != nil {
		if d.Channel, err = protoJSON(protoconv.ToProtoChannel(*ev.Channel)); err != nil {
			return nil, err
		}
	}
	if ev.Member != nil {
		if d.Member, err = protoJSON(protoconv.ToProtoMember(*ev.Member)); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode %s data: %w", ev.Type, err)
	}
	return b, nil
}

func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protoconv.JSON().Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	return b, nil
}
