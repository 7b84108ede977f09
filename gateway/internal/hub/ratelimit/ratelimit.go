// Package ratelimit holds the hub's small, allocation-free limiters: token
// buckets per frame class, a windowed abuse counter, and connection caps per
// key (client IP, user).
//
// Buckets and windows belong to one connection and are used only by its read
// loop, so they carry no lock: a lock per bucket would cost memory on every
// idle connection for no benefit. Caps are shared and locked.
package ratelimit

import (
	"sync"
	"time"
)

// Rate is a token bucket's refill rate and capacity. Every is the time to
// earn one token; a zero Every disables the limit.
type Rate struct {
	Every time.Duration
	Burst int
}

// PerSecond returns a rate of n tokens per second with the given burst.
func PerSecond(n float64, burst int) Rate {
	return Rate{Every: time.Duration(float64(time.Second) / n), Burst: burst}
}

// Bucket is a token bucket. The zero value is empty; use Reset or let the
// first Allow fill it.
type Bucket struct {
	// tat is the "theoretical arrival time" (GCRA): the bucket is full when
	// tat <= now. One int64 per bucket keeps connections small.
	tat int64
}

// Allow takes a token at now, reporting whether one was available.
func (b *Bucket) Allow(r Rate, now time.Time) bool {
	if r.Every <= 0 {
		return true
	}
	burst := r.Burst
	if burst < 1 {
		burst = 1
	}
	n := now.UnixNano()
	tat := b.tat
	if tat < n {
		tat = n
	}
	// A token is available while the debt after taking it stays within the
	// burst's tolerance.
	next := tat + int64(r.Every)
	if next-n > int64(r.Every)*int64(burst) {
		return false
	}
	b.tat = next
	return true
}

// Window counts events in fixed windows: Add reports when count events
// happened within one window. Fixed (not sliding) windows are enough to tell
// sustained abuse from a burst and need two words of state.
type Window struct {
	start int64
	count int32
}

// Add records one event at now and reports whether the window now holds at
// least threshold events. A threshold <= 0 never trips.
func (w *Window) Add(now time.Time, length time.Duration, threshold int) bool {
	if threshold <= 0 {
		return false
	}
	n := now.UnixNano()
	if n-w.start >= int64(length) {
		w.start, w.count = n, 0
	}
	w.count++
	return int(w.count) >= threshold
}

// Caps limits concurrent holders per key (connections per IP or per user).
type Caps struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewCaps returns caps allowing max holders per key; max <= 0 is unlimited.
func NewCaps(max int) *Caps { return &Caps{max: max, n: make(map[string]int)} }

// Acquire takes a slot for key, reporting false when key is at its cap.
func (c *Caps) Acquire(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && c.n[key] >= c.max {
		return false
	}
	c.n[key]++
	return true
}

// Release returns a slot taken by Acquire.
func (c *Caps) Release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] <= 1 {
		delete(c.n, key)
		return
	}
	c.n[key]--
}

// Count returns the slots key holds.
func (c *Caps) Count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// Keys returns how many keys hold at least one slot.
func (c *Caps) Keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}
