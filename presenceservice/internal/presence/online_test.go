package presence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// directory is a fake FriendLister and MemberLister.
type directory struct {
	friends map[string][]string // by caller
	members map[string][]string // by channel
	hidden  map[string]bool     // channels the caller may not see
	tokens  []string            // tokens callers presented
}

func (d *directory) FriendIDs(_ context.Context, c presence.Caller, limit int) ([]string, error) {
	d.tokens = append(d.tokens, c.Token)
	fs := d.friends[c.UserID]
	return fs[:min(len(fs), limit+1)], nil
}

func (d *directory) MemberIDs(_ context.Context, c presence.Caller, ch string, limit int) ([]string, error) {
	d.tokens = append(d.tokens, c.Token)
	if d.hidden[ch] {
		return nil, fmt.Errorf("%w: channel %s", presence.ErrForbidden, ch)
	}
	ms, ok := d.members[ch]
	if !ok {
		return nil, presence.ErrChannelNotFound
	}
	return ms[:min(len(ms), limit+1)], nil
}

func TestOnlineUsers(t *testing.T) {
	dir := &directory{
		friends: map[string][]string{"alice": {"u07", "u03", "u01", "u02", "u05"}},
		members: map[string][]string{"general": nil, "big": nil},
		hidden:  map[string]bool{"secret": true},
	}
	for i := range 30 {
		dir.members["general"] = append(dir.members["general"], fmt.Sprintf("u%02d", i))
	}
	for i := range 41 {
		dir.members["big"] = append(dir.members["big"], fmt.Sprintf("x%02d", i))
	}
	f := newFixture(t, func(c *presence.Config) {
		c.Friends, c.Members, c.MaxScope = dir, dir, 40
	})
	ctx := context.Background()
	// Odd users are connected; u05 is invisible, u07 busy.
	for i := 1; i < 30; i += 2 {
		must[presence.Presence](t)(f.svc.Connect(ctx, fmt.Sprintf("u%02d", i), fmt.Sprintf("c%02d", i), "gw"))
	}
	must[presence.Presence](t)(f.svc.UpdateStatus(ctx, presence.Caller{UserID: "u05"}, "offline", nil))
	must[presence.Presence](t)(f.svc.UpdateStatus(ctx, presence.Caller{UserID: "u07"}, "busy", nil))

	// pages collects every page of a scope.
	pages := func(t *testing.T, caller presence.Caller, scope presence.Scope, size int) ([][]string, error) {
		t.Helper()
		var out [][]string
		token := ""
		for range 100 {
			page, err := f.svc.OnlineUsers(ctx, caller, scope, size, token)
			if err != nil {
				return out, err
			}
			var ids []string
			for _, p := range page.Presences {
				if p.Status == presence.StatusOffline {
					t.Errorf("offline user %s listed", p.UserID)
				}
				ids = append(ids, p.UserID)
			}
			out = append(out, ids)
			if token = page.NextPageToken; token == "" {
				return out, nil
			}
		}
		t.Fatal("pagination does not end")
		return nil, nil
	}
	tests := []struct {
		name    string
		caller  presence.Caller
		scope   presence.Scope
		size    int
		want    [][]string
		wantErr error
	}{
		{
			name: "given users, one page", caller: bob,
			scope: presence.Scope{UserIDs: []string{"u03", "u02", "u01", "u03", "nobody"}},
			want:  [][]string{{"u01", "u03"}},
		},
		{
			name: "friends, paginated, invisible left out", caller: alice, scope: presence.Scope{Friends: true}, size: 2,
			want: [][]string{{"u01", "u03"}, {"u07"}},
		},
		{
			name: "channel members, paginated", caller: bob, scope: presence.Scope{ChannelID: "general"}, size: 5,
			want: [][]string{{"u01", "u03", "u07", "u09", "u11"}, {"u13", "u15", "u17", "u19", "u21"}, {"u23", "u25", "u27", "u29"}},
		},
		{
			name: "page ends exactly at the last member", caller: bob, scope: presence.Scope{UserIDs: []string{"u01", "u03"}}, size: 2,
			want: [][]string{{"u01", "u03"}},
		},
		{name: "hidden channel", caller: bob, scope: presence.Scope{ChannelID: "secret"}, wantErr: presence.ErrForbidden},
		{name: "unknown channel", caller: bob, scope: presence.Scope{ChannelID: "nope"}, wantErr: presence.ErrChannelNotFound},
		{name: "scope above the limit", caller: bob, scope: presence.Scope{ChannelID: "big"}, wantErr: presence.ErrScopeTooLarge},
		{name: "no scope", caller: bob, scope: presence.Scope{}, wantErr: presence.ErrInvalidArgument},
		{name: "two scopes", caller: bob, scope: presence.Scope{Friends: true, ChannelID: "general"}, wantErr: presence.ErrInvalidArgument},
		{name: "page too large", caller: bob, scope: presence.Scope{Friends: true}, size: 101, wantErr: presence.ErrInvalidArgument},
		{name: "a service has no friends", caller: gw, scope: presence.Scope{Friends: true}, wantErr: presence.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pages(t, tt.caller, tt.scope, tt.size)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("pages %v, want %v", got, tt.want)
			}
		})
	}
	if !slices.Contains(dir.tokens, alice.Token) {
		t.Errorf("the caller's token was not passed to the directory: %v", dir.tokens)
	}

	t.Run("a token of another query is refused", func(t *testing.T) {
		page := must[presence.Page](t)(f.svc.OnlineUsers(ctx, bob, presence.Scope{ChannelID: "general"}, 1, ""))
		_, err := f.svc.OnlineUsers(ctx, bob, presence.Scope{UserIDs: []string{"u01"}}, 1, page.NextPageToken)
		if !errors.Is(err, presence.ErrInvalidPageToken) {
			t.Errorf("err = %v, want ErrInvalidPageToken", err)
		}
	})
	t.Run("unconfigured scopes", func(t *testing.T) {
		bare := newFixture(t, nil)
		for _, sc := range []presence.Scope{{Friends: true}, {ChannelID: "general"}} {
			if _, err := bare.svc.OnlineUsers(ctx, bob, sc, 0, ""); !errors.Is(err, presence.ErrScopeUnavailable) {
				t.Errorf("%+v: err = %v, want ErrScopeUnavailable", sc, err)
			}
		}
	})
}
