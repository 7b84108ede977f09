package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// gate lets one write at a time through in the one-writer mode (see
// OneWriter), handing it to the waiters in order, except that urgent
// waiters go first: the writes on a message's way to its recipients (its
// outbox entry and its insert) pass the ones that follow its delivery
// (preview, read position, outbox deletion), which only delay the
// sender's acknowledgement. Under load several batches wait at the gate
// at once; without priorities a message waited for all of them.
type gate struct {
	mu      sync.Mutex
	held    bool
	waiters [2][]chan struct{} // urgent first
}

// lock waits for the gate, or for ctx, and returns its release.
func (g *gate) lock(ctx context.Context, urgent bool) (func(), error) {
	g.mu.Lock()
	if !g.held {
		g.held = true
		g.mu.Unlock()
		return g.unlock, nil
	}
	p := 1
	if urgent {
		p = 0
	}
	turn := make(chan struct{})
	g.waiters[p] = append(g.waiters[p], turn)
	g.mu.Unlock()
	select {
	case <-turn:
		return g.unlock, nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	i := slices.Index(g.waiters[p], turn)
	if i >= 0 {
		g.waiters[p] = slices.Delete(g.waiters[p], i, i+1)
	}
	g.mu.Unlock()
	if i < 0 {
		g.unlock() // handed the gate just as ctx ended: pass it on
	}
	return nil, fmt.Errorf("wait for the write gate: %w", ctx.Err())
}

// unlock hands the gate to the next waiter, urgent ones first, or opens
// it.
func (g *gate) unlock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := range g.waiters {
		if len(g.waiters[p]) > 0 {
			turn := g.waiters[p][0]
			g.waiters[p] = slices.Delete(g.waiters[p], 0, 1)
			close(turn)
			return
		}
	}
	g.held = false
}
