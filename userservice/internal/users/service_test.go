package users_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/userservice/internal/users"
)

func TestRegister(t *testing.T) {
	f := newFixture(t, users.Config{AdminUsers: []string{"Root"}})
	ctx := context.Background()
	s, err := f.svc.Register(ctx, users.RegisterInput{
		Username: "Alice.W", Email: "  Alice@Example.COM ", Password: "correct horse", DisplayName: "  Alice  ",
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.User.Username != "alice.w" || s.User.Email != "alice@example.com" || s.User.DisplayName != "Alice" {
		t.Fatalf("user = %+v, want normalised username, email and display name", s.User)
	}
	if s.User.PasswordHash != "hash:correct horse" {
		t.Fatalf("password hash = %q", s.User.PasswordHash)
	}
	if s.AccessToken == "" || s.RefreshToken == "" || !s.RefreshExpiresAt.Equal(f.clock.Now().Add(users.DefaultRefreshTTL)) {
		t.Fatalf("session = %+v", s)
	}
	if got := f.pub.types(); !slices.Equal(got, []string{users.EventUserRegistered}) {
		t.Fatalf("events = %v, want user.registered", got)
	}
	var data users.UserRegistered
	if err := json.Unmarshal(f.pub.events[0].Data, &data); err != nil || data.UserID != s.User.ID || data.Username != "alice.w" {
		t.Fatalf("event data = %s (%v)", f.pub.events[0].Data, err)
	}
	if f.store.pendingCount() != 0 {
		t.Fatal("a published event is still pending")
	}

	// Case-insensitive uniqueness.
	for _, in := range []users.RegisterInput{
		{Username: "ALICE.w", Email: "other@example.com", Password: "password1", DisplayName: "x"},
		{Username: "alice2", Email: "ALICE@example.com", Password: "password1", DisplayName: "x"},
	} {
		if _, err := f.svc.Register(ctx, in); !errors.Is(err, users.ErrAlreadyExists) {
			t.Errorf("Register(%s, %s) err = %v, want ErrAlreadyExists", in.Username, in.Email, err)
		}
	}

	// Admin role from the configuration, case-insensitively.
	root := f.register(t, "root")
	if !slices.Equal(root.User.Roles, []string{users.RoleAdmin}) || root.AccessToken != "access:"+root.User.ID+":"+sessionOf(root)+":admin" {
		t.Fatalf("root roles = %v, token %q", root.User.Roles, root.AccessToken)
	}
}

// sessionOf returns the session id fakeTokens encoded in the access token.
func sessionOf(s users.Session) string { return strings.SplitN(s.AccessToken, ":", 4)[2] }

func TestRegisterRejectsBadInputAndStoresNothing(t *testing.T) {
	f := newFixture(t, users.Config{})
	good := users.RegisterInput{Username: "bob", Email: "bob@example.com", Password: "password1", DisplayName: "Bob"}
	tests := []struct {
		name  string
		mod   func(*users.RegisterInput)
		field string
	}{
		{"short username", func(in *users.RegisterInput) { in.Username = "ab" }, "username"},
		{"unicode username", func(in *users.RegisterInput) { in.Username = "bоb" }, "username"}, // Cyrillic o
		{"kelvin sign username", func(in *users.RegisterInput) { in.Username = "\u212Aelvin" }, "username"},
		{"operator injection username", func(in *users.RegisterInput) { in.Username = `{"$gt": ""}` }, "username"},
		{"bad email", func(in *users.RegisterInput) { in.Email = "bob@" }, "email"},
		{"unicode email", func(in *users.RegisterInput) { in.Email = "b\u212Aob@example.com" }, "email"},
		{"short password", func(in *users.RegisterInput) { in.Password = "1234567" }, "password"},
		{"long password", func(in *users.RegisterInput) { in.Password = string(make([]byte, 129)) }, "password"},
		{"empty display name", func(in *users.RegisterInput) { in.DisplayName = "   " }, "display_name"},
		{"bidi override", func(in *users.RegisterInput) { in.DisplayName = "Bob\u202Egnp.exe" }, "display_name"},
		{"zero width", func(in *users.RegisterInput) { in.DisplayName = "B\u200Bob" }, "display_name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			tt.mod(&in)
			_, err := f.svc.Register(context.Background(), in)
			var fe *users.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, users.ErrInvalidArgument) {
				t.Fatalf("err = %v, want an invalid %s", err, tt.field)
			}
		})
	}
	if n := len(f.store.users); n != 0 {
		t.Fatalf("%d users stored after bad input", n)
	}
}

