package hub

import (
	"sync"
	"time"
)

// typingThrottle lets one user_typing per user and channel cross NATS per
// interval, however many connections (or tabs) the user types from.
type typingThrottle struct {
	mu   sync.Mutex
	last map[typingKey]int64 // unix ns of the last frame let through
}

type typingKey struct{ user, channel string }

func newTypingThrottle() *typingThrottle {
	return &typingThrottle{last: make(map[typingKey]int64)}
}

// allow reports whether the user may announce typing in the channel now.
func (t *typingThrottle) allow(user, channel string, now time.Time, every time.Duration) bool {
	k := typingKey{user, channel}
	n := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[k]; ok && n-last < int64(every) {
		return false
	}
	t.last[k] = n
	return true
}

// sweep forgets entries older than the interval.
func (t *typingThrottle) sweep(now time.Time, every time.Duration) {
	n := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, last := range t.last {
		if n-last >= int64(every) {
			delete(t.last, k)
		}
	}
}
