package chat

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// NewChannel is what CreateChannel needs.
type NewChannel struct {
	Name        string
	Type        string
	Description string
	// MemberIDs are the users to add besides the creator; for a private
	// channel exactly the other user.
	MemberIDs []string
}

// dmKey is the sorted user pair of a direct channel.
func dmKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + ":" + b
}

// dmChannelID is derived from the pair, so two concurrent creations of the
// same direct channel collide on _id (the unique dm_key index says the same
// on real MongoDB) and both get the one channel.
func dmChannelID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return fmt.Sprintf("d%x", sum[:16])
}

// inDM reports whether user is one of the pair of a direct channel.
func inDM(ch Channel, user string) bool {
	a, b, ok := strings.Cut(ch.DMKey, ":")
	return ok && (user == a || user == b)
}

// CreateChannel creates a channel owned by the caller, with the given
// members. Creating a private channel for a pair that already has one
// returns the existing channel (and brings the caller back if they had
// left it).
func (s *Service) CreateChannel(ctx context.Context, c Caller, in NewChannel) (Channel, error) {
	if err := requireUser(c); err != nil {
		return Channel{}, err
	}
	if !validChannelType(in.Type) {
		return Channel{}, fmt.Errorf("%w: type %q must be public, group or private", ErrInvalidArgument, in.Type)
	}
	name := strings.TrimSpace(in.Name)
	desc := strings.TrimSpace(in.Description)
	switch {
	case name == "" && in.Type != ChannelPrivate:
		return Channel{}, fmt.Errorf("%w: name is required for %s channels", ErrInvalidArgument, in.Type)
	case utf8.RuneCountInString(name) > maxNameRunes || hasControl(name, false) || !utf8.ValidString(name):
		return Channel{}, fmt.Errorf("%w: name must be at most %d characters without control characters", ErrInvalidArgument, maxNameRunes)
	case utf8.RuneCountInString(desc) > maxDescriptionRunes || hasControl(desc, true) || !utf8.ValidString(desc):
		return Channel{}, fmt.Errorf("%w: description must be at most %d characters", ErrInvalidArgument, maxDescriptionRunes)
	}
	others, err := s.otherMembers(ctx, c.UserID, in.MemberIDs)
	if err != nil {
		return Channel{}, err
	}
	now := s.clock.Now()
	ch := Channel{Name: name, Type: in.Type, Description: desc, CreatedBy: c.UserID, CreatedAt: now}
	if in.Type == ChannelPrivate {
		if len(others) != 1 {
			return Channel{}, fmt.Errorf("%w: a private channel needs exactly one other member in member_ids", ErrInvalidArgument)
		}
		ch.DMKey = dmKey(c.UserID, others[0])
		ch.ID = dmChannelID(ch.DMKey)
		if existing, err := s.channels.GetChannel(ctx, ch.ID); err == nil {
			return s.reopenDM(ctx, c, existing)
		} else if !errors.Is(err, ErrNotFound) {
			return Channel{}, fmt.Errorf("look up direct channel: %w", err)
		}
	} else {
		ch.ID = newID("c")
	}

	id, err := newEventID()
	if err != nil {
		return Channel{}, err
	}
	ev := Event{
		ID: id, Type: EventChannelCreated, ChannelID: ch.ID, ChannelType: ch.Type,
		ActorID: c.UserID, Time: now, Channel: &ch,
		MemberIDs: append([]string{c.UserID}, others...),
	}
	entry, err := s.record(ctx, ev)
	if err != nil {
		return Channel{}, err
	}
	if err := s.channels.InsertChannel(ctx, ch); err != nil {
		s.drop(ctx, entry)
		if errors.Is(err, ErrDuplicate) && ch.Type == ChannelPrivate {
			// Lost the race to create the same direct channel.
			existing, gerr := s.channels.GetChannel(ctx, ch.ID)
			if gerr != nil {
				return Channel{}, fmt.Errorf("load direct channel after conflict: %w", gerr)
			}
			return s.reopenDM(ctx, c, existing)
		}
		return Channel{}, fmt.Errorf("insert channel: %w", err)
	}
	if err := s.addInitialMembers(ctx, ch, ev.MemberIDs); err != nil {
		// The outbox entry stays: the relay adds the members and publishes.
		return Channel{}, err
	}
	s.complete(ctx, entry)
	ch.MemberCount = int64(len(ev.MemberIDs))
	return ch, nil
}

