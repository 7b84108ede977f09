package store

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/platform/testenv"
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

// t0 is the base of the times the tests pass to the store.
var t0 = time.UnixMilli(1_800_000_000_000)

func at(d time.Duration) time.Time { return t0.Add(d) }

// newState returns a RedisState on the test environment's Redis under a
// unique prefix, whose keys are deleted when the test ends.
func newState(t testing.TB, cfg RedisConfig) (*RedisState, *redis.Client) {
	t.Helper()
	rdb := testenv.New(t).Redis(t)
	cfg.Prefix = testenv.Unique("presence") + ":"
	s := NewRedisState(rdb, cfg)
	t.Cleanup(func() { deletePrefix(t, rdb, cfg.Prefix) })
	return s, rdb
}

func deletePrefix(t testing.TB, rdb *redis.Client, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := rdb.Scan(ctx, 0, globEscape(prefix)+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	for i := 0; i < len(keys); i += 1000 {
		if err := rdb.Del(ctx, keys[i:min(i+1000, len(keys))]...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
		}
	}
}
