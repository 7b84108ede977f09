package events

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/userservice/internal/users"
)

type recordingBus struct {
	got []eventbus.Event
	err error
}

func (b *recordingBus) Publish(_ context.Context, ev eventbus.Event) error {
	b.got = append(b.got, ev)
	return b.err
}

func TestPublishKeepsTheEventID(t *testing.T) {
	bus := &recordingBus{}
	p := NewPublisher(bus)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := users.Event{ID: "0190-abc", Type: users.EventFriendAccepted, Subject: "u2", Data: json.RawMessage(`{"user_id":"u1"}`), OccurredAt: at}
	if err := p.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	got := bus.got[0]
	if got.ID != ev.ID || got.Type != "friend.accepted" || got.Source != Source || got.Subject != "u2" ||
		string(got.Data) != `{"user_id":"u1"}` || !got.Timestamp.Equal(at) || got.Version != eventbus.CurrentVersion {
		t.Fatalf("envelope = %+v", got)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("the envelope does not validate: %v", err)
	}
	bus.err = errors.New("no responders")
	if err := p.Publish(context.Background(), ev); !errors.Is(err, bus.err) {
		t.Fatalf("err = %v, want the bus error wrapped", err)
	}
}