func TestLogin(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	reg := f.register(t, "carol")
	for _, login := range []string{"carol", "CAROL", "carol@example.com", "Carol@Example.com"} {
		s, err := f.svc.Login(ctx, users.LoginInput{Login: login, Password: "password-carol"})
		if err != nil {
			t.Fatalf("Login(%s): %v", login, err)
		}
		if s.User.ID != reg.User.ID {
			t.Fatalf("Login(%s) signed in %s", login, s.User.ID)
		}
	}
}

// TestLoginFailuresLookAlike: a wrong password and an unknown account give
// the same error after the same work (one hash verification).
func TestLoginFailuresLookAlike(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	f.register(t, "dave")
	before := f.hasher.verifies.Load()
	_, errWrong := f.svc.Login(ctx, users.LoginInput{Login: "dave", Password: "nope"})
	afterWrong := f.hasher.verifies.Load()
	_, errUnknown := f.svc.Login(ctx, users.LoginInput{Login: "nobody", Password: "nope"})
	afterUnknown := f.hasher.verifies.Load()
	if !errors.Is(errWrong, users.ErrInvalidCredentials) || !errors.Is(errUnknown, users.ErrInvalidCredentials) {
		t.Fatalf("errors = %v, %v; want ErrInvalidCredentials for both", errWrong, errUnknown)
	}
	if errWrong.Error() != errUnknown.Error() {
		t.Fatalf("the two failures differ: %q vs %q", errWrong, errUnknown)
	}
	if afterWrong-before != 1 || afterUnknown-afterWrong != 1 {
		t.Fatalf("hash verifications: wrong password %d, unknown login %d; want 1 each", afterWrong-before, afterUnknown-afterWrong)
	}
	f.hasher.mu.Lock()
	dummy := f.hasher.against[len(f.hasher.against)-1]
	f.hasher.mu.Unlock()
	if dummy == "" {
		t.Fatal("the unknown login was verified against an empty hash")
	}
}

func TestLoginRateLimit(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	f.register(t, "erin")
	for range 3 {
		if _, err := f.svc.Login(ctx, users.LoginInput{Login: "erin", Password: "wrong-password"}); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatalf("err = %v, want ErrInvalidCredentials", err)
		}
	}
	// Locked: even the right password is refused, without a verification.
	before := f.hasher.verifies.Load()
	_, err := f.svc.Login(ctx, users.LoginInput{Login: "ERIN", Password: "password-erin"})
	var rl *users.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Minute || !errors.Is(err, users.ErrRateLimited) {
		t.Fatalf("err = %v, want a rate limit with a retry-after", err)
	}
	if f.hasher.verifies.Load() != before {
		t.Fatal("a locked login still ran the password hash")
	}
	// Unknown logins count too, so lockouts do not reveal which exist.
	for range 3 {
		_, _ = f.svc.Login(ctx, users.LoginInput{Login: "ghost", Password: "x"})
	}
	if _, err := f.svc.Login(ctx, users.LoginInput{Login: "ghost", Password: "x"}); !errors.Is(err, users.ErrRateLimited) {
		t.Fatalf("unknown login: err = %v, want ErrRateLimited", err)
	}
	// A success resets the account's counter.
	f.limiter.failures["erin"] = 2
	if _, err := f.svc.Login(ctx, users.LoginInput{Login: "erin", Password: "password-erin"}); err != nil {
		t.Fatal(err)
	}
	if n := f.limiter.failures["erin"]; n != 0 {
		t.Fatalf("failures after success = %d, want 0", n)
	}
}

