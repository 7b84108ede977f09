// Package events publishes the user service's domain events on the Parley
// event bus (JetStream, through package eventbus).
package events

import (
	"context"
	"fmt"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// Source is the envelope's source field for events of this service.
const Source = "userservice"

// Bus is the part of *eventbus.Publisher the adapter uses.
type Bus interface {
	Publish(ctx context.Context, ev eventbus.Event) error
}

// Publisher implements users.EventPublisher on the event bus.
type Publisher struct {
	bus Bus
}

var _ users.EventPublisher = (*Publisher)(nil)

// NewPublisher returns an adapter over bus.
func NewPublisher(bus Bus) *Publisher { return &Publisher{bus: bus} }

// Publish sends ev in the bus envelope, keeping its id, so republishing
// from the outbox is de-duplicated by JetStream.
func (p *Publisher) Publish(ctx context.Context, ev users.Event) error {
	if err := p.bus.Publish(ctx, toBusEvent(ev)); err != nil {
		return fmt.Errorf("events: publish %s %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}

func toBusEvent(ev users.Event) eventbus.Event {
	return eventbus.Event{
		ID:        ev.ID,
		Type:      ev.Type,
		Source:    Source,
		Subject:   ev.Subject,
		Data:      ev.Data,
		Timestamp: ev.OccurredAt,
		Version:   eventbus.CurrentVersion,
	}
}
