package rostercache_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/rostercache"
	"github.com/parleyhq/parley/chatservice/internal/store"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// counting is the real store, counting the member listings that reach it
// (of one channel, or of all in bulk) and optionally holding them until
// released. bulk decides whether the cache loads every channel at once,
// as it does on FerretDB, or one channel at a time, as on MongoDB.
type counting struct {
	*store.Store
	bulk  bool
	lists atomic.Int64
	hold  chan chan struct{} // when set, a listing sends a channel and waits for it to close
	// gets, reads, raises and senderReads count GetMember, MarkRead,
	// RaiseReadSeq and MarkSenderRead.
	gets, reads, raises, senderReads atomic.Int64
}

func (c *counting) MarkSenderRead(ctx context.Context, channelID, userID string, seq int64) error {
	c.senderReads.Add(1)
	return c.Store.MarkSenderRead(ctx, channelID, userID, seq)
}

func (c *counting) GetMember(ctx context.Context, channelID, userID string) (chat.Member, error) {
	c.gets.Add(1)
	return c.Store.GetMember(ctx, channelID, userID)
}

func (c *counting) MarkRead(ctx context.Context, channelID, userID string, seq int64) (int64, error) {
	c.reads.Add(1)
	return c.Store.MarkRead(ctx, channelID, userID, seq)
}

func (c *counting) RaiseReadSeq(ctx context.Context, channelID, userID string, seq int64) error {
	c.raises.Add(1)
	return c.Store.RaiseReadSeq(ctx, channelID, userID, seq)
}

func (c *counting) wait() {
	c.lists.Add(1)
	if c.hold != nil {
		release := make(chan struct{})
		c.hold <- release
		<-release
	}
}

func (c *counting) ListMembers(ctx context.Context, channelID, after string, limit int) ([]chat.Member, error) {
	c.wait()
	return c.Store.ListMembers(ctx, channelID, after, limit)
}

func (c *counting) ScansAllMembers() bool { return c.bulk }

func (c *counting) AllMembers(ctx context.Context) (map[string][]chat.Member, error) {
	c.wait()
	return c.Store.AllMembers(ctx)
}

// modes runs a test with loads of one channel and with bulk loads.
func modes(t *testing.T, test func(t *testing.T, bulk bool)) {
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) { test(t, bulk) })
	}
}

type fixture struct {
	inner *counting
	cache *rostercache.Store
	clock *testenv.Clock
}

