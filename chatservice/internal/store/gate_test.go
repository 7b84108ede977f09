package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/testenv"
)

// waiting waits until the gate has n waiters of each priority.
func waiting(t *testing.T, g *gate, urgent, rest int) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.waiters[0]) != urgent || len(g.waiters[1]) != rest {
			return fmt.Errorf("%d urgent and %d other waiters, want %d and %d", len(g.waiters[0]), len(g.waiters[1]), urgent, rest)
		}
		return nil
	})
}

// The gate goes to urgent waiters first, and in order within a priority;
// a waiter whose context ends leaves the queue, and the gate still opens
// once everybody is through.
func TestGate(t *testing.T) {
	g := &gate{}
	ctx := t.Context()
	unlock, err := g.lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	enter := func(name string, urgent bool) {
		wg.Go(func() {
			unlock, err := g.lock(ctx, urgent)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			unlock()
		})
	}
	enter("later 1", false)
	waiting(t, g, 0, 1)
	enter("later 2", false)
	waiting(t, g, 0, 2)
	enter("urgent 1", true)
	waiting(t, g, 1, 2)

	gone, cancel := context.WithCancel(ctx)
	withdrawn := make(chan error, 1)
	go func() {
		_, err := g.lock(gone, true)
		withdrawn <- err
	}()
	waiting(t, g, 2, 2)
	cancel()
	if err := <-withdrawn; !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose context ended: %v", err)
	}
	waiting(t, g, 1, 2)

	enter("urgent 2", true)
	waiting(t, g, 2, 2)
	unlock()
	wg.Wait()
	if want := []string{"urgent 1", "urgent 2", "later 1", "later 2"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if g.held {
		t.Error("the gate stayed closed after everybody went through")
	}
	if unlock, err := g.lock(ctx, false); err != nil {
		t.Fatal(err)
	} else {
		unlock()
	}
}
