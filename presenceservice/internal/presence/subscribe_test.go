package presence_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// fakeFeed hands out subscriptions the test feeds by hand.
type fakeFeed struct {
	mu   sync.Mutex
	subs []*fakeSub
}

type fakeSub struct {
	ids    []string
	ch     chan presence.Change
	lagged chan struct{}
	closed chan struct{}
}

func (f *fakeFeed) Subscribe(_ context.Context, ids []string) (presence.Subscription, error) {
	s := &fakeSub{ids: ids, ch: make(chan presence.Change, 16), lagged: make(chan struct{}), closed: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs = append(f.subs, s)
	return s, nil
}

func (f *fakeFeed) last() *fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs[len(f.subs)-1]
}

func (s *fakeSub) Next(ctx context.Context) (presence.Change, error) {
	select {
	case <-ctx.Done():
		return presence.Change{}, ctx.Err()
	case <-s.lagged:
		return presence.Change{}, presence.ErrSlowSubscriber
	case c := <-s.ch:
		return c, nil
	}
}

func (s *fakeSub) Close() error {
	close(s.closed)
	return nil
}

func TestSubscribe(t *testing.T) {
	feed := &fakeFeed{}
	dir := &directory{friends: map[string][]string{"alice": {"carol"}}}
	f := newFixture(t, func(c *presence.Config) { c.Feed, c.Friends = feed, dir })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	must[presence.Presence](t)(f.svc.Connect(ctx, "bob", "b1", "gw"))

	got := make(chan presence.Change, 16)
	done := make(chan error, 1)
	go func() {
		done <- f.svc.Subscribe(ctx, alice, []string{"bob", "dave", "bob"}, true, func(c presence.Change) error {
			got <- c
			return nil
		})
	}()
	next := func() presence.Change {
		t.Helper()
		select {
		case c := <-got:
			return c
		case err := <-done:
			t.Fatalf("stream ended: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no update within 10s")
		}
		return presence.Change{}
	}
	// The snapshot: every watched user once, sorted, as others see them.
	var snap []string
	var bobSnap presence.Change
	for range 3 {
		c := next()
		snap = append(snap, c.UserID+":"+string(c.Status))
		if c.UserID == "bob" {
			bobSnap = c
		}
		if c.ChangedAt.IsZero() {
			t.Errorf("snapshot of %s without changed_at", c.UserID)
		}
	}
	if want := []string{"bob:online", "carol:offline", "dave:offline"}; !slices.Equal(snap, want) {
		t.Fatalf("snapshot %v, want %v", snap, want)
	}
	sub := feed.last()
	if !slices.Equal(sub.ids, []string{"bob", "carol", "dave"}) {
		t.Errorf("subscribed to %v", sub.ids)
	}

	later := bobSnap.ChangedAt.Add(time.Second)
	sub.ch <- bobSnap                                                                                    // already in the snapshot
	sub.ch <- presence.Change{UserID: "eve", Status: "online", ChangedAt: later, Version: 1}             // not watched
	sub.ch <- presence.Change{UserID: "bob", Status: "away", ChangedAt: later, Version: 2}               // new
	sub.ch <- presence.Change{UserID: "bob", Status: "online", ChangedAt: bobSnap.ChangedAt, Version: 1} // overtaken
	sub.ch <- presence.Change{UserID: "carol", Status: "online", ChangedAt: later, Version: 1}
	sub.ch <- presence.Change{UserID: "bob", Status: "busy", ChangedAt: later, Version: 3}
	var stream []string
	for range 3 {
		c := next()
		stream = append(stream, c.UserID+":"+string(c.Status))
	}
	if want := []string{"bob:away", "carol:online", "bob:busy"}; !slices.Equal(stream, want) {
		t.Errorf("changes %v, want %v", stream, want)
	}

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end after the client went away")
	}
	select {
	case <-sub.closed:
	default:
		t.Error("subscription not closed")
	}
}

func TestSubscribeEndsWhenLagging(t *testing.T) {
	feed := &fakeFeed{}
	f := newFixture(t, func(c *presence.Config) { c.Feed = feed })
	ctx := context.Background()
	snapshot := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- f.svc.Subscribe(ctx, bob, []string{"alice"}, false, func(presence.Change) error {
			snapshot <- struct{}{}
			return nil
		})
	}()
	select {
	case <-snapshot:
	case <-time.After(10 * time.Second):
		t.Fatal("no snapshot")
	}
	close(feed.last().lagged)
	select {
	case err := <-done:
		if !errors.Is(err, presence.ErrSlowSubscriber) {
			t.Errorf("ended with %v, want ErrSlowSubscriber", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lagging stream did not end")
	}
}

func TestSubscribeValidation(t *testing.T) {
	f := newFixture(t, func(c *presence.Config) { c.Feed = &fakeFeed{} })
	tooMany := make([]string, presence.MaxUserIDs+1)
	for i := range tooMany {
		tooMany[i] = string(rune('a' + i%26))
	}
	tests := []struct {
		name    string
		ids     []string
		friends bool
		wantErr error
	}{
		{"nothing to watch", nil, false, presence.ErrInvalidArgument},
		{"too many users", tooMany, false, presence.ErrInvalidArgument},
		{"friends without a user service", []string{"a"}, true, presence.ErrScopeUnavailable},
	}
	for _, tt := range tests {
		err := f.svc.Subscribe(context.Background(), bob, tt.ids, tt.friends, func(presence.Change) error { return nil })
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
}