// addInitialMembers stores the creator as owner and the others as members;
// idempotent, so the relay can repeat it.
func (s *Service) addInitialMembers(ctx context.Context, ch Channel, ids []string) error {
	for _, uid := range ids {
		role := RoleMember
		if uid == ch.CreatedBy {
			role = RoleOwner
		}
		m := Member{ChannelID: ch.ID, UserID: uid, Role: role, JoinedAt: ch.CreatedAt}
		if _, _, err := s.channels.AddMember(ctx, m); err != nil {
			return fmt.Errorf("add member %s to %s: %w", uid, ch.ID, err)
		}
	}
	return nil
}

// reopenDM returns an existing direct channel to one of its pair, adding
// them back if they had left.
func (s *Service) reopenDM(ctx context.Context, c Caller, ch Channel) (Channel, error) {
	if !inDM(ch, c.UserID) {
		// Cannot happen for an id derived from the caller's own pair.
		return Channel{}, fmt.Errorf("%w: direct channel %s belongs to other users", ErrPermissionDenied, ch.ID)
	}
	if _, err := s.channels.GetMember(ctx, ch.ID, c.UserID); errors.Is(err, ErrNotFound) {
		if _, _, err := s.addMember(ctx, ch, c.UserID, RoleMember, c.UserID); err != nil {
			return Channel{}, err
		}
	} else if err != nil {
		return Channel{}, fmt.Errorf("membership of %s in %s: %w", c.UserID, ch.ID, err)
	}
	return s.withMemberCount(ctx, ch)
}

