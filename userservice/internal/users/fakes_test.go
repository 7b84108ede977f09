package users_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/userservice/internal/users"
)

// memStore is an in-memory UserStore, SessionStore, FriendStore and Outbox
// with the same conflict semantics as the MongoDB store.
type memStore struct {
	mu      sync.Mutex
	users   map[string]users.User
	tokens  map[string]users.RefreshToken
	friends map[string]users.Friendship
	pending map[string]users.Event
	revoked map[string]bool
	// beforeCreateToken, if set, runs (without the lock) before a token
	// is stored: a hook to interleave a concurrent operation.
	beforeCreateToken func(users.RefreshToken)
}

func newMemStore() *memStore {
	return &memStore{
		users: map[string]users.User{}, tokens: map[string]users.RefreshToken{},
		friends: map[string]users.Friendship{}, pending: map[string]users.Event{}, revoked: map[string]bool{},
	}
}

func (m *memStore) CreateUser(_ context.Context, u users.User, ev users.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.users {
		if o.Username == u.Username {
			return users.ErrUsernameTaken
		}
		if o.Email == u.Email {
			return users.ErrEmailTaken
		}
	}
	m.users[u.ID] = u
	m.pending[ev.ID] = ev
	return nil
}

func (m *memStore) find(f func(users.User) bool) (users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.users {
		if f(u) {
			return u, nil
		}
	}
	return users.User{}, users.ErrNotFound
}

func (m *memStore) UserByID(_ context.Context, id string) (users.User, error) {
	return m.find(func(u users.User) bool { return u.ID == id })
}
func (m *memStore) UserByUsername(_ context.Context, n string) (users.User, error) {
	return m.find(func(u users.User) bool { return u.Username == n })
}
func (m *memStore) UserByEmail(_ context.Context, e string) (users.User, error) {
	return m.find(func(u users.User) bool { return u.Email == e })
}

