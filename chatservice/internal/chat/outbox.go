package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// The outbox protocol, for every durable event:
//
//  1. record: the event (with everything needed to finish the write it
//     announces) is stored in the outbox before the write;
//  2. the write;
//  3. complete: side effects that must follow the write (cache, preview),
//     the publish, then the outbox entry is deleted.
//
// If the process dies or NATS is down anywhere after 1, the entry stays and
// the relay (RunRelay) finishes the job once the entry is OutboxDelay old:
// it checks whether the write happened (and for a message, stores it from
// the outbox copy if it did not), then publishes. Publishing twice is
// harmless because JetStream de-duplicates on the event id.

// finishTimeout bounds the steps after a write, which run even if the
// caller has gone: the write is done and must be announced.
const finishTimeout = 10 * time.Second

// record stores ev in the outbox. An entry that already exists (a
// concurrent retry of the same send) is fine: it announces the same thing.
func (s *Service) record(ctx context.Context, ev Event) (OutboxEntry, error) {
	e, _, err := s.recordNew(ctx, ev)
	return e, err
}

// recordNew is record, and reports whether the entry existed already.
func (s *Service) recordNew(ctx context.Context, ev Event) (OutboxEntry, bool, error) {
	now := s.clock.Now()
	e := OutboxEntry{ID: ev.ID, Event: ev, CreatedAt: now, NextAttemptAt: now.Add(s.outboxDelay)}
	switch err := s.outbox.PutOutbox(ctx, e); {
	case errors.Is(err, ErrDuplicate):
		return e, true, nil
	case err != nil:
		return OutboxEntry{}, false, fmt.Errorf("record %s event: %w", ev.Type, err)
	}
	return e, false, nil
}

// detached returns a context that outlives the caller's, bounded by
// finishTimeout, for the steps after a write.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
}

// drop deletes an entry whose write did not happen.
func (s *Service) drop(ctx context.Context, e OutboxEntry) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := s.outbox.DeleteOutbox(ctx, e.ID); err != nil {
		// The relay finds the write missing and drops the entry itself.
		s.log.WarnContext(ctx, "delete outbox entry", slog.String("event_id", e.ID), slog.Any("error", err))
	}
}

// complete publishes an entry's event and deletes the entry. A failure is
// logged, not returned: the write succeeded, and the relay retries.
func (s *Service) complete(ctx context.Context, e OutboxEntry) {
	ctx, cancel := detached(ctx)
	defer cancel()
	if err := s.publish(ctx, e); err != nil {
		s.log.WarnContext(ctx, "publish failed; the outbox relay will retry",
			slog.String("event_id", e.ID), slog.String("type", e.Event.Type), slog.Any("error", err))
	}
}

// publish publishes and, on success, deletes the entry.
func (s *Service) publish(ctx context.Context, e OutboxEntry) error {
	if err := s.events.Publish(ctx, e.Event); err != nil {
		return fmt.Errorf("publish %s %s: %w", e.Event.Type, e.ID, err)
	}
	if err := s.outbox.DeleteOutbox(ctx, e.ID); err != nil {
		// Published but still pending: the relay publishes it again, which
		// JetStream drops as a duplicate.
		s.log.WarnContext(ctx, "delete outbox entry", slog.String("event_id", e.ID), slog.Any("error", err))
	}
	return nil
}

// relayBackoff is how long the relay leaves an entry after its n-th failed
// attempt: 2^n seconds, at most a minute.
func relayBackoff(attempts int) time.Duration {
	if attempts >= 6 {
		return time.Minute
	}
	return min(time.Second<<attempts, time.Minute)
}