func TestLoginRehashesOutdatedHashes(t *testing.T) {
	f := newFixture(t, users.Config{})
	reg := f.register(t, "frank")
	f.store.mu.Lock()
	u := f.store.users[reg.User.ID]
	u.PasswordHash = "hash:password-frank"
	f.store.users[reg.User.ID] = u
	f.store.mu.Unlock()
	f.hasher.stale = true
	if _, err := f.svc.Login(context.Background(), users.LoginInput{Login: "frank", Password: "password-frank"}); err != nil {
		t.Fatal(err)
	}
	// The fake's Hash is deterministic, so the hash is the same string;
	// what matters is that login still works after the rewrite.
	f.hasher.stale = false
	if _, err := f.svc.Login(context.Background(), users.LoginInput{Login: "frank", Password: "password-frank"}); err != nil {
		t.Fatalf("login after rehash: %v", err)
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	s0 := f.register(t, "gina")
	s1, err := f.svc.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if s1.RefreshToken == s0.RefreshToken || sessionOf(s1) != sessionOf(s0) {
		t.Fatalf("refresh kept the token or changed the session: %+v", s1)
	}
	// The old token again: reuse. The whole family is revoked, so the
	// token just issued dies too.
	if _, err := f.svc.Refresh(ctx, s0.RefreshToken); !errors.Is(err, users.ErrRefreshTokenReused) {
		t.Fatalf("reuse: err = %v, want ErrRefreshTokenReused", err)
	}
	if !f.store.familyRevoked(sessionOf(s0)) {
		t.Fatal("reuse did not revoke the session")
	}
	if _, err := f.svc.Refresh(ctx, s1.RefreshToken); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("descendant after reuse: err = %v, want ErrInvalidRefreshToken", err)
	}
	// Other sessions of the user are untouched.
	other, err := f.svc.Login(ctx, users.LoginInput{Login: "gina", Password: "password-gina"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, other.RefreshToken); err != nil {
		t.Fatalf("another session: %v", err)
	}
}

func TestRefreshBadTokens(t *testing.T) {
	f := newFixture(t, users.Config{RefreshTTL: time.Hour})
	ctx := context.Background()
	s := f.register(t, "hank")
	for _, tok := range []string{"", "short", "!!!!", `{"$gt": ""}`, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"} {
		if _, err := f.svc.Refresh(ctx, tok); !errors.Is(err, users.ErrInvalidRefreshToken) {
			t.Errorf("Refresh(%q) err = %v, want ErrInvalidRefreshToken", tok, err)
		}
	}
	f.clock.Advance(time.Hour)
	if _, err := f.svc.Refresh(ctx, s.RefreshToken); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("expired: err = %v, want ErrInvalidRefreshToken", err)
	}
	f.clock.Advance(time.Second)
	if n, err := f.svc.PurgeExpiredSessions(ctx); err != nil || n != 1 {
		t.Fatalf("purge = %d, %v; want 1", n, err)
	}
}

func TestConcurrentRefreshOneWins(t *testing.T) {
	f := newFixture(t, users.Config{})
	s := f.register(t, "ivy")
	var (
		wg           sync.WaitGroup
		mu           sync.Mutex
		wins, reuses int
		winner       string
	)
	for range 10 {
		wg.Go(func() {
			got, err := f.svc.Refresh(context.Background(), s.RefreshToken)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				winner = got.RefreshToken
			case errors.Is(err, users.ErrInvalidRefreshToken):
				reuses++
			default:
				t.Errorf("Refresh: %v", err)
			}
		})
	}
	wg.Wait()
	// At most one refresh can use the token. The others are reuse, which
	// revokes the whole session; when a reuse lands before the winner has
	// stored its new token, the winner is refused too (wins = 0) — the
	// safe outcome, never two live tokens.
	if wins > 1 || wins+reuses != 10 {
		t.Fatalf("wins = %d, reuses = %d; want at most 1 win and the rest reuses", wins, reuses)
	}
	if winner != "" {
		if _, err := f.svc.Refresh(context.Background(), winner); !errors.Is(err, users.ErrInvalidRefreshToken) {
			t.Fatalf("the winner's token after concurrent reuse: %v, want ErrInvalidRefreshToken (session revoked)", err)
		}
	}
}

// TestLogoutDuringRefresh: a logout that revokes the session while a
// refresh is between its checks and storing the new token must not leave
// the new token alive.
func TestLogoutDuringRefresh(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	s := f.register(t, "lara")
	f.store.beforeCreateToken = func(rt users.RefreshToken) {
		f.store.beforeCreateToken = nil
		if err := f.store.RevokeFamily(ctx, rt.FamilyID, f.clock.Now(), f.clock.Now().Add(time.Hour)); err != nil {
			t.Error(err)
		}
	}
	if _, err := f.svc.Refresh(ctx, s.RefreshToken); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("refresh racing a logout: err = %v, want ErrInvalidRefreshToken", err)
	}
	if !f.store.familyRevoked(sessionOf(s)) {
		t.Fatal("the token stored after the logout is still alive")
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	s := f.register(t, "jack")
	other := f.register(t, "kate")
	if err := f.svc.Logout(ctx, s.RefreshToken, other.User.ID); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("logout with another user's token: err = %v", err)
	}
	if err := f.svc.Logout(ctx, s.RefreshToken, s.User.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Logout(ctx, s.RefreshToken, ""); err != nil {
		t.Fatalf("second logout: %v, want success", err)
	}
	if _, err := f.svc.Refresh(ctx, s.RefreshToken); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("refresh after logout: err = %v", err)
	}
	if err := f.svc.Logout(ctx, "garbage", ""); !errors.Is(err, users.ErrInvalidRefreshToken) {
		t.Fatalf("logout with garbage: err = %v", err)
	}
}