func (m *memStore) UsersByID(_ context.Context, ids []string) ([]users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []users.User
	for _, id := range ids {
		if u, ok := m.users[id]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

func (m *memStore) UpdateProfile(_ context.Context, id string, upd users.ProfileUpdate, now time.Time) (users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	if upd.DisplayName != nil {
		u.DisplayName = *upd.DisplayName
	}
	if upd.AvatarURL != nil {
		u.AvatarURL = *upd.AvatarURL
	}
	if upd.StatusMessage != nil {
		u.StatusMessage = *upd.StatusMessage
	}
	u.UpdatedAt = now
	m.users[id] = u
	return u, nil
}

func (m *memStore) SetPasswordHash(_ context.Context, id, hash string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return users.ErrNotFound
	}
	u.PasswordHash = hash
	m.users[id] = u
	return nil
}

func (m *memStore) SearchUsers(_ context.Context, prefix, after string, limit int) ([]users.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []users.User
	for _, u := range m.users {
		if (strings.HasPrefix(u.Username, prefix) || strings.HasPrefix(users.SearchKey(u.DisplayName), prefix)) && u.Username > after {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) CreateRefreshToken(_ context.Context, t users.RefreshToken) error {
	if m.beforeCreateToken != nil {
		m.beforeCreateToken(t)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tokens[t.Hash]; ok {
		return users.ErrAlreadyExists
	}
	m.tokens[t.Hash] = t
	return nil
}

func (m *memStore) RefreshToken(_ context.Context, hash string) (users.RefreshToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[hash]
	if !ok {
		return users.RefreshToken{}, users.ErrNotFound
	}
	return t, nil
}

func (m *memStore) MarkRefreshTokenUsed(_ context.Context, rt users.RefreshToken, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hash := rt.Hash
	t, ok := m.tokens[hash]
	if !ok || !t.UsedAt.IsZero() || !t.RevokedAt.IsZero() {
		return false, nil
	}
	t.UsedAt = now
	m.tokens[hash] = t
	return true, nil
}

func (m *memStore) RevokeFamily(_ context.Context, family string, now, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.revoked[family] = true
	for h, t := range m.tokens {
		if t.FamilyID == family && t.RevokedAt.IsZero() {
			t.RevokedAt = now
			m.tokens[h] = t
		}
	}
	return nil
}

func (m *memStore) SessionRevoked(_ context.Context, family string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revoked[family], nil
}

func (m *memStore) DeleteExpiredRefreshTokens(_ context.Context, before time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for h, t := range m.tokens {
		if t.ExpiresAt.Before(before) {
			delete(m.tokens, h)
			n++
		}
	}
	return n, nil
}

func (m *memStore) familyRevoked(family string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokens {
		if t.FamilyID == family && t.RevokedAt.IsZero() {
			return false
		}
	}
	return true
}

func (m *memStore) CreateFriendship(_ context.Context, f users.Friendship, ev users.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.friends[f.ID]; ok {
		return users.ErrAlreadyExists
	}
	m.friends[f.ID] = f
	m.pending[ev.ID] = ev
	return nil
}

func (m *memStore) Friendship(_ context.Context, id string) (users.Friendship, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.friends[id]
	if !ok {
		return users.Friendship{}, users.ErrNotFound
	}
	return f, nil
}

func (m *memStore) UpdateFriendship(_ context.Context, f users.Friendship, expect int64, ev users.Event) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.friends[f.ID]
	if !ok || cur.Version != expect {
		return false, nil
	}
	m.friends[f.ID] = f
	m.pending[ev.ID] = ev
	return true, nil
}

func (m *memStore) ListFriendships(_ context.Context, userID string, state users.FriendState, after string, limit int) ([]users.Friendship, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []users.Friendship
	for _, f := range m.friends {
		st, ok := f.StateFor(userID)
		if !slices.Contains(f.Users[:], userID) || !ok || (state != "" && st != state) || f.ID <= after {
			continue
		}
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) PendingEvents(_ context.Context, before time.Time, limit int) ([]users.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []users.Event
	for _, ev := range m.pending {
		if ev.OccurredAt.Before(before) {
			out = append(out, ev)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OccurredAt.Before(out[j].OccurredAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) MarkPublished(_ context.Context, ev users.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, ev.ID)
	return nil
}

func (m *memStore) pendingCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// fakeHasher "hashes" by prefixing, and counts verifications and the hashes
// they were made against.
type fakeHasher struct {
	verifies atomic.Int32
	mu       sync.Mutex
	against  []string
	stale    bool
}

func (h *fakeHasher) Hash(_ context.Context, pw string) (string, error) { return "hash:" + pw, nil }
func (h *fakeHasher) Verify(_ context.Context, pw, enc string) (bool, error) {
	h.verifies.Add(1)
	h.mu.Lock()
	h.against = append(h.against, enc)
	h.mu.Unlock()
	return enc == "hash:"+pw, nil
}
func (h *fakeHasher) NeedsRehash(string) bool { return h.stale }

type fakeTokens struct{}

func (fakeTokens) IssueAccessToken(g users.AccessGrant, now time.Time) (string, time.Time, error) {
	return "access:" + g.UserID + ":" + g.SessionID + ":" + strings.Join(g.Roles, ","), now.Add(15 * time.Minute), nil
}

// fakeLimiter locks a login after max failures, with a fixed wait.
type fakeLimiter struct {
	mu       sync.Mutex
	max      int
	failures map[string]int
}

func (l *fakeLimiter) Wait(_ context.Context, a users.LoginAttempt) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures[a.Login] >= l.max {
		return time.Minute, nil
	}
	return 0, nil
}
func (l *fakeLimiter) Failed(_ context.Context, a users.LoginAttempt) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[a.Login]++
	return 0, nil
}
func (l *fakeLimiter) Succeeded(_ context.Context, a users.LoginAttempt) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, a.Login)
	return nil
}

type fakePublisher struct {
	mu     sync.Mutex
	fail   bool
	events []users.Event
}

func (p *fakePublisher) Publish(_ context.Context, ev users.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("bus down")
	}
	p.events = append(p.events, ev)
	return nil
}

func (p *fakePublisher) setFail(f bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = f
}

func (p *fakePublisher) types() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		out = append(out, e.Type)
	}
	return out
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type fixture struct {
	svc     *users.Service
	store   *memStore
	hasher  *fakeHasher
	limiter *fakeLimiter
	pub     *fakePublisher
	clock   *testClock
}

func newFixture(t *testing.T, cfg users.Config) *fixture {
	t.Helper()
	f := &fixture{
		store: newMemStore(), hasher: &fakeHasher{}, pub: &fakePublisher{},
		limiter: &fakeLimiter{max: 3, failures: map[string]int{}},
		clock:   &testClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
	}
	cfg.Clock = f.clock.Now
	cfg.Logger = slog.New(slog.DiscardHandler)
	svc, err := users.New(context.Background(), users.Deps{
		Users: f.store, Sessions: f.store, Friends: f.store, Outbox: f.store,
		Events: f.pub, Hasher: f.hasher, Tokens: fakeTokens{}, Limiter: f.limiter,
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	return f
}

func (f *fixture) register(t *testing.T, username string) users.Session {
	t.Helper()
	s, err := f.svc.Register(context.Background(), users.RegisterInput{
		Username: username, Email: username + "@example.com", Password: "password-" + username, DisplayName: strings.ToUpper(username),
	})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	return s
}
