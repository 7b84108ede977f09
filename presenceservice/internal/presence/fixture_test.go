package presence_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
	"github.com/parleyhq/parley/presenceservice/internal/store"
)

func newClock() *testenv.Clock { return testenv.NewClock(time.UnixMilli(1_800_000_000_000)) }

// recorder is a ChangePublisher that keeps what was published.
type recorder struct {
	mu      sync.Mutex
	changes []presence.Change
}

func (r *recorder) PublishChange(_ context.Context, c presence.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
	return nil
}

// take returns the changes published since the last take.
func (r *recorder) take() []presence.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

type fixture struct {
	svc     *presence.Service
	state   *store.RedisState
	durable *store.MongoStore
	pub     *recorder
	clock   *testenv.Clock
	rdb     *redis.Client
}

// newFixture builds the domain on the test environment's Redis (unique key
// prefix, cleaned up) and MongoDB (fresh database), a recording publisher
// and a fake clock; edit adjusts the config.
func newFixture(t *testing.T, edit func(*presence.Config)) *fixture {
	t.Helper()
	env := testenv.New(t)
	f := &fixture{pub: &recorder{}, clock: newClock(), rdb: env.Redis(t)}
	prefix := testenv.Unique("presence") + ":"
	t.Cleanup(func() { deletePrefix(t, f.rdb, prefix) })
	f.state = store.NewRedisState(f.rdb, store.RedisConfig{Prefix: prefix})
	f.durable = store.NewMongoStore(env.Mongo(t), 0)
	cfg := presence.Config{
		State:             f.state,
		Durable:           f.durable,
		Publisher:         f.pub,
		HeartbeatInterval: 10 * time.Second,
		Clock:             f.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	svc, err := presence.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func deletePrefix(t testing.TB, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Errorf("list test keys: %v", err)
		return
	}
	for len(keys) > 0 {
		n := min(1000, len(keys))
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
			return
		}
		keys = keys[n:]
	}
}

// statuses returns "user:status" of each change, in order.
func statuses(cs []presence.Change) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.UserID+":"+string(c.Status))
	}
	return out
}

func wantChanges(t *testing.T, what string, got []presence.Change, want ...string) {
	t.Helper()
	if g := statuses(got); !slices.Equal(g, want) && len(g)+len(want) > 0 {
		t.Errorf("%s: published %v, want %v", what, g, want)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
