package natsfeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestPublishAndFeed(t *testing.T) {
	env := testenv.New(t)
	tests := []struct {
		name          string
		wildcardAbove int
		watch         []string
	}{
		{"one subscription per user", 10, []string{"alice", "bob"}},
		{"wildcard with a filter", 1, []string{"alice", "bob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := env.NATS(t)
			prefix := testenv.Unique("t") + "."
			ebp, err := eventbus.NewPublisher(nc, eventbus.PublisherConfig{})
			if err != nil {
				t.Fatal(err)
			}
			pub := NewPublisher(ebp, prefix)
			feed := NewFeed(nc, FeedConfig{Prefix: prefix, WildcardAbove: tt.wildcardAbove})
			ctx := context.Background()
			before := nc.NumSubscriptions()
			sub, err := feed.Subscribe(ctx, tt.watch)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := sub.Close(); err != nil {
					t.Error(err)
				}
				if n := nc.NumSubscriptions(); n != before {
					t.Errorf("%d subscriptions after Close, want %d", n, before)
				}
			}()
			at := time.UnixMilli(1_800_000_000_000).UTC()
			sent := []presence.Change{
				{UserID: "alice", Status: "online", ChangedAt: at, Version: 1, DeviceCount: 1},
				{UserID: "carol", Status: "online", ChangedAt: at, Version: 1}, // not watched
				{UserID: "alice", Status: "away", ChangedAt: at.Add(time.Second), Version: 2, DeviceCount: 1},
				{UserID: "bob", Status: "offline", LastSeen: at, ChangedAt: at, Version: 4},
				{UserID: "alice", Status: "offline", LastSeen: at.Add(2 * time.Second), ChangedAt: at.Add(2 * time.Second), Version: 3},
			}
			for _, c := range sent {
				if err := pub.PublishChange(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			// In publish order, across users too; carol's never arrives.
			want := []presence.Change{sent[0], sent[2], sent[3], sent[4]}
			for i, w := range want {
				nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				g, err := sub.Next(nctx)
				cancel()
				if err != nil {
					t.Fatalf("change %d: %v", i, err)
				}
				if g.UserID != w.UserID || g.Status != w.Status || g.Version != w.Version || !g.ChangedAt.Equal(w.ChangedAt) || !g.LastSeen.Equal(w.LastSeen) || g.DeviceCount != w.DeviceCount {
					t.Errorf("change %d: got %+v, want %+v", i, g, w)
				}
			}
			// Nothing else is pending: a marker published now is next.
			marker := presence.Change{UserID: "bob", Status: "away", ChangedAt: at, Version: 9}
			if err := pub.PublishChange(ctx, marker); err != nil {
				t.Fatal(err)
			}
			nctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if g, err := sub.Next(nctx); err != nil || g.Version != marker.Version {
				t.Errorf("after the expected changes: %+v, %v; want the marker", g, err)
			}
		})
	}
}

func TestMessageJSON(t *testing.T) {
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		c    presence.Change
		want string
	}{
		{
			"offline with last seen",
			presence.Change{UserID: "u1", Status: "offline", LastSeen: at, ChangedAt: at, Version: 7},
			`{"user_id":"u1","status":"offline","last_seen":"2027-01-02T03:04:05Z","device_count":0,"changed_at":"2027-01-02T03:04:05Z","version":7}`,
		},
		{
			"never seen",
			presence.Change{UserID: "u2", Status: "online", DeviceCount: 2, ChangedAt: at, Version: 1},
			`{"user_id":"u2","status":"online","last_seen":null,"device_count":2,"changed_at":"2027-01-02T03:04:05Z","version":1}`,
		},
	}
	for _, tt := range tests {
		b, err := json.Marshal(toMessage(tt.c))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, b, tt.want)
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if back := fromMessage(m); back != tt.c {
			t.Errorf("%s: round trip %+v, want %+v", tt.name, back, tt.c)
		}
	}
}

func TestFeedLagsInsteadOfBlocking(t *testing.T) {
	env := testenv.New(t)
	nc := env.NATS(t)
	prefix := testenv.Unique("t") + "."
	ebp, err := eventbus.NewPublisher(nc, eventbus.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(ebp, prefix)
	sub, err := NewFeed(nc, FeedConfig{Prefix: prefix, Buffer: 2}).Subscribe(context.Background(), []string{"alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Close() }()
	for i := range 5 {
		if err := pub.PublishChange(context.Background(), presence.Change{UserID: "alice", Status: "online", Version: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	// The deliveries to our own subscription precede the PONG on the
	// connection: after Flush they were all delivered or dropped.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The reader fell behind: once it reads, it learns it missed changes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sub.Next(ctx); !errors.Is(err, presence.ErrSlowSubscriber) {
		t.Fatalf("Next after drops: %v, want ErrSlowSubscriber", err)
	}
}
