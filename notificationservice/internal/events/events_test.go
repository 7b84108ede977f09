package events

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

func event(typ, subject, data string) eventbus.Event {
	return eventbus.Event{ID: "e1", Type: typ, Source: "test", Subject: subject, Data: json.RawMessage(data),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Version: 1}
}

func TestDecodeMessageSent(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		subject string
		want    notify.MessageSent
		perm    bool
	}{
		{
			name: "the chat service's shape (proto names)",
			data: `{"channel_id":"c1","channel_type":"private","actor_id":"u1","mentions":["bob"],
				"message":{"id":"m1","channel_id":"c1","seq":"42","user_id":"u1","content":"hi @bob","type":"text","created_at":"2026-01-02T03:04:06Z","metadata":{"x":"y"}},
				"something_new":true}`,
			want: notify.MessageSent{EventID: "e1", ChannelID: "c1", ChannelType: "private", MessageID: "m1", Seq: 42, SenderID: "u1",
				Content: "hi @bob", MessageType: "text", Mentions: []string{"bob"}, SentAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC)},
		},
		{
			name:    "camelCase message, channel from the subject, sender from the actor",
			data:    `{"channel_type":"GROUP","actor_id":"u2","message":{"id":"m2","seq":7,"content":"yo"},"mentioned_user_ids":["u3"],"channel_name":"team"}`,
			subject: "c9",
			want: notify.MessageSent{EventID: "e1", ChannelID: "c9", ChannelType: "group", ChannelName: "team", MessageID: "m2", Seq: 7,
				SenderID: "u2", Content: "yo", MentionedUserIDs: []string{"u3"}, SentAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		},
		{name: "not JSON", data: `[`, perm: true},
		{name: "bad message", data: `{"channel_id":"c1","message":{"seq":"x"}}`, perm: true},
		{name: "no sender", data: `{"channel_id":"c1","message":{"id":"m"}}`, perm: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeMessageSent(event(eventbus.TypeMessageSent, tt.subject, tt.data))
			if tt.perm {
				if !eventbus.IsPermanent(err) {
					t.Fatalf("err = %v, want permanent", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tt.want)
			if string(gj) != string(wj) {
				t.Errorf("got  %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestDecodeFriendRequested(t *testing.T) {
	tests := []struct {
		name, data, subject string
		want                notify.FriendRequested
		perm                bool
	}{
		{"user service shape", `{"user_id":"a","friend_id":"b","state":"incoming"}`, "b", notify.FriendRequested{EventID: "e1", FromUserID: "a", ToUserID: "b"}, false},
		{"target from the subject", `{"user_id":"a"}`, "b", notify.FriendRequested{EventID: "e1", FromUserID: "a", ToUserID: "b"}, false},
		{"no target", `{"user_id":"a"}`, "", notify.FriendRequested{}, true},
		{"to oneself", `{"user_id":"a","friend_id":"a"}`, "", notify.FriendRequested{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeFriendRequested(event(TypeFriendRequested, tt.subject, tt.data))
			if tt.perm != eventbus.IsPermanent(err) || (!tt.perm && err != nil) {
				t.Fatalf("err = %v, permanent wanted %v", err, tt.perm)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

type recorder struct {
	msgs    []notify.MessageSent
	friends []notify.FriendRequested
	err     error
}

func (r *recorder) HandleMessageSent(_ context.Context, m notify.MessageSent) error {
	r.msgs = append(r.msgs, m)
	return r.err
}

func (r *recorder) HandleFriendRequested(_ context.Context, f notify.FriendRequested) error {
	r.friends = append(r.friends, f)
	return r.err
}

func TestHandler(t *testing.T) {
	tests := []struct {
		name     string
		ev       eventbus.Event
		err      error
		wantPerm bool
		wantErr  bool
		msgs     int
		friends  int
	}{
		{"message", event(eventbus.TypeMessageSent, "c", `{"actor_id":"u","message":{}}`), nil, false, false, 1, 0},
		{"friend", event(TypeFriendRequested, "b", `{"user_id":"a"}`), nil, false, false, 0, 1},
		{"other types are ignored", event("channel.created", "c", `{}`), nil, false, false, 0, 0},
		{"undecodable is permanent", event(eventbus.TypeMessageSent, "c", `{`), nil, true, true, 0, 0},
		{"domain permanent becomes eventbus permanent", event(TypeFriendRequested, "b", `{"user_id":"a"}`), notify.Permanent(errors.New("bad")), true, true, 0, 1},
		{"temporary stays temporary", event(TypeFriendRequested, "b", `{"user_id":"a"}`), errors.New("mongo down"), false, true, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{err: tt.err}
			err := Handler(r)(context.Background(), tt.ev)
			if (err != nil) != tt.wantErr || eventbus.IsPermanent(err) != tt.wantPerm {
				t.Errorf("err = %v (permanent %v), want error %v permanent %v", err, eventbus.IsPermanent(err), tt.wantErr, tt.wantPerm)
			}
			if len(r.msgs) != tt.msgs || len(r.friends) != tt.friends {
				t.Errorf("handled %d messages and %d friend requests", len(r.msgs), len(r.friends))
			}
		})
	}
}
