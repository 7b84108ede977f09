package chatservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/store"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/testenv"
)

// flakyPublisher fails while down is set, like NATS during an outage.
type flakyPublisher struct {
	next  chat.EventPublisher
	down  atomic.Bool
	fails atomic.Int64
}

func (p *flakyPublisher) Publish(ctx context.Context, ev chat.Event) error {
	if p.down.Load() {
		p.fails.Add(1)
		return errors.New("nats: no servers available")
	}
	return p.next.Publish(ctx, ev)
}

// streamEvents reads every event of a type in the test's stream.
func (f *fixture) streamEvents(t testing.TB, typ string) []eventbus.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := f.js.OrderedConsumer(ctx, f.cfg.Events.EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{f.cfg.Events.Subject(typ)},
	})
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	pending := int(info.NumPending)
	var out []eventbus.Event
	for len(out) < pending {
		batch, err := cons.Fetch(pending-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for msg := range batch.Messages() {
			var ev eventbus.Event
			if err := json.Unmarshal(msg.Data(), &ev); err != nil {
				t.Fatalf("decode event: %v", err)
			}
			out = append(out, ev)
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
	}
	return out
}

// A publish that fails after the message is stored does not fail the
// send, and the relay publishes the event once publishing works again:
// exactly once on the stream.
func TestFailedPublishIsRetriedByTheRelay(t *testing.T) {
	flaky := &flakyPublisher{}
	f := newFixture(t, withEvents(func(next chat.EventPublisher) chat.EventPublisher {
		flaky.next = next
		return flaky
	}))
	ch := f.mustCreate(t, "alice", "group", "outage", "bob")
	flaky.down.Store(true)
	m := f.mustSend(t, "alice", ch.GetId(), "sent during the outage")
	if m.GetSeq() != 1 {
		t.Fatalf("stored with seq %d", m.GetSeq())
	}
	if flaky.fails.Load() == 0 {
		t.Fatal("the publish was never attempted")
	}
	// Stored, readable, and pending in the outbox.
	all := f.allMessages(t, "bob", ch.GetId())
	if len(all) != 1 || all[0].GetId() != m.GetId() {
		t.Fatalf("history during the outage: %v", all)
	}
	st := store.New(f.db)
	if n, err := st.CountOutbox(t.Context()); err != nil || n != 1 {
		t.Fatalf("outbox has %d entries (%v), want 1", n, err)
	}
	// The relay keeps failing while NATS is down.
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if flaky.fails.Load() < 3 {
			return fmt.Errorf("%d failed attempts so far", flaky.fails.Load())
		}
		return nil
	})
	if evs := f.streamEvents(t, chat.EventMessageSent); len(evs) != 0 {
		t.Fatalf("%d message.sent events during the outage", len(evs))
	}

	flaky.down.Store(false)
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n, err := st.CountOutbox(t.Context()); err != nil || n != 0 {
			return fmt.Errorf("outbox has %d entries (%v)", n, err)
		}
		return nil
	})
	evs := f.streamEvents(t, chat.EventMessageSent)
	if len(evs) != 1 {
		t.Fatalf("%d message.sent events after recovery, want exactly 1", len(evs))
	}
	var data struct {
		ChannelType string          `json:"channel_type"`
		Message     json.RawMessage `json:"message"`
	}
	if err := evs[0].Decode(&data); err != nil {
		t.Fatal(err)
	}
	var got chatv1.Message
	if err := (protoUnmarshal(data.Message, &got)); err != nil {
		t.Fatal(err)
	}
	if got.GetId() != m.GetId() || got.GetSeq() != 1 || data.ChannelType != "group" || evs[0].Subject != ch.GetId() || evs[0].Source != ServiceName {
		t.Fatalf("event %+v with message %v", evs[0], &got)
	}
}

// The relay finishes a send whose process died after recording the event
// but before storing the message: it stores the message from the outbox
// copy, then publishes.
func TestRelayStoresAMessageLostBetweenOutboxAndInsert(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "group", "crash")
	st := store.New(f.db)
	now := time.Now().UTC().Truncate(time.Millisecond)
	msg := chat.Message{
		ID: "m-crashed", ChannelID: ch.GetId(), UserID: "alice", Content: "stored by the relay",
		Type: "text", CreatedAt: now, Terms: chat.Terms("stored by the relay"),
	}
	entry := chat.OutboxEntry{
		ID: "0b7d3a55-0000-4000-8000-000000000001",
		Event: chat.Event{
			ID: "0b7d3a55-0000-4000-8000-000000000001", Type: chat.EventMessageSent, ChannelID: ch.GetId(),
			ChannelType: "group", ActorID: "alice", Time: now, Message: &msg,
		},
		CreatedAt: now, NextAttemptAt: now,
	}
	if err := st.PutOutbox(t.Context(), entry); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n, err := st.CountOutbox(t.Context()); err != nil || n != 0 {
			return fmt.Errorf("outbox has %d entries (%v)", n, err)
		}
		return nil
	})
	all := f.allMessages(t, "alice", ch.GetId())
	if len(all) != 1 || all[0].GetId() != "m-crashed" || all[0].GetSeq() != 1 {
		t.Fatalf("history: %v", all)
	}
	evs := f.streamEvents(t, chat.EventMessageSent)
	if len(evs) != 1 || evs[0].ID != entry.ID {
		t.Fatalf("events: %+v", evs)
	}
	// The channel preview was brought up to date too.
	resp, err := f.client.ListChannels(as(t, "alice"), &chatv1.ListChannelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetChannels()[0].GetLastMessage().GetId(); got != "m-crashed" {
		t.Fatalf("preview shows %q", got)
	}
}

