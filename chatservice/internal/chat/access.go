package chat

import (
	"context"
	"errors"
	"fmt"
)

// Membership is never cached beyond one request: every call reads the member
// document, so a removed member loses access with the next request.

// lookup loads a channel and the user's membership of it (nil when not a
// member).
func (s *Service) lookup(ctx context.Context, channelID, userID string) (Channel, *Member, error) {
	if err := checkID("channel_id", channelID); err != nil {
		return Channel{}, nil, err
	}
	ch, err := s.channels.GetChannel(ctx, channelID)
	if err != nil {
		return Channel{}, nil, fmt.Errorf("channel %s: %w", channelID, err)
	}
	if userID == "" {
		return ch, nil, nil
	}
	m, err := s.channels.GetMember(ctx, channelID, userID)
	switch {
	case errors.Is(err, ErrNotFound):
		return ch, nil, nil
	case err != nil:
		return Channel{}, nil, fmt.Errorf("membership of %s in %s: %w", userID, channelID, err)
	}
	return ch, &m, nil
}

// accessOf says what a user may do given the channel and membership.
func accessOf(ch Channel, m *Member) Access {
	a := Access{ChannelType: ch.Type, CanRead: ch.Type == ChannelPublic}
	if m != nil {
		a.IsMember, a.CanRead, a.CanWrite, a.Role = true, true, true, m.Role
	}
	return a
}

// requireReader returns the channel if the caller may read it: members,
// anyone signed in for a public channel, and other services.
func (s *Service) requireReader(ctx context.Context, c Caller, channelID string) (Channel, *Member, error) {
	userID := c.UserID
	if c.Service {
		userID = ""
	}
	ch, m, err := s.lookup(ctx, channelID, userID)
	if err != nil {
		return Channel{}, nil, err
	}
	if c.Service || accessOf(ch, m).CanRead {
		return ch, m, nil
	}
	return Channel{}, nil, fmt.Errorf("%w: not a member of channel %s", ErrPermissionDenied, channelID)
}

// requireMember returns the channel and the caller's membership, or
// ErrPermissionDenied: sending, editing and marking read need membership
// even in a public channel (joining is one call).
func (s *Service) requireMember(ctx context.Context, c Caller, channelID string) (Channel, Member, error) {
	if err := requireUser(c); err != nil {
		return Channel{}, Member{}, err
	}
	ch, m, err := s.lookup(ctx, channelID, c.UserID)
	if err != nil {
		return Channel{}, Member{}, err
	}
	if m == nil {
		return Channel{}, Member{}, fmt.Errorf("%w: not a member of channel %s", ErrPermissionDenied, channelID)
	}
	return ch, *m, nil
}

// requireUser refuses calls that do not act for a user.
func requireUser(c Caller) error {
	if c.Service || c.UserID == "" {
		return fmt.Errorf("%w: this call needs a signed-in user", ErrPermissionDenied)
	}
	return nil
}

// CheckAccess tells another service (the gateway) what a user may do in a
// channel.
func (s *Service) CheckAccess(ctx context.Context, c Caller, channelID, userID string) (Access, error) {
	if !c.Service {
		return Access{}, fmt.Errorf("%w: CheckAccess is for services", ErrPermissionDenied)
	}
	if err := checkID("user_id", userID); err != nil {
		return Access{}, err
	}
	ch, m, err := s.lookup(ctx, channelID, userID)
	if err != nil {
		return Access{}, err
	}
	return accessOf(ch, m), nil
}
