package store

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/platform/testenv"
)

// BenchmarkHeartbeat measures one gateway node's heartbeat listing 100,000
// connections, all known: one script call per batch.
//
//	PARLEY_REDIS_URL=redis://127.0.0.1:6379 go test -run '^$' -bench Heartbeat -benchmem ./internal/store
//
// Without PARLEY_REDIS_URL it runs on a private miniredis: the embedded one
// runs with ClockTTL, which makes every command scan all keys, far too slow
// to seed 100,000 connections.
func BenchmarkHeartbeat(b *testing.B) {
	const n = 100_000
	s, rdb := benchState(b)
	conns := seedConnections(b, rdb, s, "bench-node", n, at(0))
	ctx := context.Background()
	now := at(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Second)
		unknown, pruned, err := s.Heartbeat(ctx, "bench-node", conns, now, at(0))
		if err != nil {
			b.Fatal(err)
		}
		if len(unknown) != 0 || len(pruned) != 0 {
			b.Fatalf("%d unknown, %d pruned", len(unknown), len(pruned))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
}

// benchState returns a RedisState on the real Redis named by
// PARLEY_REDIS_URL, or on a private miniredis with a long client timeout.
func benchState(b *testing.B) (*RedisState, *redis.Client) {
	b.Helper()
	if os.Getenv(testenv.EnvRedisURL) != "" {
		return newState(b, RedisConfig{Timeout: time.Minute})
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ReadTimeout: time.Minute, WriteTimeout: time.Minute})
	b.Cleanup(func() {
		if err := rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			b.Error(err)
		}
	})
	return NewRedisState(rdb, RedisConfig{Prefix: "bench:", Timeout: time.Minute}), rdb
}
