package users

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// maxFriendRetries bounds the optimistic-concurrency retries of AddFriend
// and RemoveFriend; each retry means another writer changed the pair in
// between, so a few are plenty.
const maxFriendRetries = 5

// AddFriend sends a friend request from userID to otherID, or accepts the
// request otherID already sent. Repeating it changes nothing. It returns
// the friendship as userID sees it.
func (s *Service) AddFriend(ctx context.Context, userID, otherID string) (Friend, error) {
	if err := validateUserID("user_id", otherID); err != nil {
		return Friend{}, err
	}
	if otherID == userID {
		return Friend{}, invalid("user_id", "you cannot befriend yourself")
	}
	other, err := s.Users.UserByID(ctx, otherID)
	if err != nil {
		return Friend{}, fmt.Errorf("users: add friend %s: %w", otherID, err)
	}
	pair := PairID(userID, otherID)
	for range maxFriendRetries {
		now := s.now()
		f, err := s.Friends.Friendship(ctx, pair)
		if errors.Is(err, ErrNotFound) {
			f = Friendship{ID: pair, Users: sortedPair(userID, otherID), Requester: userID,
				Status: StatusPending, Since: now, CreatedAt: now, Version: 1}
			ev, err := s.friendEvent(EventFriendRequested, f, userID, otherID, StateIncoming, now)
			if err != nil {
				return Friend{}, err
			}
			err = s.Friends.CreateFriendship(ctx, f, ev)
			if errors.Is(err, ErrAlreadyExists) {
				continue // the other user asked at the same moment
			}
			if err != nil {
				return Friend{}, fmt.Errorf("users: add friend: %w", err)
			}
			s.publish(ctx, ev)
			return Friend{User: other, State: StateOutgoing, Since: now}, nil
		}
		if err != nil {
			return Friend{}, fmt.Errorf("users: add friend: %w", err)
		}

		next := f
		next.Version = f.Version + 1
		next.Since = now
		var ev Event
		switch {
		case f.Status == StatusAccepted, f.Status == StatusPending && f.Requester == userID:
			state, _ := f.StateFor(userID)
			return Friend{User: other, State: state, Since: f.Since}, nil
		case f.Status == StatusPending: // they asked first: accept
			next.Status = StatusAccepted
			ev, err = s.friendEvent(EventFriendAccepted, next, userID, otherID, StateFriend, now)
		default: // removed earlier: a new request
			next.Status = StatusPending
			next.Requester = userID
			ev, err = s.friendEvent(EventFriendRequested, next, userID, otherID, StateIncoming, now)
		}
		if err != nil {
			return Friend{}, err
		}
		ok, err := s.Friends.UpdateFriendship(ctx, next, f.Version, ev)
		if err != nil {
			return Friend{}, fmt.Errorf("users: add friend: %w", err)
		}
		if !ok {
			continue
		}
		s.publish(ctx, ev)
		state, _ := next.StateFor(userID)
		return Friend{User: other, State: state, Since: now}, nil
	}
	return Friend{}, fmt.Errorf("users: add friend %s: %w", otherID, ErrConflict)
}

// RemoveFriend ends the friendship between userID and otherID, withdraws
// userID's request or declines otherID's. Removing a non-friend succeeds.
func (s *Service) RemoveFriend(ctx context.Context, userID, otherID string) error {
	if err := validateUserID("user_id", otherID); err != nil {
		return err
	}
	if otherID == userID {
		return invalid("user_id", "you cannot unfriend yourself")
	}
	pair := PairID(userID, otherID)
	for range maxFriendRetries {
		f, err := s.Friends.Friendship(ctx, pair)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("users: remove friend: %w", err)
		}
		if f.Status == StatusRemoved {
			return nil
		}
		now := s.now()
		next := f
		next.Status = StatusRemoved
		next.Version = f.Version + 1
		next.Since = now
		ev, err := s.friendEvent(EventFriendRemoved, next, userID, otherID, "", now)
		if err != nil {
			return err
		}
		ok, err := s.Friends.UpdateFriendship(ctx, next, f.Version, ev)
		if err != nil {
			return fmt.Errorf("users: remove friend: %w", err)
		}
		if ok {
			s.publish(ctx, ev)
			return nil
		}
	}
	return fmt.Errorf("users: remove friend %s: %w", otherID, ErrConflict)
}

// ListFriends lists userID's friends and pending requests (only those in
// state, unless it is ""), a page at a time, ordered by an opaque key.
func (s *Service) ListFriends(ctx context.Context, userID string, state FriendState, size int, pageToken string) ([]Friend, string, error) {
	switch state {
	case "", StateFriend, StateIncoming, StateOutgoing:
	default:
		return nil, "", invalid("state", "must be friend, incoming or outgoing")
	}
	after, err := decodePageToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	size = pageSize(size)
	fs, err := s.Friends.ListFriendships(ctx, userID, state, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("users: list friends: %w", err)
	}
	next := ""
	if len(fs) > size {
		fs = fs[:size]
		next = encodePageToken(fs[size-1].ID)
	}
	ids := make([]string, 0, len(fs))
	for _, f := range fs {
		ids = append(ids, f.Other(userID))
	}
	byID := make(map[string]User, len(fs))
	if len(ids) > 0 {
		us, err := s.Users.UsersByID(ctx, ids)
		if err != nil {
			return nil, "", fmt.Errorf("users: list friends: %w", err)
		}
		for _, u := range us {
			byID[u.ID] = u
		}
	}
	out := make([]Friend, 0, len(fs))
	for _, f := range fs {
		st, ok := f.StateFor(userID)
		u, found := byID[f.Other(userID)]
		if !ok || !found {
			continue
		}
		out = append(out, Friend{User: u, State: st, Since: f.Since})
	}
	return out, next, nil
}

func (s *Service) friendEvent(typ string, f Friendship, actor, other string, otherState FriendState, now time.Time) (Event, error) {
	return newEvent(typ, other, EntityFriendship, f.ID,
		FriendChanged{UserID: actor, FriendID: other, State: string(otherState)}, now)
}

func sortedPair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}
