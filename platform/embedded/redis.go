package embedded

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	mr   *miniredis.Miniredis
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// redisClockTick is how often the embedded Redis ages its TTLs: keys
// expire up to this late.
const redisClockTick = 250 * time.Millisecond

// StartRedis starts miniredis with a running clock, so keys with a TTL
// expire in real time like on a real Redis.
func StartRedis(cfg RedisConfig) (*Redis, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	mr := miniredis.NewMiniRedis()
	// miniredis only expires keys when FastForward is called. Its ClockTTL
	// mode does that on every command, and every FastForward lists and
	// sorts every key: with 10,000 connections' presence keys that was a
	// quarter of the all-in-one's CPU under load. A ticker ages the TTLs
	// a few times a second instead.
	if err := mr.StartAddr(addr); err != nil {
		return nil, fmt.Errorf("start redis on %s: %w", addr, err)
	}
	r := &Redis{mr: mr, stop: make(chan struct{}), done: make(chan struct{})}
	go r.runClock()
	return r, nil
}

// runClock ages the TTLs by the wall clock until Close.
func (r *Redis) runClock() {
	defer close(r.done)
	t := time.NewTicker(redisClockTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.mr.FastForward(now.Sub(last))
			last = now
		}
	}
}

// URL returns a redis:// URL for go-redis ParseURL.
func (r *Redis) URL() string { return "redis://" + r.mr.Addr() }

// Miniredis exposes the server, e.g. to inspect keys or inject errors.
func (r *Redis) Miniredis() *miniredis.Miniredis { return r.mr }

// Close stops the server; its data is gone.
func (r *Redis) Close() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	r.mr.Close()
}
