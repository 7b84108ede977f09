package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Sweep removes the connections of every node silent for longer than
// NodeTimeout and sends their users offline with last_seen = the node's
// last sign of life. It returns the number of nodes swept. Replicas may
// call it concurrently: a per-node lock keeps them from sweeping the same
// node twice.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	cutoff := now.Add(-s.NodeTimeout())
	nodes, err := s.state.StaleNodes(ctx, cutoff)
	if err != nil {
		return 0, fmt.Errorf("find silent nodes: %w", err)
	}
	swept := 0
	var errs []error
	for _, n := range nodes {
		ok, err := s.sweepNode(ctx, n, cutoff, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			swept++
		}
	}
	return swept, errors.Join(errs...)
}

func (s *Service) sweepNode(ctx context.Context, n Node, cutoff, now time.Time) (bool, error) {
	// The lock outlives a normal sweep; it only matters if this replica
	// dies mid-sweep, and then another one takes over after NodeTimeout.
	unlock, ok, err := s.state.LockNode(ctx, n.ID, s.NodeTimeout())
	if err != nil {
		return false, fmt.Errorf("lock node %s: %w", n.ID, err)
	}
	if !ok {
		return false, nil
	}
	defer func() {
		if err := unlock(context.WithoutCancel(ctx)); err != nil {
			s.log.WarnContext(ctx, "presence: unlock node sweep", slog.String("node_id", n.ID), slog.Any("error", err))
		}
	}()
	ts, err := s.state.SweepNode(ctx, n.ID, cutoff, now)
	// Transitions of the chunks swept before a failure are committed:
	// publish them either way.
	s.apply(ctx, ts)
	if err != nil {
		return false, fmt.Errorf("sweep node %s: %w", n.ID, err)
	}
	s.log.InfoContext(ctx, "presence: swept silent gateway node",
		slog.String("node_id", n.ID), slog.Time("last_beat", n.LastBeat), slog.Int("users_changed", len(ts)))
	return true, nil
}

// RunSweeper sweeps every SweepInterval until ctx is done.
func (s *Service) RunSweeper(ctx context.Context) error {
	t := time.NewTicker(s.SweepInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "presence: sweep", slog.Any("error", err))
		}
	}
}
