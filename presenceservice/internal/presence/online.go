package presence

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
)

// Limits of GetOnlineUsers.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
	// MaxUserIDs bounds an explicit list of users (scope or stream).
	MaxUserIDs = 500
)

// Scope is the set of users a query is about. Exactly one of its fields
// is set for OnlineUsers; never "every user".
type Scope struct {
	UserIDs   []string
	ChannelID string
	Friends   bool
}

// Page is one page of OnlineUsers.
type Page struct {
	Presences []Presence
	// NextPageToken continues after this page; empty on the last one. A
	// page may be followed by an empty last page when the users after it
	// turn out to be offline.
	NextPageToken string
}

// OnlineUsers returns the users of scope who do not appear offline, sorted
// by user id, one page at a time.
func (s *Service) OnlineUsers(ctx context.Context, caller Caller, scope Scope, pageSize int, pageToken string) (Page, error) {
	switch {
	case pageSize < 0 || pageSize > MaxPageSize:
		return Page{}, fmt.Errorf("%w: page size %d not in 0..%d", ErrInvalidArgument, pageSize, MaxPageSize)
	case pageSize == 0:
		pageSize = DefaultPageSize
	}
	ids, key, err := s.resolve(ctx, caller, scope)
	if err != nil {
		return Page{}, err
	}
	start := 0
	if pageToken != "" {
		after, err := decodePageToken(pageToken, key)
		if err != nil {
			return Page{}, err
		}
		start = sort.SearchStrings(ids, after)
		if start < len(ids) && ids[start] == after {
			start++
		}
	}
	var page Page
	// Look at a few more users than the page needs per round trip: most
	// users of a scope are usually offline.
	batch := min(max(2*pageSize, 50), MaxUserIDs)
	for i := start; i < len(ids) && len(page.Presences) < pageSize; i += batch {
		chunk := ids[i:min(i+batch, len(ids))]
		rs, err := s.state.Load(ctx, chunk)
		if err != nil {
			return Page{}, fmt.Errorf("load presence: %w", err)
		}
		online := rs[:0]
		for _, r := range rs {
			if r.Visible() != StatusOffline {
				online = append(online, r)
			}
		}
		if online, err = s.hydrate(ctx, online); err != nil {
			return Page{}, err
		}
		for _, r := range online {
			if len(page.Presences) == pageSize {
				break
			}
			page.Presences = append(page.Presences, view(caller, r))
		}
	}
	if n := len(page.Presences); n == pageSize {
		last := page.Presences[n-1].UserID
		if ids[len(ids)-1] != last {
			page.NextPageToken = encodePageToken(key, last)
		}
	}
	return page, nil
}

// resolve returns the sorted user ids of scope and a key naming the
// query, which binds page tokens to it.
func (s *Service) resolve(ctx context.Context, caller Caller, scope Scope) ([]string, string, error) {
	set := 0
	if len(scope.UserIDs) > 0 {
		set++
	}
	if scope.ChannelID != "" {
		set++
	}
	if scope.Friends {
		set++
	}
	if set != 1 {
		return nil, "", fmt.Errorf("%w: set exactly one of user ids, channel or friends", ErrInvalidArgument)
	}
	switch {
	case len(scope.UserIDs) > 0:
		if len(scope.UserIDs) > MaxUserIDs {
			return nil, "", fmt.Errorf("%w: at most %d user ids", ErrInvalidArgument, MaxUserIDs)
		}
		ids := sortedSet(scope.UserIDs)
		return ids, "ids:" + strings.Join(ids, ","), nil
	case scope.Friends:
		ids, err := s.friendIDs(ctx, caller)
		return ids, "friends:" + caller.UserID, err
	default:
		ids, err := s.memberIDs(ctx, caller, scope.ChannelID)
		return ids, "channel:" + scope.ChannelID, err
	}
}

func (s *Service) friendIDs(ctx context.Context, caller Caller) ([]string, error) {
	if s.friends == nil {
		return nil, fmt.Errorf("%w: friends (no user service configured)", ErrScopeUnavailable)
	}
	if caller.Service {
		return nil, fmt.Errorf("%w: a service has no friends", ErrForbidden)
	}
	ids, err := s.friends.FriendIDs(ctx, caller, s.maxScope)
	if err != nil {
		return nil, fmt.Errorf("list friends: %w", err)
	}
	if len(ids) > s.maxScope {
		return nil, fmt.Errorf("%w: more than %d friends", ErrScopeTooLarge, s.maxScope)
	}
	return sortedSet(ids), nil
}

func (s *Service) memberIDs(ctx context.Context, caller Caller, channelID string) ([]string, error) {
	if s.members == nil {
		return nil, fmt.Errorf("%w: channel members (no chat service configured)", ErrScopeUnavailable)
	}
	ids, err := s.members.MemberIDs(ctx, caller, channelID, s.maxScope)
	if err != nil {
		return nil, fmt.Errorf("list members of %s: %w", channelID, err)
	}
	if len(ids) > s.maxScope {
		return nil, fmt.Errorf("%w: channel has more than %d members", ErrScopeTooLarge, s.maxScope)
	}
	return sortedSet(ids), nil
}

// pageTokenVersion starts every page token, so the format can change.
const pageTokenVersion = "p1"

// encodePageToken returns the opaque token of the page after user id
// after, for the query named key. The key is hashed, not included, to keep
// tokens short.
func encodePageToken(key, after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenVersion + ":" + keyHash(key) + ":" + after))
}

func decodePageToken(token, key string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("%w: not base64", ErrInvalidPageToken)
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != pageTokenVersion || parts[2] == "" {
		return "", fmt.Errorf("%w: malformed", ErrInvalidPageToken)
	}
	if parts[1] != keyHash(key) {
		return "", fmt.Errorf("%w: issued for another query", ErrInvalidPageToken)
	}
	return parts[2], nil
}

func keyHash(key string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key)) // hash.Hash.Write never fails
	return hex.EncodeToString(h.Sum(nil))
}