// otherMembers validates the initial member ids: well-formed, known to the
// user directory, without the creator and without duplicates.
func (s *Service) otherMembers(ctx context.Context, creator string, ids []string) ([]string, error) {
	if len(ids) > maxChannelMembers {
		return nil, fmt.Errorf("%w: at most %d member_ids", ErrInvalidArgument, maxChannelMembers)
	}
	var out []string
	for _, id := range ids {
		if err := checkID("member id", id); err != nil {
			return nil, err
		}
		if id != creator && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if err := s.checkUsersExist(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkUsersExist asks the user directory, if there is one.
func (s *Service) checkUsersExist(ctx context.Context, ids []string) error {
	if s.users == nil || len(ids) == 0 {
		return nil
	}
	missing, err := s.users.MissingUsers(ctx, ids)
	if err != nil {
		return fmt.Errorf("verify users: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: unknown user ids %s", ErrInvalidArgument, strings.Join(missing, ", "))
	}
	return nil
}

// GetChannel returns a channel the caller may read.
func (s *Service) GetChannel(ctx context.Context, c Caller, channelID string) (Channel, error) {
	ch, _, err := s.requireReader(ctx, c, channelID)
	if err != nil {
		return Channel{}, err
	}
	return s.withMemberCount(ctx, ch)
}

func (s *Service) withMemberCount(ctx context.Context, ch Channel) (Channel, error) {
	counts, err := s.channels.CountMembers(ctx, []string{ch.ID})
	if err != nil {
		return Channel{}, fmt.Errorf("count members: %w", err)
	}
	ch.MemberCount = counts[ch.ID]
	return ch, nil
}

type channelsToken struct {
	After string `json:"a"`
}

// ListChannels lists the caller's channels by id, with role, read position,
// unread count and the newest message.
func (s *Service) ListChannels(ctx context.Context, c Caller, size int, token string) ([]JoinedChannel, string, error) {
	if err := requireUser(c); err != nil {
		return nil, "", err
	}
	size = pageSize(size)
	var tok channelsToken
	if token != "" {
		if err := decodeToken(token, &tok); err != nil {
			return nil, "", err
		}
	}
	members, err := s.channels.Memberships(ctx, c.UserID, tok.After, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list memberships: %w", err)
	}
	next := ""
	if len(members) > size {
		members = members[:size]
		if next, err = encodeToken(channelsToken{After: members[size-1].ChannelID}); err != nil {
			return nil, "", err
		}
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ChannelID
	}
	chans, err := s.channels.GetChannels(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("load channels: %w", err)
	}
	counts, err := s.channels.CountMembers(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("count members: %w", err)
	}
	byID := make(map[string]Channel, len(chans))
	for _, ch := range chans {
		ch.MemberCount = counts[ch.ID]
		byID[ch.ID] = ch
	}
	out := make([]JoinedChannel, 0, len(members))
	for _, m := range members {
		ch, ok := byID[m.ChannelID]
		if !ok {
			continue // a membership outliving its channel: nothing to show
		}
		out = append(out, JoinedChannel{
			Channel:     ch,
			Role:        m.Role,
			LastReadSeq: m.LastReadSeq,
			UnreadCount: max(0, ch.LastSeq-m.LastReadSeq),
		})
	}
	return out, next, nil
}

type browseToken struct {
	Name string `json:"n"`
	ID   string `json:"i"`
}

// BrowseChannels lists public channels whose name contains query
// (case-insensitive), by name.
func (s *Service) BrowseChannels(ctx context.Context, c Caller, query string, size int, token string) ([]Channel, string, error) {
	if c.UserID == "" && !c.Service {
		return nil, "", fmt.Errorf("%w: sign in to browse channels", ErrPermissionDenied)
	}
	size = pageSize(size)
	q := BrowseQuery{NameContains: strings.ToLower(strings.TrimSpace(query)), Limit: size + 1}
	if token != "" {
		var tok browseToken
		if err := decodeToken(token, &tok); err != nil {
			return nil, "", err
		}
		q.AfterName, q.AfterID = tok.Name, tok.ID
	}
	chans, err := s.channels.BrowseChannels(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("browse channels: %w", err)
	}
	next := ""
	if len(chans) > size {
		chans = chans[:size]
		last := chans[size-1]
		if next, err = encodeToken(browseToken{Name: strings.ToLower(last.Name), ID: last.ID}); err != nil {
			return nil, "", err
		}
	}
	ids := make([]string, len(chans))
	for i, ch := range chans {
		ids[i] = ch.ID
	}
	counts, err := s.channels.CountMembers(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("count members: %w", err)
	}
	for i := range chans {
		chans[i].MemberCount = counts[chans[i].ID]
	}
	return chans, next, nil
}

// JoinChannel adds userID (the caller when empty) to a channel. Anyone may
// join a public channel; a user of a direct channel's pair may come back to
// it; everything else, and adding someone else anywhere, takes an owner or
// admin. Joining twice returns the existing membership.
func (s *Service) JoinChannel(ctx context.Context, c Caller, channelID, userID string) (Member, error) {
	if err := requireUser(c); err != nil {
		return Member{}, err
	}
	target := userID
	if target == "" {
		target = c.UserID
	}
	if err := checkID("user_id", target); err != nil {
		return Member{}, err
	}
	ch, me, err := s.lookup(ctx, channelID, c.UserID)
	if err != nil {
		return Member{}, err
	}
	if target == c.UserID {
		if me != nil {
			return *me, nil
		}
		switch {
		case ch.Type == ChannelPublic, ch.Type == ChannelPrivate && inDM(ch, target):
			m, _, err := s.addMember(ctx, ch, target, RoleMember, c.UserID)
			return m, err
		case ch.Type == ChannelPrivate:
			return Member{}, fmt.Errorf("%w: direct channel %s is between two other users", ErrPermissionDenied, ch.ID)
		default:
			return Member{}, fmt.Errorf("%w: group channel %s is invite-only", ErrPermissionDenied, ch.ID)
		}
	}
	if me == nil || roleRank(me.Role) < roleRank(RoleAdmin) {
		return Member{}, fmt.Errorf("%w: only owners and admins add members", ErrPermissionDenied)
	}
	if ch.Type == ChannelPrivate && !inDM(ch, target) {
		return Member{}, fmt.Errorf("%w: a direct channel has exactly two members", ErrFailedPrecondition)
	}
	if existing, err := s.channels.GetMember(ctx, ch.ID, target); err == nil {
		return existing, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Member{}, fmt.Errorf("membership of %s in %s: %w", target, ch.ID, err)
	}
	if err := s.checkUsersExist(ctx, []string{target}); err != nil {
		return Member{}, err
	}
	m, _, err := s.addMember(ctx, ch, target, RoleMember, c.UserID)
	return m, err
}

// addMember stores a membership and announces it (user.joined). A new
// member starts with everything so far counted as read: old history is
// there to scroll, not to be reported unread.
func (s *Service) addMember(ctx context.Context, ch Channel, userID, role, actorID string) (Member, bool, error) {
	m := Member{ChannelID: ch.ID, UserID: userID, Role: role, JoinedAt: s.clock.Now(), LastReadSeq: ch.LastSeq}
	id, err := newEventID()
	if err != nil {
		return Member{}, false, err
	}
	entry, err := s.record(ctx, Event{
		ID: id, Type: EventUserJoined, ChannelID: ch.ID, ChannelType: ch.Type,
		ActorID: actorID, Time: m.JoinedAt, Member: &m,
	})
	if err != nil {
		return Member{}, false, err
	}
	stored, created, err := s.channels.AddMember(ctx, m)
	if err != nil || !created {
		s.drop(ctx, entry)
		if err != nil {
			return Member{}, false, fmt.Errorf("add member: %w", err)
		}
		return stored, false, nil
	}
	s.complete(ctx, entry)
	return stored, true, nil
}

// LeaveChannel removes the caller from a channel; leaving a channel one is
// not in is a no-op. When the last owner leaves, the longest-standing admin
// (or else member) becomes owner, so a channel with members always has one.
func (s *Service) LeaveChannel(ctx context.Context, c Caller, channelID string) error {
	if err := requireUser(c); err != nil {
		return err
	}
	ch, me, err := s.lookup(ctx, channelID, c.UserID)
	if err != nil {
		return err
	}
	if me == nil {
		return nil
	}
	if me.Role == RoleOwner {
		if err := s.ensureOtherOwner(ctx, ch, c.UserID); err != nil {
			return err
		}
	}
	return s.removeMember(ctx, ch, *me, c.UserID)
}

// ensureOtherOwner promotes a successor unless another owner exists.
func (s *Service) ensureOtherOwner(ctx context.Context, ch Channel, leaving string) error {
	for _, role := range []string{RoleOwner, RoleAdmin, RoleMember} {
		m, err := s.channels.FirstMemberWithRole(ctx, ch.ID, role, leaving)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("find successor owner: %w", err)
		}
		if role == RoleOwner {
			return nil
		}
		if _, err := s.channels.SetMemberRole(ctx, ch.ID, m.UserID, RoleOwner); err != nil {
			return fmt.Errorf("promote successor owner: %w", err)
		}
		return nil
	}
	return nil // nobody left to own it
}

// removeMember deletes a membership and announces it (user.left).
func (s *Service) removeMember(ctx context.Context, ch Channel, m Member, actorID string) error {
	id, err := newEventID()
	if err != nil {
		return err
	}
	entry, err := s.record(ctx, Event{
		ID: id, Type: EventUserLeft, ChannelID: ch.ID, ChannelType: ch.Type,
		ActorID: actorID, Time: s.clock.Now(), Member: &m,
	})
	if err != nil {
		return err
	}
	existed, err := s.channels.DeleteMember(ctx, ch.ID, m.UserID)
	if err != nil || !existed {
		s.drop(ctx, entry)
		if err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		return nil
	}
	s.complete(ctx, entry)
	return nil
}

// RemoveMember removes another member. Owners remove anyone; admins remove
// plain members; members of a direct channel can only leave it. A user id
// of "me" (or the caller's own) leaves the channel.
func (s *Service) RemoveMember(ctx context.Context, c Caller, channelID, userID string) error {
	if userID == "me" || userID == c.UserID {
		return s.LeaveChannel(ctx, c, channelID)
	}
	if err := checkID("user_id", userID); err != nil {
		return err
	}
	ch, me, err := s.requireMember(ctx, c, channelID)
	if err != nil {
		return err
	}
	if ch.Type == ChannelPrivate {
		return fmt.Errorf("%w: members of a direct channel can only leave it", ErrFailedPrecondition)
	}
	target, err := s.channels.GetMember(ctx, ch.ID, userID)
	if err != nil {
		return fmt.Errorf("member %s of %s: %w", userID, ch.ID, err)
	}
	if err := mayManage(me, target); err != nil {
		return err
	}
	return s.removeMember(ctx, ch, target, c.UserID)
}

// mayManage says whether me may remove target or change its role: owners
// manage everyone, admins manage plain members.
func mayManage(me, target Member) error {
	switch {
	case me.Role == RoleOwner:
		return nil
	case me.Role == RoleAdmin && target.Role == RoleMember:
		return nil
	case me.Role == RoleAdmin:
		return fmt.Errorf("%w: admins manage plain members only", ErrPermissionDenied)
	}
	return fmt.Errorf("%w: only owners and admins manage members", ErrPermissionDenied)
}

// SetMemberRole changes a member's role. Owners set any role (but the last
// owner cannot step down); admins promote members to admin and back.
func (s *Service) SetMemberRole(ctx context.Context, c Caller, channelID, userID, role string) (Member, error) {
	if !validRole(role) {
		return Member{}, fmt.Errorf("%w: role %q must be owner, admin or member", ErrInvalidArgument, role)
	}
	if userID == "me" {
		userID = c.UserID
	}
	if err := checkID("user_id", userID); err != nil {
		return Member{}, err
	}
	ch, me, err := s.requireMember(ctx, c, channelID)
	if err != nil {
		return Member{}, err
	}
	if ch.Type == ChannelPrivate {
		return Member{}, fmt.Errorf("%w: a direct channel has no roles to change", ErrFailedPrecondition)
	}
	target := me
	if userID != c.UserID {
		if target, err = s.channels.GetMember(ctx, ch.ID, userID); err != nil {
			return Member{}, fmt.Errorf("member %s of %s: %w", userID, ch.ID, err)
		}
	}
	if err := mayManage(me, target); err != nil && userID != c.UserID {
		return Member{}, err
	}
	switch {
	case me.Role != RoleOwner && role == RoleOwner:
		return Member{}, fmt.Errorf("%w: only owners make owners", ErrPermissionDenied)
	case me.Role == RoleMember:
		return Member{}, fmt.Errorf("%w: only owners and admins change roles", ErrPermissionDenied)
	case target.Role == role:
		return target, nil
	case target.Role == RoleOwner:
		if _, err := s.channels.FirstMemberWithRole(ctx, ch.ID, RoleOwner, target.UserID); errors.Is(err, ErrNotFound) {
			return Member{}, fmt.Errorf("%w: the last owner cannot step down; make someone else owner first", ErrFailedPrecondition)
		} else if err != nil {
			return Member{}, fmt.Errorf("find other owner: %w", err)
		}
	}
	m, err := s.channels.SetMemberRole(ctx, ch.ID, target.UserID, role)
	if err != nil {
		return Member{}, fmt.Errorf("set role: %w", err)
	}
	return m, nil
}

type membersToken struct {
	After string `json:"a"`
}

// ListMembers lists a channel's members by user id: for its members, for
// anyone when the channel is public, and for other services.
func (s *Service) ListMembers(ctx context.Context, c Caller, channelID string, size int, token string) ([]Member, string, error) {
	ch, _, err := s.requireReader(ctx, c, channelID)
	if err != nil {
		return nil, "", err
	}
	size = pageSize(size)
	var tok membersToken
	if token != "" {
		if err := decodeToken(token, &tok); err != nil {
			return nil, "", err
		}
	}
	members, err := s.channels.ListMembers(ctx, ch.ID, tok.After, size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list members: %w", err)
	}
	next := ""
	if len(members) > size {
		members = members[:size]
		if next, err = encodeToken(membersToken{After: members[size-1].UserID}); err != nil {
			return nil, "", err
		}
	}
	return members, next, nil
}
