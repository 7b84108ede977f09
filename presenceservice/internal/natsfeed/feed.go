package natsfeed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// Defaults of FeedConfig.
const (
	// DefaultBuffer is how many changes a stream may be behind before it
	// is ended as too slow.
	DefaultBuffer = 1024
	// DefaultWildcardAbove is the set size above which one wildcard
	// subscription with a local filter replaces per-user subscriptions:
	// fewer subscriptions for the server at the cost of receiving (and
	// dropping) other users' changes.
	DefaultWildcardAbove = 100
	// flushTimeout bounds the round trip that confirms the subscriptions.
	flushTimeout = 5 * time.Second
)

// FeedConfig configures a Feed. Zero values mean the defaults.
type FeedConfig struct {
	// Prefix starts every subject; must match the publishers'.
	Prefix        string
	Buffer        int
	WildcardAbove int
	Logger        *slog.Logger
}

// Feed is presence.ChangeFeed over core NATS.
type Feed struct {
	nc  *nats.Conn
	cfg FeedConfig
}

var _ presence.ChangeFeed = (*Feed)(nil)

// NewFeed returns a feed on nc; it does not own nc.
func NewFeed(nc *nats.Conn, cfg FeedConfig) *Feed {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.WildcardAbove <= 0 {
		cfg.WildcardAbove = DefaultWildcardAbove
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{nc: nc, cfg: cfg}
}

// Subscribe implements presence.ChangeFeed. Every subscription of one
// stream delivers into one channel from the connection's reader (NATS
// channel subscriptions), so changes keep their arrival order across
// users and no goroutine is started per subscription. It flushes to the
// server before returning, so the subscriptions are active by then.
func (f *Feed) Subscribe(ctx context.Context, userIDs []string) (presence.Subscription, error) {
	s := &subscription{
		msgs: make(chan *nats.Msg, f.cfg.Buffer),
		log:  f.cfg.Logger,
	}
	subjects := make([]string, 0, len(userIDs))
	if len(userIDs) > f.cfg.WildcardAbove {
		s.filter = make(map[string]struct{}, len(userIDs))
		for _, u := range userIDs {
			s.filter[u] = struct{}{}
		}
		subjects = append(subjects, Subject(f.cfg.Prefix, "*"))
	} else {
		for _, u := range userIDs {
			subjects = append(subjects, Subject(f.cfg.Prefix, u))
		}
	}
	for _, subject := range subjects {
		sub, err := f.nc.ChanSubscribe(subject, s.msgs)
		if err != nil {
			_ = s.Close() // the subscribe error is the one worth reporting
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		s.subs = append(s.subs, sub)
	}
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		// FlushWithContext insists on a deadline.
		fctx, cancel = context.WithTimeout(ctx, flushTimeout)
	}
	defer cancel()
	if err := f.nc.FlushWithContext(fctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("flush presence subscriptions: %w", err)
	}
	return s, nil
}

type subscription struct {
	// msgs is filled by the NATS connection's reader, which drops (and
	// counts per subscription) what does not fit instead of blocking.
	msgs   chan *nats.Msg
	filter map[string]struct{} // nil: every message is wanted
	subs   []*nats.Subscription
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
}

// Next implements presence.Subscription.
func (s *subscription) Next(ctx context.Context) (presence.Change, error) {
	for {
		select {
		case <-ctx.Done():
			return presence.Change{}, ctx.Err()
		case m := <-s.msgs:
			if s.dropped() {
				return presence.Change{}, presence.ErrSlowSubscriber
			}
			var msg Message
			if err := json.Unmarshal(m.Data, &msg); err != nil {
				s.log.Warn("presence: undecodable change", slog.String("subject", m.Subject), slog.Any("error", err))
				continue
			}
			if s.filter != nil {
				if _, ok := s.filter[msg.UserID]; !ok {
					continue
				}
			}
			return fromMessage(msg), nil
		}
	}
}

// dropped reports whether NATS had to drop a message because the buffer
// was full: from then on the reader's view has a hole.
func (s *subscription) dropped() bool {
	for _, sub := range s.subs {
		if n, err := sub.Dropped(); err == nil && n > 0 {
			return true
		}
	}
	return false
}

// Close unsubscribes. The channel stays open: NATS never sends on it after
// the unsubscribe, and closing it would race with a delivery in flight.
func (s *subscription) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, sub := range s.subs {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