func newFixture(t *testing.T, cfg rostercache.Config, bulk bool) *fixture {
	t.Helper()
	st := store.New(testenv.New(t).Mongo(t))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{inner: &counting{Store: st, bulk: bulk}, clock: testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
	cfg.Now = f.clock.Now
	f.cache = rostercache.New(f.inner, cfg)
	return f
}

func (f *fixture) add(t *testing.T, channelID string, users ...string) {
	t.Helper()
	for _, u := range users {
		if _, _, err := f.cache.AddMember(t.Context(), chat.Member{ChannelID: channelID, UserID: u, Role: chat.RoleMember, JoinedAt: f.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(ms []chat.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

func TestPagesMatchTheStore(t *testing.T) {
	modes(t, func(t *testing.T, bulk bool) {
		f := newFixture(t, rostercache.Config{}, bulk)
		f.add(t, "c", "u3", "u1", "u5", "u2", "u4")
		f.add(t, "other", "u1")
		ctx := t.Context()
		tests := []struct {
			after string
			limit int
		}{
			{"", 0}, {"", 2}, {"u2", 2}, {"u4", 10}, {"u5", 10}, {"a", 1}, {"zz", 3},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("after=%q/limit=%d", tt.after, tt.limit), func(t *testing.T) {
				want, err := f.inner.Store.ListMembers(ctx, "c", tt.after, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.cache.ListMembers(ctx, "c", tt.after, tt.limit)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(ids(got)) != fmt.Sprint(ids(want)) {
					t.Errorf("cache %v, store %v", ids(got), ids(want))
				}
			})
		}
		if n := f.inner.lists.Load(); n != 1 {
			t.Errorf("%d listings reached the store, want 1 (the fill)", n)
		}
		counts, err := f.cache.CountMembers(ctx, []string{"c", "other", "none"})
		if err != nil {
			t.Fatal(err)
		}
		if counts["c"] != 5 || counts["other"] != 1 || counts["none"] != 0 {
			t.Errorf("counts %v", counts)
		}
	})
}

func TestWritesRefreshTheList(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		write func(t *testing.T, f *fixture)
		want  string
	}{
		{"add", func(t *testing.T, f *fixture) { f.add(t, "c", "u0") }, "[u0 u1 u2]"},
		{"delete", func(t *testing.T, f *fixture) {
			if _, err := f.cache.DeleteMember(ctx, "c", "u1"); err != nil {
				t.Fatal(err)
			}
		}, "[u2]"},
		{"role", func(t *testing.T, f *fixture) {
			if _, err := f.cache.SetMemberRole(ctx, "c", "u2", chat.RoleAdmin); err != nil {
				t.Fatal(err)
			}
		}, "[u1 u2:admin]"},
		{"expiry of a write made elsewhere", func(t *testing.T, f *fixture) {
			if _, _, err := f.inner.Store.AddMember(ctx, chat.Member{ChannelID: "c", UserID: "u3", Role: chat.RoleMember}); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(rostercache.DefaultTTL)
		}, "[u1 u2 u3]"},
	}
	for _, tt := range tests {
		modes(t, func(t *testing.T, bulk bool) {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t, rostercache.Config{}, bulk)
				f.add(t, "c", "u1", "u2")
				if _, err := f.cache.ListMembers(ctx, "c", "", 0); err != nil {
					t.Fatal(err)
				}
				tt.write(t, f)
				got, err := f.cache.ListMembers(ctx, "c", "", 0)
				if err != nil {
					t.Fatal(err)
				}
				var s []string
				for _, m := range got {
					if m.Role != chat.RoleMember {
						s = append(s, m.UserID+":"+m.Role)
					} else {
						s = append(s, m.UserID)
					}
				}
				if fmt.Sprint(s) != tt.want {
					t.Errorf("after the write: %v, want %s", s, tt.want)
				}
				if n := f.inner.lists.Load(); n != 2 {
					t.Errorf("%d listings reached the store, want 2", n)
				}
			})
		})
	}
}

func TestMarkReadUpdatesInPlace(t *testing.T) {
	modes(t, func(t *testing.T, bulk bool) {
		f := newFixture(t, rostercache.Config{}, bulk)
		ctx := t.Context()
		f.add(t, "c", "u1", "u2")
		if _, err := f.cache.ListMembers(ctx, "c", "", 0); err != nil {
			t.Fatal(err)
		}
		for _, seq := range []int64{5, 3} {
			if _, err := f.cache.MarkRead(ctx, "c", "u2", seq); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.cache.ListMembers(ctx, "c", "u1", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].LastReadSeq != 5 {
			t.Errorf("u2 after reading 5 then 3: %+v", got)
		}
		if n := f.inner.lists.Load(); n != 1 {
			t.Errorf("%d listings reached the store, want 1", n)
		}
		// Not a member: the store says so and the list stays.
		if _, err := f.cache.MarkRead(ctx, "c", "u9", 1); err == nil {
			t.Error("MarkRead of a non-member succeeded")
		}
		if f.cache.Len() != 1 {
			t.Error("a refused MarkRead dropped the list")
		}
	})
}

// A sender's read position shows in the cached list at once; in the Exact
// mode the store is asked only when the position moves, and a member the
// list does not have is not looked for.
func TestMarkSenderRead(t *testing.T) {
	for _, tt := range []struct {
		name             string
		exact            bool
		wantStoreCalls   int64
		wantListAfterOdd int // cached lists after a non-member's raise
	}{
		{"store asked every time", false, 3, 0}, // a member the list lacks: the list is wrong
		{"exact", true, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, rostercache.Config{Exact: tt.exact}, false)
			ctx := t.Context()
			f.add(t, "c", "u1", "u2")
			if _, err := f.cache.ListMembers(ctx, "c", "", 0); err != nil {
				t.Fatal(err)
			}
			for _, seq := range []int64{5, 3} {
				if err := f.cache.MarkSenderRead(ctx, "c", "u2", seq); err != nil {
					t.Fatal(err)
				}
			}
			got, err := f.cache.ListMembers(ctx, "c", "u1", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].LastReadSeq != 5 {
				t.Errorf("u2 after sending 5 then 3: %+v", got)
			}
			if stored, err := f.inner.Store.GetMember(ctx, "c", "u2"); err != nil || stored.LastReadSeq != 5 {
				t.Fatalf("stored position %d, %v, want 5", stored.LastReadSeq, err)
			}
			if err := f.cache.MarkSenderRead(ctx, "c", "u9", 1); err != nil {
				t.Fatalf("a non-member's raise: %v", err)
			}
			if n := f.inner.senderReads.Load(); n != tt.wantStoreCalls {
				t.Errorf("%d MarkSenderRead reached the store, want %d", n, tt.wantStoreCalls)
			}
			if n := f.cache.Len(); n != tt.wantListAfterOdd {
				t.Errorf("%d cached lists after a non-member's raise, want %d", n, tt.wantListAfterOdd)
			}
		})
	}
}

// TestConcurrentReadersShareOneFill holds the fill until every reader
// waits for it, then checks one listing served them all; a write while a
// fill runs keeps its result out of the cache, and a MarkRead while a fill
// runs is applied to it.
func TestConcurrentReadersShareOneFill(t *testing.T) {
	modes(t, func(t *testing.T, bulk bool) {
		f := newFixture(t, rostercache.Config{}, bulk)
		ctx := t.Context()
		f.add(t, "c", "u1", "u2")
		f.inner.hold = make(chan chan struct{})

		const readers = 8
		var wg sync.WaitGroup
		results := make([][]chat.Member, readers)
		for i := range readers {
			wg.Go(func() {
				var err error
				if results[i], err = f.cache.ListMembers(ctx, "c", "", 0); err != nil {
					t.Error(err)
				}
			})
		}
		release := <-f.inner.hold // the one fill
		if _, err := f.cache.MarkRead(ctx, "c", "u1", 7); err != nil {
			t.Fatal(err)
		}
		close(release)
		wg.Wait()
		f.inner.hold = nil
		if n := f.inner.lists.Load(); n != 1 {
			t.Errorf("%d listings for %d concurrent readers, want 1", n, readers)
		}
		got, err := f.cache.ListMembers(ctx, "c", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].LastReadSeq != 7 {
			t.Errorf("cached list after a MarkRead during the fill: %+v", got)
		}

		// A membership write during a fill: the fill's result is not kept.
		f.clock.Advance(rostercache.DefaultTTL)
		f.inner.hold = make(chan chan struct{})
		done := make(chan error, 1)
		go func() { _, err := f.cache.ListMembers(ctx, "c", "", 0); done <- err }()
		release = <-f.inner.hold
		f.inner.hold = nil
		f.add(t, "c", "u3")
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got, err = f.cache.ListMembers(ctx, "c", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != "[u1 u2 u3]" {
			t.Errorf("list after a join during a fill: %v", ids(got))
		}
	})
}

func TestLimits(t *testing.T) {
	modes(t, func(t *testing.T, bulk bool) {
		f := newFixture(t, rostercache.Config{MaxChannels: 2, MaxMembers: 3}, bulk)
		ctx := t.Context()
		f.add(t, "big", "u1", "u2", "u3", "u4")
		for range 2 {
			got, err := f.cache.ListMembers(ctx, "big", "u1", 2)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ids(got)) != "[u2 u3]" {
				t.Errorf("page of a big channel: %v", ids(got))
			}
		}
		if f.cache.Len() != 0 {
			t.Error("a channel over MaxMembers was cached")
		}
		// One load, which finds it too big, then the store for each page.
		if n := f.inner.lists.Load(); n != 3 {
			t.Errorf("%d listings for two pages of a big channel, want 3", n)
		}
		for _, c := range []string{"a", "b", "c"} {
			f.add(t, c, "u1")
			if _, err := f.cache.ListMembers(ctx, c, "", 0); err != nil {
				t.Fatal(err)
			}
		}
		if f.cache.Len() != 2 {
			t.Errorf("%d channels cached, want MaxChannels 2", f.cache.Len())
		}
	})
}

// TestBulkLoadFillsEveryChannel: where a query by channel reads every
// membership anyway, one load caches every channel.
func TestBulkLoadFillsEveryChannel(t *testing.T) {
	f := newFixture(t, rostercache.Config{}, true)
	ctx := t.Context()
	f.add(t, "a", "u1", "u2")
	f.add(t, "b", "u2")
	f.add(t, "c", "u3", "u1")
	want := map[string]string{"a": "[u1 u2]", "b": "[u2]", "c": "[u1 u3]", "empty": "[]"}
	for _, id := range []string{"a", "b", "c", "empty"} {
		got, err := f.cache.ListMembers(ctx, id, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != want[id] {
			t.Errorf("%s: %v, want %s", id, ids(got), want[id])
		}
	}
	// A channel without members is not in the bulk result: it takes a
	// load of its own, which then remembers it as empty.
	if n := f.inner.lists.Load(); n != 2 {
		t.Errorf("%d listings for three channels and an empty one, want 2", n)
	}
	if _, err := f.cache.ListMembers(ctx, "empty", "", 0); err != nil {
		t.Fatal(err)
	}
	if n := f.inner.lists.Load(); n != 2 {
		t.Errorf("the empty channel was loaded again")
	}
	if f.cache.Len() != 4 {
		t.Errorf("%d channels cached, want 4", f.cache.Len())
	}

	// After the TTL one bulk load refreshes every channel again.
	f.clock.Advance(rostercache.DefaultTTL)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := f.cache.ListMembers(ctx, id, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.inner.lists.Load(); n != 3 {
		t.Errorf("%d listings in all after expiry, want 3 (one more bulk load)", n)
	}
}

// In the Exact mode membership checks and read positions are answered
// from the cached list, and a read position is raised without the
// store's read; writes through the cache still show at once. Without it
// every membership check asks the store.
func TestExactMode(t *testing.T) {
	modes(t, func(t *testing.T, bulk bool) {
		f := newFixture(t, rostercache.Config{Exact: true}, bulk)
		ctx := t.Context()
		f.add(t, "c", "u1", "u2")
		if m, err := f.cache.GetMember(ctx, "c", "u1"); err != nil || m.UserID != "u1" || m.Role != chat.RoleMember {
			t.Fatalf("GetMember(u1) = %+v, %v", m, err)
		}
		if _, err := f.cache.GetMember(ctx, "c", "u9"); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("GetMember of a non-member: %v, want ErrNotFound", err)
		}
		for _, c := range []struct{ seq, want int64 }{{5, 5}, {3, 5}, {7, 7}} {
			if got, err := f.cache.MarkRead(ctx, "c", "u2", c.seq); err != nil || got != c.want {
				t.Fatalf("MarkRead(%d) = %d, %v, want %d", c.seq, got, err, c.want)
			}
		}
		if _, err := f.cache.MarkRead(ctx, "c", "u9", 1); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("MarkRead of a non-member: %v, want ErrNotFound", err)
		}
		if stored, err := f.inner.Store.GetMember(ctx, "c", "u2"); err != nil || stored.LastReadSeq != 7 {
			t.Fatalf("stored position %d, %v, want 7", stored.LastReadSeq, err)
		}
		if gets, reads, raises := f.inner.gets.Load(), f.inner.reads.Load(), f.inner.raises.Load(); gets != 0 || reads != 0 || raises != 2 {
			t.Errorf("the store saw %d GetMember, %d MarkRead, %d RaiseReadSeq; want 0, 0, 2", gets, reads, raises)
		}
		// Joins, leaves and role changes update the list in place.
		if _, err := f.cache.DeleteMember(ctx, "c", "u1"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cache.GetMember(ctx, "c", "u1"); !errors.Is(err, chat.ErrNotFound) {
			t.Fatalf("GetMember after leaving: %v, want ErrNotFound", err)
		}
		f.add(t, "c", "u3")
		if _, err := f.cache.SetMemberRole(ctx, "c", "u2", chat.RoleAdmin); err != nil {
			t.Fatal(err)
		}
		got, err := f.cache.ListMembers(ctx, "c", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != "[u2 u3]" || got[0].Role != chat.RoleAdmin || got[0].LastReadSeq != 7 {
			t.Errorf("list after a leave, a join and a role change: %+v", got)
		}
		if n := f.inner.lists.Load(); n != 1 {
			t.Errorf("%d listings, want 1", n)
		}

		// A join during a fill is applied to its result.
		f.clock.Advance(rostercache.DefaultTTL)
		f.inner.hold = make(chan chan struct{})
		done := make(chan error, 1)
		go func() { _, err := f.cache.GetMember(ctx, "c", "u2"); done <- err }()
		release := <-f.inner.hold
		f.inner.hold = nil
		f.add(t, "c", "u4")
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if m, err := f.cache.GetMember(ctx, "c", "u4"); err != nil || m.UserID != "u4" {
			t.Fatalf("GetMember of a join made during a fill = %+v, %v", m, err)
		}
		if n := f.inner.lists.Load(); n != 2 {
			t.Errorf("%d listings, want 2 (the fill's result was kept)", n)
		}

		plain := newFixture(t, rostercache.Config{}, bulk)
		plain.add(t, "c", "u1")
		if _, err := plain.cache.ListMembers(ctx, "c", "", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.cache.GetMember(ctx, "c", "u1"); err != nil {
			t.Fatal(err)
		}
		if gets := plain.inner.gets.Load(); gets != 1 {
			t.Errorf("without Exact, %d GetMember reached the store, want 1", gets)
		}
	})
}