// RelayOutbox finishes up to limit due outbox entries and returns how many
// it published.
func (s *Service) RelayOutbox(ctx context.Context, limit int) (int, error) {
	now := s.clock.Now()
	entries, err := s.outbox.DueOutbox(ctx, now, limit)
	if err != nil {
		return 0, fmt.Errorf("list due outbox entries: %w", err)
	}
	n := 0
	for _, e := range entries {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		ok, err := s.outbox.ClaimOutbox(ctx, e.ID, now, now.Add(relayBackoff(e.Attempts)))
		if err != nil {
			return n, fmt.Errorf("claim outbox entry %s: %w", e.ID, err)
		}
		if !ok {
			continue // another replica has it
		}
		published, err := s.redeliver(ctx, e)
		if err != nil {
			s.log.WarnContext(ctx, "outbox relay attempt failed",
				slog.String("event_id", e.ID), slog.String("type", e.Event.Type),
				slog.Int("attempt", e.Attempts+1), slog.Any("error", err))
			continue
		}
		if published {
			n++
		}
	}
	return n, nil
}

// RunRelay runs RelayOutbox every interval until ctx is done.
func (s *Service) RunRelay(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for {
			n, err := s.RelayOutbox(ctx, 100)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "outbox relay", slog.Any("error", err))
			}
			if n < 100 || err != nil {
				break // caught up; a full page means more may be due
			}
		}
	}
}

// redeliver finishes one entry: it makes sure the write it announces
// happened (or drops the entry if it did not and cannot be repeated), then
// publishes. It reports whether it published.
func (s *Service) redeliver(ctx context.Context, e OutboxEntry) (bool, error) {
	ev := e.Event
	switch ev.Type {
	case EventMessageSent:
		if ev.Message == nil {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		m, err := s.messages.GetMessage(ctx, ev.Message.ID)
		if errors.Is(err, ErrNotFound) {
			// The request died between recording and storing: store the
			// message now, from the outbox copy.
			m, err = s.storeMessage(ctx, *ev.Message)
		}
		if err != nil {
			return false, err
		}
		e.Event.Message = &m
		return true, s.afterSend(ctx, e)

	case EventMessageUpdated, EventMessageDeleted:
		if ev.Message == nil {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		m, err := s.messages.GetMessage(ctx, ev.Message.ID)
		if errors.Is(err, ErrNotFound) {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		if err != nil {
			return false, err
		}
		// Finish the change if the request died before making it; never
		// undo a later one.
		want := *ev.Message
		apply := (ev.Type == EventMessageDeleted && !m.Deleted) ||
			(ev.Type == EventMessageUpdated && !m.Deleted && m.EditedAt.Before(want.EditedAt))
		if apply {
			if err := s.messages.UpdateMessage(ctx, want); err != nil {
				return false, fmt.Errorf("finish %s: %w", ev.Type, err)
			}
			m = want
		}
		e.Event.Message = &m
		return true, s.afterChange(ctx, e)

	case EventChannelCreated:
		if ev.Channel == nil {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		ch, err := s.channels.GetChannel(ctx, ev.ChannelID)
		if errors.Is(err, ErrNotFound) {
			return false, s.outbox.DeleteOutbox(ctx, e.ID) // never created
		}
		if err != nil {
			return false, err
		}
		if err := s.addInitialMembers(ctx, ch, ev.MemberIDs); err != nil {
			return false, err
		}
		return true, s.publish(ctx, e)

	case EventUserJoined, EventUserLeft:
		if ev.Member == nil {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		m, err := s.channels.GetMember(ctx, ev.ChannelID, ev.Member.UserID)
		var happened bool
		switch {
		case err != nil && !errors.Is(err, ErrNotFound):
			return false, err
		case ev.Type == EventUserJoined:
			happened = err == nil
		default:
			// Gone, or back with a membership newer than the leave.
			happened = errors.Is(err, ErrNotFound) || m.JoinedAt.After(ev.Time)
		}
		if !happened {
			return false, s.outbox.DeleteOutbox(ctx, e.ID)
		}
		return true, s.publish(ctx, e)
	}
	// An entry of a type this version does not know: publish it as it is.
	return true, s.publish(ctx, e)
}