func TestProfiles(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	s := f.register(t, "liam")
	str := func(s string) *string { return &s }
	u, err := f.svc.UpdateProfile(ctx, s.User.ID, users.ProfileUpdate{
		DisplayName: str(" Liam  O'Neil "), AvatarURL: str("https://cdn.example.com/a.png"), StatusMessage: str("on holiday"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if u.DisplayName != "Liam  O'Neil" || u.AvatarURL != "https://cdn.example.com/a.png" || u.StatusMessage != "on holiday" {
		t.Fatalf("user = %+v", u)
	}
	// Only what is set changes; empty clears.
	u, err = f.svc.UpdateProfile(ctx, s.User.ID, users.ProfileUpdate{AvatarURL: str("")})
	if err != nil {
		t.Fatal(err)
	}
	if u.AvatarURL != "" || u.DisplayName != "Liam  O'Neil" || u.StatusMessage != "on holiday" {
		t.Fatalf("user = %+v", u)
	}
	for name, upd := range map[string]users.ProfileUpdate{
		"nothing":        {},
		"http avatar":    {AvatarURL: str("http://example.com/a.png")},
		"js avatar":      {AvatarURL: str("javascript:alert(1)")},
		"protocol-rel":   {AvatarURL: str("//evil.example/a.png")},
		"other path":     {AvatarURL: str("/admin/a.png")},
		"dotdot":         {AvatarURL: str("/v1/attachments/../admin")},
		"long status":    {StatusMessage: str(string(make([]rune, 141)))},
		"control status": {StatusMessage: str("a\nb")},
	} {
		if _, err := f.svc.UpdateProfile(ctx, s.User.ID, upd); !errors.Is(err, users.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := f.svc.UpdateProfile(ctx, s.User.ID, users.ProfileUpdate{AvatarURL: str("/v1/attachments/abc123")}); err != nil {
		t.Errorf("attachment avatar: %v", err)
	}
	if _, err := f.svc.User(ctx, "no-such-user"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("unknown user: err = %v", err)
	}
}

func TestSearchPagination(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	for i := range 7 {
		f.register(t, fmt.Sprintf("zed%d", i))
	}
	f.register(t, "other")
	var got []string
	tok := ""
	for pages := 0; ; pages++ {
		us, next, err := f.svc.SearchUsers(ctx, "ZED", 3, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range us {
			got = append(got, u.Username)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		tok = next
	}
	want := []string{"zed0", "zed1", "zed2", "zed3", "zed4", "zed5", "zed6"}
	if !slices.Equal(got, want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
	if _, _, err := f.svc.SearchUsers(ctx, "zed", 3, "not-a-token"); !errors.Is(err, users.ErrInvalidArgument) {
		t.Fatalf("bad page token: err = %v", err)
	}
	if _, _, err := f.svc.SearchUsers(ctx, "   ", 3, ""); !errors.Is(err, users.ErrInvalidArgument) {
		t.Fatalf("blank query: err = %v", err)
	}
}

func TestFriends(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	a := f.register(t, "amy").User.ID
	b := f.register(t, "ben").User.ID
	c := f.register(t, "cat").User.ID

	state := func(me, other string) users.FriendState {
		t.Helper()
		fs, _, err := f.svc.ListFriends(ctx, me, "", 0, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range fs {
			if fr.User.ID == other {
				return fr.State
			}
		}
		return ""
	}

	steps := []struct {
		name           string
		do             func() (users.FriendState, error)
		wantState      users.FriendState
		wantErr        error
		aSeesB, bSeesA users.FriendState
		wantEvent      string
	}{
		{"self", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, a, a); return r.State, err },
			"", users.ErrInvalidArgument, "", "", ""},
		{"unknown", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, a, "nobody"); return r.State, err },
			"", users.ErrNotFound, "", "", ""},
		{"a asks b", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, a, b); return r.State, err },
			users.StateOutgoing, nil, users.StateOutgoing, users.StateIncoming, users.EventFriendRequested},
		{"a asks again", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, a, b); return r.State, err },
			users.StateOutgoing, nil, users.StateOutgoing, users.StateIncoming, ""},
		{"b accepts", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, b, a); return r.State, err },
			users.StateFriend, nil, users.StateFriend, users.StateFriend, users.EventFriendAccepted},
		{"b accepts again", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, b, a); return r.State, err },
			users.StateFriend, nil, users.StateFriend, users.StateFriend, ""},
		{"a removes b", func() (users.FriendState, error) { return "", f.svc.RemoveFriend(ctx, a, b) },
			"", nil, "", "", users.EventFriendRemoved},
		{"a removes b again", func() (users.FriendState, error) { return "", f.svc.RemoveFriend(ctx, a, b) },
			"", nil, "", "", ""},
		{"b asks a anew", func() (users.FriendState, error) { r, err := f.svc.AddFriend(ctx, b, a); return r.State, err },
			users.StateOutgoing, nil, users.StateIncoming, users.StateOutgoing, users.EventFriendRequested},
		{"a declines", func() (users.FriendState, error) { return "", f.svc.RemoveFriend(ctx, a, b) },
			"", nil, "", "", users.EventFriendRemoved},
	}
	for _, st := range steps {
		before := len(f.pub.types())
		got, err := st.do()
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got != st.wantState {
			t.Fatalf("%s: state = %q, want %q", st.name, got, st.wantState)
		}
		if sa, sb := state(a, b), state(b, a); sa != st.aSeesB || sb != st.bSeesA {
			t.Fatalf("%s: a sees %q, b sees %q; want %q, %q", st.name, sa, sb, st.aSeesB, st.bSeesA)
		}
		evs := f.pub.types()[before:]
		if st.wantEvent == "" && len(evs) != 0 || st.wantEvent != "" && !slices.Equal(evs, []string{st.wantEvent}) {
			t.Fatalf("%s: events %v, want %q", st.name, evs, st.wantEvent)
		}
	}

	// Filters and pagination.
	if _, err := f.svc.AddFriend(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.AddFriend(ctx, c, a); err != nil {
		t.Fatal(err)
	}
	for st, want := range map[users.FriendState][]string{
		users.StateOutgoing: {b}, users.StateIncoming: {c}, users.StateFriend: nil, "": {b, c},
	} {
		fs, _, err := f.svc.ListFriends(ctx, a, st, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, fr := range fs {
			ids = append(ids, fr.User.ID)
		}
		slices.Sort(ids)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(ids, w) {
			t.Errorf("state %q: %v, want %v", st, ids, w)
		}
	}
	page1, next, err := f.svc.ListFriends(ctx, a, "", 1, "")
	if err != nil || len(page1) != 1 || next == "" {
		t.Fatalf("page 1 = %v, %q, %v", page1, next, err)
	}
	page2, next2, err := f.svc.ListFriends(ctx, a, "", 1, next)
	if err != nil || len(page2) != 1 || next2 != "" || page2[0].User.ID == page1[0].User.ID {
		t.Fatalf("page 2 = %v, %q, %v", page2, next2, err)
	}
	if _, _, err := f.svc.ListFriends(ctx, a, "enemy", 0, ""); !errors.Is(err, users.ErrInvalidArgument) {
		t.Fatalf("bad state: err = %v", err)
	}
}

func TestConcurrentMutualRequestsBecomeFriends(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	a := f.register(t, "mia").User.ID
	b := f.register(t, "ned").User.ID
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := f.svc.AddFriend(ctx, a, b); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if _, err := f.svc.AddFriend(ctx, b, a); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	fs, _, err := f.svc.ListFriends(ctx, a, users.StateFriend, 0, "")
	if err != nil || len(fs) != 1 || fs[0].User.ID != b {
		t.Fatalf("friends of a = %+v, %v; want b", fs, err)
	}
}

func TestOutboxRelayPublishesWhatTheBusMissed(t *testing.T) {
	f := newFixture(t, users.Config{})
	ctx := context.Background()
	f.pub.setFail(true)
	s := f.register(t, "olga") // the publish fails; registration does not
	if f.store.pendingCount() != 1 {
		t.Fatalf("pending = %d, want the user.registered event", f.store.pendingCount())
	}
	f.pub.setFail(false)
	// Too fresh: the relay leaves events whose inline publish may be under way.
	if n, err := f.svc.RelayPending(ctx, time.Minute, 10); err != nil || n != 0 {
		t.Fatalf("relay of a fresh event = %d, %v", n, err)
	}
	f.clock.Advance(2 * time.Minute)
	if n, err := f.svc.RelayPending(ctx, time.Minute, 10); err != nil || n != 1 {
		t.Fatalf("relay = %d, %v; want 1", n, err)
	}
	if f.store.pendingCount() != 0 {
		t.Fatal("relayed event still pending")
	}
	if len(f.pub.events) != 1 || f.pub.events[0].Subject != s.User.ID || f.pub.events[0].Type != users.EventUserRegistered {
		t.Fatalf("events = %+v", f.pub.events)
	}
}
