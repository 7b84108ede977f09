package presence

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Defaults of Config.
const (
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultMaxScope          = 10000
	// sideEffectTimeout bounds publishing one change after the state store
	// committed it; it runs even if the request that caused it was
	// cancelled meanwhile.
	sideEffectTimeout = 5 * time.Second
)

// Config assembles a Service. State, Durable and Publisher are required;
// the others have defaults or disable a feature when nil.
type Config struct {
	State     StateStore
	Durable   DurableStore
	Publisher ChangePublisher
	// Feed serves SubscribeToPresence; nil disables streams.
	Feed ChangeFeed
	// Friends and Members resolve the friends and channel scopes; nil
	// makes that scope fail with ErrScopeUnavailable.
	Friends FriendLister
	Members MemberLister
	// HeartbeatInterval is how often gateways heartbeat (default 10s). A
	// node is swept when it has been silent for 1.5 intervals, and the
	// sweeper looks every quarter interval, so a dead node's users appear
	// offline at most 1.75 intervals after its last heartbeat: within the
	// promised two.
	HeartbeatInterval time.Duration
	// MaxScope bounds a resolved friends or channel scope (default 10000).
	MaxScope int
	// Clock is the time source (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Service applies the presence rules.
type Service struct {
	state     StateStore
	durable   DurableStore
	publisher ChangePublisher
	feed      ChangeFeed
	friends   FriendLister
	members   MemberLister
	interval  time.Duration
	maxScope  int
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.State == nil || cfg.Durable == nil || cfg.Publisher == nil {
		return nil, fmt.Errorf("%w: presence needs a state store, a durable store and a publisher", ErrInvalidArgument)
	}
	s := &Service{
		state:     cfg.State,
		durable:   cfg.Durable,
		publisher: cfg.Publisher,
		feed:      cfg.Feed,
		friends:   cfg.Friends,
		members:   cfg.Members,
		interval:  cfg.HeartbeatInterval,
		maxScope:  cfg.MaxScope,
		now:       cfg.Clock,
		log:       cfg.Logger,
	}
	if s.interval <= 0 {
		s.interval = DefaultHeartbeatInterval
	}
	if s.maxScope <= 0 {
		s.maxScope = DefaultMaxScope
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// HeartbeatInterval is the interval gateways are expected to heartbeat at.
func (s *Service) HeartbeatInterval() time.Duration { return s.interval }

// NodeTimeout is how long a node may stay silent before it is swept.
func (s *Service) NodeTimeout() time.Duration { return s.interval * 3 / 2 }

// SweepInterval is how often RunSweeper looks for silent nodes.
func (s *Service) SweepInterval() time.Duration { return s.interval / 4 }

// Connect records a new connection and returns the user's presence as they
// see it.
func (s *Service) Connect(ctx context.Context, userID, connID, nodeID string) (Presence, error) {
	if userID == "" || connID == "" || nodeID == "" {
		return Presence{}, fmt.Errorf("%w: user, connection and node ids are required", ErrInvalidArgument)
	}
	ts, err := s.state.Connect(ctx, userID, connID, nodeID, s.now())
	if err != nil {
		return Presence{}, fmt.Errorf("connect %s: %w", userID, err)
	}
	s.apply(ctx, ts)
	return ts[len(ts)-1].Record.ForSelf(), nil
}

// Disconnect records that a connection closed.
func (s *Service) Disconnect(ctx context.Context, userID, connID, nodeID string) (Presence, error) {
	if userID == "" || connID == "" || nodeID == "" {
		return Presence{}, fmt.Errorf("%w: user, connection and node ids are required", ErrInvalidArgument)
	}
	t, err := s.state.Disconnect(ctx, userID, connID, nodeID, s.now())
	if err != nil {
		return Presence{}, fmt.Errorf("disconnect %s: %w", userID, err)
	}
	s.apply(ctx, []Transition{t})
	return t.Record.ForSelf(), nil
}

// Heartbeat keeps nodeID and its connections alive and returns the
// connection ids it does not know, which the gateway should Connect again.
// Connections the node no longer reports are removed once they are older
// than one heartbeat interval (younger ones may have been connected after
// the gateway assembled the list).
func (s *Service) Heartbeat(ctx context.Context, nodeID string, connIDs []string) ([]string, error) {
	if nodeID == "" {
		return nil, fmt.Errorf("%w: node id is required", ErrInvalidArgument)
	}
	ids := dedupe(connIDs)
	now := s.now()
	unknown, pruned, err := s.state.Heartbeat(ctx, nodeID, ids, now, now.Add(-s.interval))
	if err != nil {
		return nil, fmt.Errorf("heartbeat %s: %w", nodeID, err)
	}
	s.apply(ctx, pruned)
	return unknown, nil
}

// UpdateStatus sets the status the caller chose and, when message is not
// nil, their status line. It returns the caller's presence as they see it.
func (s *Service) UpdateStatus(ctx context.Context, caller Caller, status string, message *string) (Presence, error) {
	if caller.Service || caller.UserID == "" {
		return Presence{}, fmt.Errorf("%w: only a user has a status", ErrForbidden)
	}
	st, err := ParseStatus(status)
	if err != nil {
		return Presence{}, err
	}
	now := s.now()
	t, err := s.state.SetStatus(ctx, caller.UserID, st, message, now)
	if err != nil {
		return Presence{}, fmt.Errorf("set status of %s: %w", caller.UserID, err)
	}
	if message != nil {
		// Synchronous, unlike last_seen: the caller asked for it and can
		// retry, and the line must survive a state-store flush.
		if err := s.durable.SaveMessage(ctx, caller.UserID, *message, now); err != nil {
			return Presence{}, fmt.Errorf("save status message of %s: %w", caller.UserID, err)
		}
	}
	s.apply(ctx, []Transition{t})
	r := t.Record
	if message != nil {
		r.Message, r.HasMessage = *message, true
	} else if !r.Hydrated {
		rs, err := s.load(ctx, []string{caller.UserID})
		if err != nil {
			return Presence{}, err
		}
		r = rs[0]
	}
	return r.ForSelf(), nil
}

// GetStatus returns userID's presence as the caller sees it; "me" means
// the caller.
func (s *Service) GetStatus(ctx context.Context, caller Caller, userID string) (Presence, error) {
	if userID == "me" {
		if caller.Service {
			return Presence{}, fmt.Errorf("%w: a service has no presence of its own", ErrInvalidArgument)
		}
		userID = caller.UserID
	}
	if userID == "" {
		return Presence{}, fmt.Errorf("%w: user id is required", ErrInvalidArgument)
	}
	rs, err := s.load(ctx, []string{userID})
	if err != nil {
		return Presence{}, err
	}
	return view(caller, rs[0]), nil
}

// view is r as the caller sees it.
func view(caller Caller, r Record) Presence {
	if !caller.Service && caller.UserID == r.UserID {
		return r.ForSelf()
	}
	return r.ForOthers()
}

// load returns the records of ids, with their durable fields; see
// hydrate.
func (s *Service) load(ctx context.Context, ids []string) ([]Record, error) {
	rs, err := s.state.Load(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("load presence: %w", err)
	}
	return s.hydrate(ctx, rs)
}

// hydrate merges the durable fields of the records the state store has not
// had since it lost them (a Redis flush, or expiry of an offline user), and
// writes them back so that the next read needs no lookup.
func (s *Service) hydrate(ctx context.Context, rs []Record) ([]Record, error) {
	var missing []string
	for _, r := range rs {
		if !r.Hydrated {
			missing = append(missing, r.UserID)
		}
	}
	if len(missing) == 0 {
		return rs, nil
	}
	ds, err := s.durable.Load(ctx, missing)
	if err != nil {
		return nil, fmt.Errorf("load durable presence: %w", err)
	}
	back := make([]Durable, 0, len(missing))
	for i, r := range rs {
		if r.Hydrated {
			continue
		}
		d, ok := ds[r.UserID]
		if !ok {
			d = Durable{UserID: r.UserID}
		}
		rs[i] = merge(r, d)
		back = append(back, d)
	}
	// Best effort: without it the next read asks the durable store again.
	if err := s.state.Hydrate(ctx, back); err != nil {
		s.log.WarnContext(ctx, "presence: hydrate state store", slog.Any("error", err))
	}
	return rs, nil
}

// merge fills r's durable fields from d where the state store has nothing
// newer.
func merge(r Record, d Durable) Record {
	if d.LastSeen.After(r.LastSeen) {
		r.LastSeen = d.LastSeen
	}
	if !r.HasMessage && d.HasMessage {
		r.Message, r.HasMessage = d.Message, true
	}
	r.Hydrated = true
	return r
}

// apply publishes the changes among ts and records last-seen times. The
// state store has committed them, so they are done even if ctx was
// cancelled meanwhile; failures are logged, not returned: the state store
// stays the truth and a repeated request would find nothing to change.
func (s *Service) apply(ctx context.Context, ts []Transition) {
	ctx = context.WithoutCancel(ctx)
	var seen []Durable
	for _, t := range ts {
		if !t.Changed {
			continue
		}
		p := t.Record.ForOthers()
		// Publish first: watchers are waiting for it, while the durable
		// copy only matters once Redis has lost its state.
		pctx, cancel := context.WithTimeout(ctx, sideEffectTimeout)
		if err := s.publisher.PublishChange(pctx, changeOf(p)); err != nil {
			s.log.ErrorContext(ctx, "presence: publish change", slog.String("user_id", p.UserID), slog.Any("error", err))
		}
		cancel()
		if t.WentOffline {
			seen = append(seen, Durable{UserID: p.UserID, LastSeen: p.LastSeen})
		}
	}
	if len(seen) == 0 {
		return
	}
	if err := s.durable.SaveLastSeen(ctx, seen); err != nil {
		s.log.ErrorContext(ctx, "presence: save last seen", slog.Int("users", len(seen)), slog.Any("error", err))
	}
}

// dedupe returns ids without duplicates and empty strings, in first-seen
// order.
func dedupe(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok || id == "" {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// sortedSet returns ids sorted without duplicates.
func sortedSet(ids []string) []string {
	out := dedupe(ids)
	slices.Sort(out)
	return out
}
