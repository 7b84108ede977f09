package users

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Defaults for Config's zero values.
const (
	DefaultAccessTTL        = 15 * time.Minute
	DefaultRefreshTTL       = 30 * 24 * time.Hour
	DefaultAvatarPathPrefix = "/v1/attachments/"
	DefaultPageSize         = 20
	MaxPageSize             = 100
	// publishTimeout bounds the inline publish after a change; the outbox
	// relay covers a publish that did not make it.
	publishTimeout = 5 * time.Second
)

// RoleAdmin is granted to the usernames in Config.AdminUsers.
const RoleAdmin = "admin"

// Config holds the service's rules; zero values mean the defaults.
type Config struct {
	// AccessTTL is the lifetime of an access token (default 15 minutes).
	// It is also how long a stolen access token stays usable after the
	// session is logged out, so keep it short.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token (default 30 days);
	// every refresh issues a new one with a fresh lifetime.
	RefreshTTL time.Duration
	// AdminUsers are the usernames granted RoleAdmin.
	AdminUsers []string
	// AvatarPathPrefix is the path a relative avatar URL must start with
	// (default "/v1/attachments/").
	AvatarPathPrefix string
	Clock            Clock
	Logger           *slog.Logger
}

// Deps are the adapters the service works through. All are required.
type Deps struct {
	Users    UserStore
	Sessions SessionStore
	Friends  FriendStore
	Outbox   Outbox
	Events   EventPublisher
	Hasher   PasswordHasher
	Tokens   TokenIssuer
	Limiter  LoginLimiter
}

// Service implements the user service's operations. It is safe for
// concurrent use.
type Service struct {
	Deps
	cfg    Config
	admins map[string]bool
	// dummyHash is verified against when a login names no account, so
	// that an unknown login costs as much time as a wrong password.
	dummyHash string
}

// New returns a service. It hashes a random password once, for the dummy
// hash, so it takes as long as one registration.
func New(ctx context.Context, deps Deps, cfg Config) (*Service, error) {
	if deps.Users == nil || deps.Sessions == nil || deps.Friends == nil || deps.Outbox == nil ||
		deps.Events == nil || deps.Hasher == nil || deps.Tokens == nil || deps.Limiter == nil {
		return nil, fmt.Errorf("%w: every dependency is required", ErrInvalidConfig)
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.AvatarPathPrefix == "" {
		cfg.AvatarPathPrefix = DefaultAvatarPathPrefix
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{Deps: deps, cfg: cfg, admins: make(map[string]bool, len(cfg.AdminUsers))}
	for _, u := range cfg.AdminUsers {
		if u = strings.TrimSpace(u); u != "" {
			s.admins[strings.ToLower(u)] = true
		}
	}
	dummy, err := deps.Hasher.Hash(ctx, rand.Text())
	if err != nil {
		return nil, fmt.Errorf("users: dummy hash: %w", err)
	}
	s.dummyHash = dummy
	return s, nil
}

func (s *Service) now() time.Time { return s.cfg.Clock().UTC() }

// withRoles returns u with the roles the configuration grants it.
func (s *Service) withRoles(u User) User {
	u.Roles = nil
	if s.admins[u.Username] {
		u.Roles = []string{RoleAdmin}
	}
	return u
}

// newID returns a new opaque id: a UUIDv7, so ids sort by creation time
// and index well.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("users: new id: %w", err)
	}
	return id.String(), nil
}

// newEvent builds an event for the outbox.
func newEvent(typ, subject string, entity Entity, entityID string, data any, now time.Time) (Event, error) {
	id, err := newID()
	if err != nil {
		return Event{}, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("users: event %s data: %w", typ, err)
	}
	return Event{ID: id, Type: typ, Subject: subject, Data: raw, OccurredAt: now, Entity: entity, EntityID: entityID}, nil
}

// publish announces ev right after the change that stored it, then clears
// it from the outbox. Failures are only logged: the event stays pending and
// RelayPending publishes it later. The caller's cancellation does not stop
// it, since the change is already made.
func (s *Service) publish(ctx context.Context, ev Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := s.Events.Publish(ctx, ev); err != nil {
		s.cfg.Logger.WarnContext(ctx, "users: publish failed; the outbox relay will retry",
			slog.String("event_id", ev.ID), slog.String("type", ev.Type), slog.Any("error", err))
		return
	}
	if err := s.Outbox.MarkPublished(ctx, ev); err != nil {
		s.cfg.Logger.WarnContext(ctx, "users: clearing a published event failed; it will be republished (deduplicated)",
			slog.String("event_id", ev.ID), slog.Any("error", err))
	}
}

// RelayPending publishes events that were stored but not published (the
// process stopped, or the bus was down) and occurred more than minAge ago,
// so that it does not race the inline publish. It returns how many it
// published.
func (s *Service) RelayPending(ctx context.Context, minAge time.Duration, limit int) (int, error) {
	evs, err := s.Outbox.PendingEvents(ctx, s.now().Add(-minAge), limit)
	if err != nil {
		return 0, fmt.Errorf("users: pending events: %w", err)
	}
	n := 0
	for _, ev := range evs {
		if err := s.Events.Publish(ctx, ev); err != nil {
			return n, fmt.Errorf("users: relay event %s: %w", ev.ID, err)
		}
		if err := s.Outbox.MarkPublished(ctx, ev); err != nil {
			return n, fmt.Errorf("users: clear event %s: %w", ev.ID, err)
		}
		n++
	}
	return n, nil
}

// pageSize applies the default and the maximum.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}
