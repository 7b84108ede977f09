package presence

import (
	"context"
	"fmt"
	"time"
)

// Subscribe streams the presence of userIDs and, when friends is set, of
// the caller's friends, until ctx is done or send fails. It first sends
// one snapshot Change per user (their current presence as others see it;
// ChangedAt is the time of their last change, or now when unknown), then
// every later change in the order the feed delivers them (see
// Subscription.Next). Changes older than what was already sent for a user
// (a publish overtaken by a later one, or one already reflected in the
// snapshot) are dropped, so each user's changes are always in order. It
// returns ctx's error when ctx ends, and ErrSlowSubscriber when the reader
// fell too far behind.
func (s *Service) Subscribe(ctx context.Context, caller Caller, userIDs []string, friends bool, send func(Change) error) error {
	if s.feed == nil {
		return fmt.Errorf("%w: presence streams (no change feed configured)", ErrScopeUnavailable)
	}
	if len(userIDs) > MaxUserIDs {
		return fmt.Errorf("%w: at most %d user ids", ErrInvalidArgument, MaxUserIDs)
	}
	ids := userIDs
	if friends {
		fs, err := s.friendIDs(ctx, caller)
		if err != nil {
			return err
		}
		ids = append(append([]string(nil), userIDs...), fs...)
	}
	ids = sortedSet(ids)
	if len(ids) == 0 {
		return fmt.Errorf("%w: no users to watch", ErrInvalidArgument)
	}

	// Subscribe before reading the snapshot, so that no change falls in
	// between; the version check drops what the snapshot already shows.
	sub, err := s.feed.Subscribe(ctx, ids)
	if err != nil {
		return fmt.Errorf("subscribe to presence changes: %w", err)
	}
	defer func() { _ = sub.Close() }() // unsubscribing a local subscription cannot fail in a way worth reporting

	type mark struct {
		at      time.Time
		version int64
	}
	sent := make(map[string]mark, len(ids))
	now := s.now()
	for i := 0; i < len(ids); i += MaxUserIDs {
		rs, err := s.load(ctx, ids[i:min(i+MaxUserIDs, len(ids))])
		if err != nil {
			return err
		}
		for _, r := range rs {
			c := changeOf(r.ForOthers())
			sent[c.UserID] = mark{c.ChangedAt, c.Version}
			if c.ChangedAt.IsZero() {
				c.ChangedAt = now
			}
			if err := send(c); err != nil {
				return err
			}
		}
	}
	for {
		c, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		m, watched := sent[c.UserID]
		if !watched || !c.newerThan(m.at, m.version) {
			continue
		}
		sent[c.UserID] = mark{c.ChangedAt, c.Version}
		if err := send(c); err != nil {
			return err
		}
	}
}
