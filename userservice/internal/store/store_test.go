package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/userservice/internal/users"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// now is millisecond-aligned: BSON dates have millisecond precision.
var now = time.Date(2026, 4, 5, 6, 7, 8, 9_000_000, time.UTC)

func newStore(t *testing.T) *Store {
	t.Helper()
	env := testenv.New(t)
	s := New(env.Mongo(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	// Idempotent: every replica calls it at start-up.
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatalf("second EnsureIndexes: %v", err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func user(id, username string) users.User {
	return users.User{
		ID: id, Username: username, Email: username + "@example.com", DisplayName: "Name " + username,
		PasswordHash: "hash", CreatedAt: now, UpdatedAt: now,
	}
}

func event(id string, entity users.Entity, entityID string, at time.Time) users.Event {
	return users.Event{ID: id, Type: "test.event", Subject: entityID, Data: json.RawMessage(`{"k":"v"}`), OccurredAt: at, Entity: entity, EntityID: entityID}
}

func TestUsers(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	u := user("u1", "alice")
	if err := s.CreateUser(ctx, u, event("e1", users.EntityUser, "u1", now)); err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (users.User, error){
		"id":       func() (users.User, error) { return s.UserByID(ctx, "u1") },
		"username": func() (users.User, error) { return s.UserByUsername(ctx, "alice") },
		"email":    func() (users.User, error) { return s.UserByEmail(ctx, "alice@example.com") },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("by %s: %v", name, err)
		}
		if got.ID != u.ID || got.Username != u.Username || got.Email != u.Email || got.DisplayName != u.DisplayName ||
			got.PasswordHash != u.PasswordHash || !got.CreatedAt.Equal(now) {
			t.Fatalf("by %s: %+v, want %+v", name, got, u)
		}
	}
	if _, err := s.UserByID(ctx, "nobody"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}

	dupName := user("u2", "alice")
	dupName.Email = "other@example.com"
	if err := s.CreateUser(ctx, dupName, event("e2", users.EntityUser, "u2", now)); !errors.Is(err, users.ErrUsernameTaken) {
		t.Fatalf("duplicate username: %v", err)
	}
	dupEmail := user("u3", "alice2")
	dupEmail.Email = "alice@example.com"
	if err := s.CreateUser(ctx, dupEmail, event("e3", users.EntityUser, "u3", now)); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("duplicate email: %v", err)
	}

	name, status := "Alice Ä", "busy"
	got, err := s.UpdateProfile(ctx, "u1", users.ProfileUpdate{DisplayName: &name, StatusMessage: &status}, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.DisplayName != name || got.StatusMessage != status || !got.UpdatedAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("after update: %+v", got)
	}
	if _, err := s.UpdateProfile(ctx, "nobody", users.ProfileUpdate{DisplayName: &name}, now); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	if err := s.SetPasswordHash(ctx, "u1", "hash2", now); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.UserByID(ctx, "u1"); got.PasswordHash != "hash2" {
		t.Fatalf("hash = %q", got.PasswordHash)
	}

	if err := s.CreateUser(ctx, user("u4", "bob"), event("e4", users.EntityUser, "u4", now)); err != nil {
		t.Fatal(err)
	}
	// A few ids (looked up one by one on FerretDB) and many (one $in).
	many := []string{"u4", "u1", "u4"}
	for i := range 40 {
		many = append(many, fmt.Sprint("nobody", i))
	}
	for _, in := range [][]string{{"u1", "u4", "nobody", "u1"}, many} {
		batch, err := s.UsersByID(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, b := range batch {
			ids = append(ids, b.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"u1", "u4"}) {
			t.Fatalf("UsersByID of %d ids = %v", len(in), ids)
		}
	}
}

func TestConcurrentCreateUserOneWins(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u := user(fmt.Sprintf("id%d", i), "same")
			u.Email = fmt.Sprintf("e%d@example.com", i)
			errs[i] = s.CreateUser(ctx, u, event(fmt.Sprintf("ev%d", i), users.EntityUser, u.ID, now))
		})
	}
	wg.Wait()
	var ok int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, users.ErrUsernameTaken):
		default:
			t.Errorf("CreateUser: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations won, want exactly 1", ok)
	}
}

