package channelcache_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/channelcache"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/store"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// counting is the real store, counting the channel reads that reach it.
type counting struct {
	*store.Store
	reads atomic.Int64
}

func (c *counting) GetChannel(ctx context.Context, id string) (chat.Channel, error) {
	c.reads.Add(1)
	return c.Store.GetChannel(ctx, id)
}

func newCache(t *testing.T, cfg channelcache.Config) (*counting, *channelcache.Store) {
	t.Helper()
	st := store.New(testenv.New(t).Mongo(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	inner := &counting{Store: st}
	return inner, channelcache.New(inner, cfg)
}

func mustInsert(t *testing.T, s chat.ChannelStore, id string) {
	t.Helper()
	ch := chat.Channel{ID: id, Name: id, Type: chat.ChannelGroup, CreatedBy: "u", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.InsertChannel(t.Context(), ch); err != nil {
		t.Fatal(err)
	}
}

// The cached copy follows every preview write the store sees, so that a
// cached read equals a read from the store.
func TestCacheFollowsPreviews(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	inner, cache := newCache(t, channelcache.Config{TTL: time.Hour, Now: clock.Now})
	ctx := t.Context()
	mustInsert(t, cache, "c1")
	msg := func(seq int64, content string) chat.Message {
		return chat.Message{
			ID: content, ChannelID: "c1", Seq: seq, UserID: "u", Content: content, Type: chat.MessageText,
			CreatedAt: time.Now(), Terms: []string{content},
		}
	}
	edited := msg(2, "second")
	edited.Content, edited.EditedAt = "second, edited", time.Now()
	steps := []struct {
		name  string
		write func() error
	}{
		{"first read", func() error { return nil }},
		{"a message", func() error { return cache.SetLastMessage(ctx, msg(1, "first")) }},
		{"a newer one", func() error { return cache.SetLastMessage(ctx, msg(2, "second")) }},
		{"an older one is ignored", func() error { return cache.SetLastMessage(ctx, msg(1, "first")) }},
		{"an edit of the last one", func() error { return cache.ReplaceLastMessage(ctx, edited) }},
		{"an edit of an older one is ignored", func() error { return cache.ReplaceLastMessage(ctx, msg(1, "first, edited")) }},
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got, err := cache.GetChannel(ctx, "c1")
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want, err := inner.Store.GetChannel(ctx, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: cached %+v (last %+v), store %+v (last %+v)", st.name, got, got.LastMessage, want, want.LastMessage)
		}
	}
	if n := inner.reads.Load(); n != 1 {
		t.Errorf("%d reads reached the store, want 1", n)
	}

	// A caller changing its copy does not change the cache's.
	got, _ := cache.GetChannel(ctx, "c1")
	got.LastMessage.Content = "scribbled"
	if again, _ := cache.GetChannel(ctx, "c1"); again.LastMessage.Content != "second, edited" {
		t.Errorf("the cached preview changed with a caller's copy: %q", again.LastMessage.Content)
	}
}

// Entries expire after the TTL, missing channels are not cached, and the
// cache holds at most MaxChannels.
func TestCacheBounds(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	inner, cache := newCache(t, channelcache.Config{TTL: time.Minute, MaxChannels: 2, Now: clock.Now})
	ctx := t.Context()
	for _, id := range []string{"a", "b", "c"} {
		mustInsert(t, cache, id)
	}
	reads := func() int64 { return inner.reads.Load() }
	steps := []struct {
		name      string
		advance   time.Duration
		id        string
		wantReads int64
		wantErr   error
	}{
		{"first read of a", 0, "a", 1, nil},
		{"a again, cached", 30 * time.Second, "a", 1, nil},
		{"a after the TTL", 31 * time.Second, "a", 2, nil},
		{"a missing channel", 0, "zz", 3, chat.ErrNotFound},
		{"it is asked for again", 0, "zz", 4, chat.ErrNotFound},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		_, err := cache.GetChannel(ctx, st.id)
		if (st.wantErr == nil && err != nil) || (st.wantErr != nil && !errors.Is(err, st.wantErr)) {
			t.Fatalf("%s: %v, want %v", st.name, err, st.wantErr)
		}
		if got := reads(); got != st.wantReads {
			t.Fatalf("%s: %d store reads, want %d", st.name, got, st.wantReads)
		}
	}
	// a, b and c do not fit: one of the first two was dropped for c.
	for _, id := range []string{"b", "c"} {
		if _, err := cache.GetChannel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	before := reads()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := cache.GetChannel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if extra := reads() - before; extra < 1 {
		t.Fatalf("3 channels read from a cache of 2 with %d store reads, want at least 1", extra)
	}
}
