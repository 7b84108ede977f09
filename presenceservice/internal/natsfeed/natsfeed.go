// Package natsfeed carries presence changes over core NATS: Publisher
// sends each change as JSON on <prefix>presence.<user id> (through the
// eventbus library, which adds the trace context), and Feed subscribes to
// those subjects for presence streams. Changes are ephemeral: a consumer
// that was not subscribed misses them and reads the current state instead.
package natsfeed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/parleyhq/parley/eventbus"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// Message is the JSON published for every change; gateways decode it too.
type Message struct {
	UserID string `json:"user_id"`
	// Status is "online", "away", "busy" or "offline".
	Status string `json:"status"`
	// LastSeen is RFC 3339; null when the user was never seen.
	LastSeen *time.Time `json:"last_seen"`
	// DeviceCount is the number of connections; 0 when offline.
	DeviceCount int       `json:"device_count"`
	ChangedAt   time.Time `json:"changed_at"`
	// Version grows with every change of this user; with changed_at it
	// orders changes that arrive out of order: a change with an older
	// (changed_at, version) than one already applied is stale.
	Version int64 `json:"version"`
}

// toMessage converts a change for the wire.
func toMessage(c presence.Change) Message {
	m := Message{
		UserID:      c.UserID,
		Status:      string(c.Status),
		DeviceCount: c.DeviceCount,
		ChangedAt:   c.ChangedAt.UTC(),
		Version:     c.Version,
	}
	if !c.LastSeen.IsZero() {
		ls := c.LastSeen.UTC()
		m.LastSeen = &ls
	}
	return m
}

// fromMessage converts a received change.
func fromMessage(m Message) presence.Change {
	c := presence.Change{
		UserID:      m.UserID,
		Status:      presence.Status(m.Status),
		DeviceCount: m.DeviceCount,
		ChangedAt:   m.ChangedAt,
		Version:     m.Version,
	}
	if m.LastSeen != nil {
		c.LastSeen = *m.LastSeen
	}
	return c
}

// Subject returns the subject of userID's changes under prefix.
func Subject(prefix, userID string) string { return prefix + eventbus.PresenceSubject(userID) }

// realtimePublisher is the part of *eventbus.Publisher used here.
type realtimePublisher interface {
	PublishRealtime(ctx context.Context, subject string, data []byte) error
}

// Publisher is presence.ChangePublisher over core NATS.
type Publisher struct {
	pub    realtimePublisher
	prefix string
}

var _ presence.ChangePublisher = (*Publisher)(nil)

// NewPublisher publishes through pub (an *eventbus.Publisher) on subjects
// starting with prefix ("" in production; tests isolate with a unique one
// ending in ".").
func NewPublisher(pub realtimePublisher, prefix string) *Publisher {
	return &Publisher{pub: pub, prefix: prefix}
}

// PublishChange implements presence.ChangePublisher.
func (p *Publisher) PublishChange(ctx context.Context, c presence.Change) error {
	data, err := json.Marshal(toMessage(c))
	if err != nil {
		return fmt.Errorf("encode presence change: %w", err)
	}
	if err := p.pub.PublishRealtime(ctx, Subject(p.prefix, c.UserID), data); err != nil {
		return fmt.Errorf("publish presence change: %w", err)
	}
	return nil
}