// TestIsDuplicateKey covers both places a unique index fires: an insert
// (error 11000 everywhere) and an update, which FerretDB reports as an
// InternalError carrying its backend's message.
func TestIsDuplicateKey(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	for _, u := range []users.User{user("a", "ann"), user("b", "bea")} {
		if err := s.CreateUser(ctx, u, event("e"+u.ID, users.EntityUser, u.ID, now)); err != nil {
			t.Fatal(err)
		}
	}
	_, insertErr := s.users.InsertOne(ctx, docOfUser(user("c", "ann"), event("ec", users.EntityUser, "c", now)))
	_, updateErr := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "username", Value: "ann"}}}})
	_, otherErr := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$bogus", Value: bson.D{{Key: "x", Value: 1}}}})
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"insert", insertErr, true},
		{"update", updateErr, true},
		{"other server error", otherErr, false},
		{"nil", nil, false},
		{"plain error mentioning the words", errors.New("UNIQUE constraint failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want && tt.err == nil {
				t.Fatal("the backend accepted a write that breaks a unique index")
			}
			if got := mongoutil.IsDuplicateKey(tt.err); got != tt.want {
				t.Fatalf("mongoutil.IsDuplicateKey(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestSearchUsers(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	for i, p := range []struct{ username, display string }{
		{"alice", "Alice Liddell"},
		{"alfred", "Alfred"},
		{"bob", "Albert Bob"}, // matches "al" through the display name
		{"carol", "Carol"},
		{"al.x", "Xavier"},
		{"zed", "Ällie"},
	} {
		u := user(fmt.Sprintf("s%d", i), p.username)
		u.DisplayName = p.display
		if err := s.CreateUser(ctx, u, event(fmt.Sprintf("se%d", i), users.EntityUser, u.ID, now)); err != nil {
			t.Fatal(err)
		}
	}
	names := func(us []users.User) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Username)
		}
		return out
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"al", "", 10, []string{"al.x", "alfred", "alice", "bob"}},
		{"al", "", 2, []string{"al.x", "alfred"}},
		{"al", "alfred", 2, []string{"alice", "bob"}},
		{"al", "bob", 2, nil},
		{"älli", "", 10, []string{"zed"}},
		{"carol", "", 10, []string{"carol"}},
		{"x", "", 10, []string{"al.x"}},
		{"nobody", "", 10, nil},
		{".*", "", 10, nil}, // no regex semantics
	}
	for _, tt := range tests {
		got, err := s.SearchUsers(ctx, tt.prefix, tt.after, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names(got), tt.want) {
			t.Errorf("SearchUsers(%q, after %q, %d) = %v, want %v", tt.prefix, tt.after, tt.limit, names(got), tt.want)
		}
	}
}