// Realtime frames: every change reaches <prefix>rt.channel.<id> in the
// WebSocket envelope, with the stored message as data.
func TestRealtimeFrames(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "public", "live")
	nc := f.env.NATS(t)
	frames := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(f.cfg.RealtimePrefix+"rt.channel."+ch.GetId(), frames)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	type frame struct {
		Type      string          `json:"type"`
		Channel   string          `json:"channel"`
		Data      json.RawMessage `json:"data"`
		Timestamp int64           `json:"timestamp"`
		UserID    string          `json:"user_id"`
	}
	next := func(wantType string) frame {
		t.Helper()
		select {
		case msg := <-frames:
			var fr frame
			if err := json.Unmarshal(msg.Data, &fr); err != nil {
				t.Fatalf("frame %s: %v", msg.Data, err)
			}
			if fr.Type != wantType || fr.Channel != ch.GetId() || fr.Timestamp == 0 {
				t.Fatalf("frame %s, want type %s", msg.Data, wantType)
			}
			return fr
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s frame", wantType)
		}
		return frame{}
	}

	if _, err := f.client.JoinChannel(as(t, "bob"), &chatv1.JoinChannelRequest{ChannelId: ch.GetId()}); err != nil {
		t.Fatal(err)
	}
	if fr := next("user_joined"); fr.UserID != "bob" || !jsonHas(t, fr.Data, "user_id", "bob") {
		t.Fatalf("user_joined %+v", fr)
	}
	m, err := f.client.SendMessage(as(t, "bob"), &chatv1.SendMessageRequest{
		ChannelId: ch.GetId(), Content: "hi @Alice and @carol.", ClientMsgId: "k1", Metadata: map[string]string{"reply_to": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fr := next("message")
	var got chatv1.Message
	if err := protoUnmarshal(fr.Data, &got); err != nil {
		t.Fatal(err)
	}
	if fr.UserID != "bob" || got.GetId() != m.GetMessage().GetId() || got.GetSeq() != 1 || got.GetClientMsgId() != "k1" ||
		got.GetMetadata()["reply_to"] != "x" || !jsonHas(t, fr.Data, "channel_id", ch.GetId()) {
		t.Fatalf("message frame %s", fr.Data)
	}
	if _, err := f.client.EditMessage(as(t, "bob"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: got.GetId(), Content: "edited"}); err != nil {
		t.Fatal(err)
	}
	if fr := next("message_updated"); !jsonHas(t, fr.Data, "content", "edited") {
		t.Fatalf("message_updated %s", fr.Data)
	}
	if _, err := f.client.MarkRead(as(t, "alice"), &chatv1.MarkReadRequest{ChannelId: ch.GetId(), Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if fr := next("receipt"); fr.UserID != "alice" || string(fr.Data) != `{"kind":"read","seq":1,"user_id":"alice"}` {
		t.Fatalf("receipt %+v data %s", fr, fr.Data)
	}
	if _, err := f.client.DeleteMessage(as(t, "alice"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: got.GetId()}); err != nil {
		t.Fatal(err)
	}
	if fr := next("message_deleted"); fr.UserID != "alice" || !jsonHas(t, fr.Data, "deleted", true) {
		t.Fatalf("message_deleted %s", fr.Data)
	}
	if _, err := f.client.LeaveChannel(as(t, "bob"), &chatv1.LeaveChannelRequest{ChannelId: ch.GetId()}); err != nil {
		t.Fatal(err)
	}
	next("user_left")

	// The durable events carry what the notification service needs.
	testenv.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		for _, typ := range []string{"channel.created", "user.joined", "message.sent", "message.updated", "message.deleted", "user.left"} {
			if n := len(f.streamEvents(t, typ)); n != 1 {
				return fmt.Errorf("%d %s events", n, typ)
			}
		}
		return nil
	})
	var data struct {
		Mentions    []string `json:"mentions"`
		ChannelType string   `json:"channel_type"`
	}
	if err := f.streamEvents(t, "message.sent")[0].Decode(&data); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(data.Mentions) != "[alice carol]" || data.ChannelType != "public" {
		t.Fatalf("message.sent data %+v", data)
	}
}

func jsonHas(t testing.TB, raw json.RawMessage, key string, want any) bool {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return fmt.Sprint(m[key]) == fmt.Sprint(want)
}
