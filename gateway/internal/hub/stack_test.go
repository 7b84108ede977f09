package hub

import (
	"runtime"
	"testing"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// minStack is the stack a goroutine blocked in a read needs at least.
func minStack() float64 {
	if raceEnabled {
		return 4 << 10
	}
	return 2 << 10
}

// stackInuse returns the bytes of goroutine stacks, after a collection has
// freed the stacks of goroutines that ended.
func stackInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
}

// TestIdleReadLoopStack checks what an idle connection keeps in goroutine
// stacks after handling frames: nothing when the poller reads it, and the
// read loop's minimum stack (2 KiB; 4 KiB under the race detector) when a
// goroutine of its own does (see readLoop). Stacks only double, so a grown
// read loop shows as twice the minimum per connection.
func TestIdleReadLoopStack(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.chat.addChannel("team", "group", "alice")
			th := fx.startHub(t, generous, func(c *Config) {
				c.Limits.MaxConnsPerIP = -1
				c.Limits.MaxConnsPerUser = -1
				c.BlockingReads = mode.blocking
			})
			const n = 400
			before := stackInuse()
			for range n {
				c := dial(t, th.url, "alice")
				c.join("team")
				if f := c.reply(c.send(protocol.TypePing, "", nil)); f.Type != protocol.TypePong {
					t.Fatalf("ping answered with %s", f.Type)
				}
			}
			checkReadMode(t, th.Hub, mode.blocking)
			per := (float64(stackInuse()) - float64(before)) / n
			t.Logf("goroutine stacks: %.0f bytes per idle connection", per)
			limit, want := 1.5*minStack(), "the read loop's minimum"
			if !mode.blocking {
				limit, want = 0.25*minStack(), "none"
			}
			if per > limit {
				t.Fatalf("goroutine stacks: %.0f bytes per idle connection, want %s (at most %.0f)", per, want, limit)
			}
		})
	}
}
