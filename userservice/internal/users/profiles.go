package users

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
)

// Me returns the caller's own account, with its roles.
func (s *Service) Me(ctx context.Context, userID string) (User, error) {
	u, err := s.Users.UserByID(ctx, userID)
	if err != nil {
		return User{}, fmt.Errorf("users: get %s: %w", userID, err)
	}
	return s.withRoles(u), nil
}

// User returns any user's account. The caller decides which fields to
// show; the transport shows only the public ones of other users.
func (s *Service) User(ctx context.Context, userID string) (User, error) {
	if err := validateUserID("user_id", userID); err != nil {
		return User{}, err
	}
	u, err := s.Users.UserByID(ctx, userID)
	if err != nil {
		return User{}, fmt.Errorf("users: get %s: %w", userID, err)
	}
	return u, nil
}

// UsersByID returns the users among ids that exist (duplicates once, in no
// order).
func (s *Service) UsersByID(ctx context.Context, ids []string) ([]User, error) {
	if len(ids) == 0 || len(ids) > MaxPageSize {
		return nil, invalid("user_ids", "must list 1-100 ids")
	}
	uniq := slices.Clone(ids)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	for _, id := range uniq {
		if err := validateUserID("user_ids", id); err != nil {
			return nil, err
		}
	}
	us, err := s.Users.UsersByID(ctx, uniq)
	if err != nil {
		return nil, fmt.Errorf("users: batch get: %w", err)
	}
	return us, nil
}

// UpdateProfile changes the fields of upd that are set, after normalising
// and checking them, and returns the caller's account.
func (s *Service) UpdateProfile(ctx context.Context, userID string, upd ProfileUpdate) (User, error) {
	if upd.DisplayName == nil && upd.AvatarURL == nil && upd.StatusMessage == nil {
		return User{}, invalid("update", "set at least one of display_name, avatar_url, status_message")
	}
	var clean ProfileUpdate
	if upd.DisplayName != nil {
		v, err := NormalizeDisplayName(*upd.DisplayName)
		if err != nil {
			return User{}, err
		}
		clean.DisplayName = &v
	}
	if upd.AvatarURL != nil {
		v, err := normalizeAvatarURL(*upd.AvatarURL, s.cfg.AvatarPathPrefix)
		if err != nil {
			return User{}, err
		}
		clean.AvatarURL = &v
	}
	if upd.StatusMessage != nil {
		v, err := NormalizeStatusMessage(*upd.StatusMessage)
		if err != nil {
			return User{}, err
		}
		clean.StatusMessage = &v
	}
	u, err := s.Users.UpdateProfile(ctx, userID, clean, s.now())
	if err != nil {
		return User{}, fmt.Errorf("users: update profile %s: %w", userID, err)
	}
	return s.withRoles(u), nil
}

// SearchUsers finds users whose username or display name starts with query,
// case-insensitively, ordered by username. pageToken is the previous page's
// next token ("" for the first page); the returned token is "" on the last
// page. The users carry every field: the transport must show only the
// public ones.
func (s *Service) SearchUsers(ctx context.Context, query string, size int, pageToken string) ([]User, string, error) {
	q, err := normalizeSearchQuery(query)
	if err != nil {
		return nil, "", err
	}
	after, err := decodePageToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	size = pageSize(size)
	us, err := s.Users.SearchUsers(ctx, q, after, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("users: search: %w", err)
	}
	next := ""
	if len(us) > size {
		us = us[:size]
		next = encodePageToken(us[size-1].Username)
	}
	return us, next, nil
}

// Page tokens are the last sort key of the previous page, base64url-encoded
// with a version prefix: opaque to clients, cheap to check.
const pageTokenPrefix = "v1:"

func encodePageToken(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + key))
}

func decodePageToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) <= len(pageTokenPrefix) || string(raw[:len(pageTokenPrefix)]) != pageTokenPrefix {
		return "", invalid("page_token", "is not a token this service issued")
	}
	return string(raw[len(pageTokenPrefix):]), nil
}
