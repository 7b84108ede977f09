package events

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/eventbus"
)

type recordingBus struct {
	failDurable bool
	durable     []eventbus.Event
	realtime    map[string][]string
}

func (b *recordingBus) Publish(_ context.Context, ev eventbus.Event) error {
	if b.failDurable {
		return errors.New("jetstream down")
	}
	b.durable = append(b.durable, ev)
	return nil
}

func (b *recordingBus) PublishRealtime(_ context.Context, subject string, data []byte) error {
	if b.realtime == nil {
		b.realtime = map[string][]string{}
	}
	b.realtime[subject] = append(b.realtime[subject], string(data))
	return nil
}

func TestFramesAndEvents(t *testing.T) {
	at := time.UnixMilli(1_732_752_000_123).UTC()
	msg := &chat.Message{ID: "m1", ChannelID: "c1", Seq: 7, UserID: "u1", Content: "hi @bob", Type: "text", CreatedAt: at}
	member := &chat.Member{ChannelID: "c1", UserID: "u2", Role: "member", JoinedAt: at}
	tests := []struct {
		name      string
		ev        chat.Event
		wantFrame string // "" for none
		durable   bool
	}{
		{"message", chat.Event{ID: "e1", Type: chat.EventMessageSent, ChannelID: "c1", ChannelType: "group", ActorID: "u1", Time: at, Message: msg, Mentions: []string{"bob"}},
			`{"type":"message","channel":"c1","data":{"id":"m1","channel_id":"c1","seq":"7","user_id":"u1","content":"hi @bob","type":"text","created_at":"2024-11-28T00:00:00.123Z"},"timestamp":1732752000123,"user_id":"u1"}`, true},
		{"joined", chat.Event{ID: "e2", Type: chat.EventUserJoined, ChannelID: "c1", ActorID: "u1", Time: at, Member: member},
			`{"type":"user_joined","channel":"c1","data":{"user_id":"u2","role":"member","joined_at":"2024-11-28T00:00:00.123Z"},"timestamp":1732752000123,"user_id":"u1"}`, true},
		{"receipt", chat.Event{ID: "e3", Type: chat.EventReceipt, ChannelID: "c1", ActorID: "u2", Time: at, ReadSeq: 7},
			`{"type":"receipt","channel":"c1","data":{"kind":"read","seq":7,"user_id":"u2"},"timestamp":1732752000123,"user_id":"u2"}`, false},
		{"created", chat.Event{ID: "e4", Type: chat.EventChannelCreated, ChannelID: "c1", ActorID: "u1", Time: at, Channel: &chat.Channel{ID: "c1", Type: "group"}, MemberIDs: []string{"u1", "u2"}},
			"", true},
	}
	for _, tc := range tests {
		bus := &recordingBus{}
		p := New(bus, Config{RealtimePrefix: "t1."})
		if err := p.Publish(t.Context(), tc.ev); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		frames := bus.realtime["t1.rt.channel.c1"]
		switch {
		case tc.wantFrame == "" && len(frames) != 0:
			t.Errorf("%s: unexpected frame %v", tc.name, frames)
		case tc.wantFrame != "" && (len(frames) != 1 || frames[0] != tc.wantFrame):
			t.Errorf("%s: frames %v\nwant %s", tc.name, frames, tc.wantFrame)
		}
		if got := len(bus.durable) == 1; got != tc.durable {
			t.Errorf("%s: durable events %v", tc.name, bus.durable)
			continue
		}
		if tc.durable {
			ev := bus.durable[0]
			if ev.ID != tc.ev.ID || ev.Type != tc.ev.Type || ev.Source != "chatservice" || ev.Subject != "c1" || !ev.Timestamp.Equal(at) {
				t.Errorf("%s: envelope %+v", tc.name, ev)
			}
			var d Data
			if err := json.Unmarshal(ev.Data, &d); err != nil || d.ChannelID != "c1" {
				t.Errorf("%s: data %s %v", tc.name, ev.Data, err)
			}
		}
	}
}

// A failed durable publish is reported (the outbox keeps the event) but
// the frame still goes out.
func TestDurableFailureStillSendsTheFrame(t *testing.T) {
	bus := &recordingBus{failDurable: true}
	p := New(bus, Config{})
	err := p.Publish(t.Context(), chat.Event{ID: "e", Type: chat.EventMessageSent, ChannelID: "c", Time: time.Now(),
		Message: &chat.Message{ID: "m", ChannelID: "c", Seq: 1}})
	if err == nil || !strings.Contains(err.Error(), "jetstream down") {
		t.Fatalf("error %v", err)
	}
	if len(bus.realtime["rt.channel.c"]) != 1 {
		t.Fatalf("frames %v", bus.realtime)
	}
}
