package embedded

import (
	"fmt"
	"log/slog"

	"github.com/alicebob/miniredis/v2"
)

// RedisConfig configures StartRedis.
type RedisConfig struct {
	// Addr is the listen address; default "127.0.0.1:0" (random port).
	Addr string
	// Logger is accepted for symmetry with the other backends; miniredis
	// does not log.
	Logger *slog.Logger
}

// Redis is an embedded miniredis. Its data is in memory only and is lost on
// Close: Parley keeps nothing in Redis that it cannot rebuild.
type Redis struct {
	mr *miniredis.Miniredis
}

// StartRedis starts miniredis with a running clock, so keys with a TTL
// expire in real time like on a real Redis.
func StartRedis(cfg RedisConfig) (*Redis, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	mr := miniredis.NewMiniRedis()
	// By default miniredis only expires keys when a test calls
	// FastForward. ClockTTL (new in miniredis v2.40) ages TTLs by the wall clock
	// on every access instead, which is exact and needs no ticker goroutine.
	mr.ClockTTL(true)
	if err := mr.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start redis on %s: %w", addr, err)
	}
	return &Redis{mr: mr}, nil
}

// URL returns a redis:// URL for go-redis ParseURL.
func (r *Redis) URL() string { return "redis://" + r.mr.Addr() }

// Miniredis exposes the server, e.g. to inspect keys or inject errors.
func (r *Redis) Miniredis() *miniredis.Miniredis { return r.mr }

// Close stops the server; its data is gone.
func (r *Redis) Close() { r.mr.Close() }
