package userservice_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/testenv"
)

// lastEvent returns the newest event of a type on the harness's stream,
// waiting for it to arrive.
func (h *harness) lastEvent(t *testing.T, typ, subject string) eventbus.Event {
	t.Helper()
	var ev eventbus.Event
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		stream, err := h.js.Stream(ctxT(t), h.names.EventsStream)
		if err != nil {
			return err
		}
		msg, err := stream.GetLastMsgForSubject(ctxT(t), h.names.Subject(typ))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("no %s event yet", typ)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			return err
		}
		if ev.Subject != subject {
			return fmt.Errorf("last %s event is about %s, want %s", typ, ev.Subject, subject)
		}
		if got := msg.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
			return fmt.Errorf("Nats-Msg-Id %q, want the event id %q", got, ev.ID)
		}
		return nil
	})
	return ev
}

func TestEventsOnTheBus(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	amy := h.register(t, "amy")
	ben := h.register(t, "ben")

	reg := h.lastEvent(t, "user.registered", ben.GetUser().GetId())
	var data struct {
		UserID   string `json:"user_id"`
		Username string `json:"username"`
	}
	if err := reg.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if reg.Source != "userservice" || data.UserID != ben.GetUser().GetId() || data.Username != "ben" {
		t.Fatalf("user.registered = %+v (%+v)", reg, data)
	}

	if _, err := h.client.AddFriend(bearer(ctx, amy.GetAccessToken()), &userv1.AddFriendRequest{UserId: ben.GetUser().GetId()}); err != nil {
		t.Fatal(err)
	}
	req := h.lastEvent(t, "friend.requested", ben.GetUser().GetId())
	var fd struct {
		UserID   string `json:"user_id"`
		FriendID string `json:"friend_id"`
		State    string `json:"state"`
	}
	if err := req.Decode(&fd); err != nil {
		t.Fatal(err)
	}
	if fd.UserID != amy.GetUser().GetId() || fd.FriendID != ben.GetUser().GetId() || fd.State != "incoming" {
		t.Fatalf("friend.requested data = %+v", fd)
	}

	if _, err := h.client.AddFriend(bearer(ctx, ben.GetAccessToken()), &userv1.AddFriendRequest{UserId: amy.GetUser().GetId()}); err != nil {
		t.Fatal(err)
	}
	acc := h.lastEvent(t, "friend.accepted", amy.GetUser().GetId())
	if err := acc.Decode(&fd); err != nil {
		t.Fatal(err)
	}
	if fd.UserID != ben.GetUser().GetId() || fd.FriendID != amy.GetUser().GetId() || fd.State != "friend" {
		t.Fatalf("friend.accepted data = %+v", fd)
	}

	// Everything published was cleared from the outbox.
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, coll := range []string{"users", "friendships"} {
			n, err := h.db.Collection(coll).CountDocuments(ctx, map[string]any{"outbox_ids.0": map[string]any{"$exists": true}})
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("%d %s still have pending events", n, coll)
			}
		}
		return nil
	})
}