func TestRefreshTokens(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	tok := users.RefreshToken{Hash: "h1", FamilyID: "f1", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateRefreshToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshToken(ctx, users.RefreshToken{Hash: "h2", FamilyID: "f1", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshToken(ctx, users.RefreshToken{Hash: "h3", FamilyID: "f2", UserID: "u1", CreatedAt: now, ExpiresAt: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RefreshToken(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.FamilyID != "f1" || !got.ExpiresAt.Equal(tok.ExpiresAt) || !got.UsedAt.IsZero() || !got.RevokedAt.IsZero() {
		t.Fatalf("token = %+v", got)
	}
	if _, err := s.RefreshToken(ctx, "nope"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}

	// Ten concurrent "mark used": exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 10 {
		wg.Go(func() {
			ok, err := s.MarkRefreshTokenUsed(ctx, tok, now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d concurrent marks won, want 1", wins)
	}
	if got, _ := s.RefreshToken(ctx, "h1"); !got.UsedAt.Equal(now) {
		t.Fatalf("used_at = %v", got.UsedAt)
	}

	if revoked, err := s.SessionRevoked(ctx, "f1"); err != nil || revoked {
		t.Fatalf("SessionRevoked before revocation = %v, %v", revoked, err)
	}
	if err := s.RevokeFamily(ctx, "f1", now.Add(time.Minute), now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeFamily(ctx, "f1", now.Add(time.Minute), now.Add(3*time.Hour)); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if revoked, err := s.SessionRevoked(ctx, "f1"); err != nil || !revoked {
		t.Fatalf("SessionRevoked after revocation = %v, %v", revoked, err)
	}
	for _, h := range []string{"h1", "h2"} {
		if got, _ := s.RefreshToken(ctx, h); !got.RevokedAt.Equal(now.Add(time.Minute)) {
			t.Fatalf("%s revoked_at = %v", h, got.RevokedAt)
		}
	}
	if got, _ := s.RefreshToken(ctx, "h3"); !got.RevokedAt.IsZero() {
		t.Fatal("another family was revoked")
	}
	n, err := s.DeleteExpiredRefreshTokens(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v; want the 1 expired token", n, err)
	}
	if _, err := s.RefreshToken(ctx, "h3"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("expired token still there: %v", err)
	}
	// The use claim of h1 expires with h1, the revocation record when
	// told; neither is purged early.
	if n, _ := s.tokenUses.CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("%d use records, want 1", n)
	}
	if _, err := s.DeleteExpiredRefreshTokens(ctx, now.Add(90*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.tokenUses.CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("%d use records after h1 expired, want 0", n)
	}
	if revoked, _ := s.SessionRevoked(ctx, "f1"); !revoked {
		t.Fatal("revocation record purged before keepUntil")
	}
	if _, err := s.DeleteExpiredRefreshTokens(ctx, now.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := s.SessionRevoked(ctx, "f1"); revoked {
		t.Fatal("revocation record kept after keepUntil")
	}
}

func TestFriendships(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	mk := func(a, b, requester string, st users.FriendshipStatus) users.Friendship {
		p := [2]string{a, b}
		if b < a {
			p = [2]string{b, a}
		}
		return users.Friendship{ID: users.PairID(a, b), Users: p, Requester: requester, Status: st, Since: now, CreatedAt: now, Version: 1}
	}
	for i, f := range []users.Friendship{
		mk("me", "u1", "me", users.StatusPending),
		mk("me", "u2", "u2", users.StatusPending),
		mk("me", "u3", "me", users.StatusAccepted),
		mk("me", "u4", "u4", users.StatusRemoved),
		mk("u1", "u2", "u1", users.StatusAccepted),
	} {
		if err := s.CreateFriendship(ctx, f, event(fmt.Sprintf("fe%d", i), users.EntityFriendship, f.ID, now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateFriendship(ctx, mk("u1", "me", "u1", users.StatusPending), event("dup", users.EntityFriendship, "me:u1", now)); !errors.Is(err, users.ErrAlreadyExists) {
		t.Fatalf("duplicate pair: %v", err)
	}
	others := func(fs []users.Friendship) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Other("me"))
		}
		return out
	}
	for st, want := range map[users.FriendState][]string{
		"":                  {"u1", "u2", "u3"},
		users.StateOutgoing: {"u1"},
		users.StateIncoming: {"u2"},
		users.StateFriend:   {"u3"},
	} {
		got, err := s.ListFriendships(ctx, "me", st, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(others(got), want) {
			t.Errorf("state %q: %v, want %v", st, others(got), want)
		}
	}
	page, err := s.ListFriendships(ctx, "me", "", users.PairID("me", "u1"), 1)
	if err != nil || !slices.Equal(others(page), []string{"u2"}) {
		t.Fatalf("page after u1 = %v, %v", others(page), err)
	}

	// Optimistic concurrency: the first update with version 1 wins.
	cur, err := s.Friendship(ctx, users.PairID("me", "u2"))
	if err != nil {
		t.Fatal(err)
	}
	next := cur
	next.Status, next.Version, next.Since = users.StatusAccepted, 2, now.Add(time.Minute)
	if ok, err := s.UpdateFriendship(ctx, next, 1, event("acc", users.EntityFriendship, cur.ID, now)); err != nil || !ok {
		t.Fatalf("update = %v, %v", ok, err)
	}
	if ok, err := s.UpdateFriendship(ctx, next, 1, event("acc2", users.EntityFriendship, cur.ID, now)); err != nil || ok {
		t.Fatalf("stale update = %v, %v; want false", ok, err)
	}
	got, _ := s.Friendship(ctx, cur.ID)
	if got.Status != users.StatusAccepted || got.Version != 2 || !got.Since.Equal(now.Add(time.Minute)) {
		t.Fatalf("after update: %+v", got)
	}
	if _, err := s.Friendship(ctx, "x:y"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown pair: %v", err)
	}

	// Ten writers race for version 3: exactly one wins, on FerretDB too.
	base, _ := s.Friendship(ctx, cur.ID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []int
	for i := range 10 {
		wg.Go(func() {
			n := base
			n.Status, n.Version = users.StatusRemoved, base.Version+1
			n.Requester = fmt.Sprintf("writer%d", i)
			ok, err := s.UpdateFriendship(ctx, n, base.Version, event(fmt.Sprintf("race%d", i), users.EntityFriendship, n.ID, now))
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("winners = %v, want exactly one", winners)
	}
	after, _ := s.Friendship(ctx, cur.ID)
	if after.Version != 3 || after.Requester != fmt.Sprintf("writer%d", winners[0]) {
		t.Fatalf("after the race: %+v, want the winner's state", after)
	}
}

// TestFriendshipChangeRollsForward: a writer that claimed a version but
// stopped before applying it does not wedge the pair; the next writer
// applies the claimed change and retries from there.
func TestFriendshipChangeRollsForward(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	f := users.Friendship{ID: "p:q", Users: [2]string{"p", "q"}, Requester: "p", Status: users.StatusPending, Since: now, CreatedAt: now, Version: 1}
	if err := s.CreateFriendship(ctx, f, event("c1", users.EntityFriendship, f.ID, now)); err != nil {
		t.Fatal(err)
	}
	crashed := f
	crashed.Status, crashed.Version = users.StatusAccepted, 2
	// Only the claim, as if the process died right after inserting it.
	if _, err := s.changes.InsertOne(ctx, docOfFriendshipChange(crashed, event("c2", users.EntityFriendship, f.ID, now))); err != nil {
		t.Fatal(err)
	}
	late := f
	late.Status, late.Version = users.StatusRemoved, 2
	if ok, err := s.UpdateFriendship(ctx, late, 1, event("c3", users.EntityFriendship, f.ID, now)); err != nil || ok {
		t.Fatalf("update of a claimed version = %v, %v; want false", ok, err)
	}
	got, _ := s.Friendship(ctx, f.ID)
	if got.Status != users.StatusAccepted || got.Version != 2 {
		t.Fatalf("pair = %+v, want the claimed change applied", got)
	}
	pending, _ := s.PendingEvents(ctx, now.Add(time.Hour), 10)
	var ids []string
	for _, e := range pending {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"c1", "c2"}) {
		t.Fatalf("pending events = %v, want the claimed change's event too", ids)
	}
}

func TestOutbox(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	if err := s.CreateUser(ctx, user("u1", "olive"), event("e-user", users.EntityUser, "u1", now)); err != nil {
		t.Fatal(err)
	}
	f := users.Friendship{ID: "u1:u2", Users: [2]string{"u1", "u2"}, Requester: "u1", Status: users.StatusPending, Since: now, CreatedAt: now, Version: 1}
	if err := s.CreateFriendship(ctx, f, event("e-req", users.EntityFriendship, f.ID, now.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	f.Status, f.Version = users.StatusAccepted, 2
	if ok, err := s.UpdateFriendship(ctx, f, 1, event("e-acc", users.EntityFriendship, f.ID, now.Add(2*time.Second))); err != nil || !ok {
		t.Fatalf("update: %v %v", ok, err)
	}
	ids := func(evs []users.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		return out
	}
	pending, err := s.PendingEvents(ctx, now.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(pending), []string{"e-user", "e-req", "e-acc"}) {
		t.Fatalf("pending = %v, want all three, oldest first", ids(pending))
	}
	if ev := pending[0]; ev.Type != "test.event" || string(ev.Data) != `{"k":"v"}` || ev.Entity != users.EntityUser || ev.EntityID != "u1" || !ev.OccurredAt.Equal(now) {
		t.Fatalf("event round trip = %+v", ev)
	}
	if early, _ := s.PendingEvents(ctx, now.Add(time.Second), 10); !slices.Equal(ids(early), []string{"e-user"}) {
		t.Fatalf("pending before now+1s = %v", ids(early))
	}
	for _, ev := range pending[:2] {
		if err := s.MarkPublished(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkPublished(ctx, pending[0]); err != nil {
		t.Fatalf("marking twice: %v", err)
	}
	left, err := s.PendingEvents(ctx, now.Add(time.Hour), 10)
	if err != nil || !slices.Equal(ids(left), []string{"e-acc"}) {
		t.Fatalf("left = %v, %v", ids(left), err)
	}
	if err := s.MarkPublished(ctx, left[0]); err != nil {
		t.Fatal(err)
	}
	if none, _ := s.PendingEvents(ctx, now.Add(time.Hour), 10); len(none) != 0 {
		t.Fatalf("still pending: %v", ids(none))
	}
	// The documents themselves are intact.
	if u, err := s.UserByID(ctx, "u1"); err != nil || u.Username != "olive" {
		t.Fatalf("user after outbox clearing: %+v, %v", u, err)
	}
}
