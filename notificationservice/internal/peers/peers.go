// Package peers adapts the other Parley services' gRPC clients to the small
// interfaces the notification domain declares: channel members and read
// positions (chat service), connections (presence service), names and
// email addresses (user service). Every call authenticates as the
// notification service with the shared service token and has a deadline.
package peers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/auth"
)

// ServiceName is how the notification service names itself to its peers.
const ServiceName = "notificationservice"

// DefaultTimeout bounds each call.
const DefaultTimeout = 5 * time.Second

// Page and batch sizes the peers' APIs allow.
const (
	pageSize        = 100
	maxBatchUsers   = 100
	maxPresenceUser = 500
	// maxMemberPages bounds a member listing (100k members): a runaway
	// pagination must not spin forever.
	maxMemberPages = 1000
)

// caller holds what every adapter needs to call as a service.
type caller struct {
	token   string
	timeout time.Duration
}

func (c caller) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	t := c.timeout
	if t <= 0 {
		t = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	return auth.OutgoingAsService(ctx, ServiceName, c.token), cancel
}

// notFound maps a gRPC NotFound to the domain's.
func notFound(err error, what string) error {
	if status.Code(err) == codes.NotFound {
		return fmt.Errorf("%s: %w", what, notify.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Chat implements notify.MemberLister, notify.ReadTracker and
// notify.ChannelDirectory over the chat service.
type Chat struct {
	client chatv1.ChatServiceClient
	caller
}

// NewChat returns the chat adapter; timeout 0 means DefaultTimeout.
func NewChat(client chatv1.ChatServiceClient, serviceToken string, timeout time.Duration) *Chat {
	return &Chat{client: client, caller: caller{token: serviceToken, timeout: timeout}}
}

var (
	_ notify.MemberLister     = (*Chat)(nil)
	_ notify.ReadTracker      = (*Chat)(nil)
	_ notify.ChannelDirectory = (*Chat)(nil)
)

// forMembers pages through a channel's members until f returns false.
func (c *Chat) forMembers(ctx context.Context, channelID string, f func(*chatv1.Member) bool) error {
	token := ""
	for range maxMemberPages {
		cctx, cancel := c.ctx(ctx)
		resp, err := c.client.ListMembers(cctx, &chatv1.ListMembersRequest{ChannelId: channelID, PageSize: pageSize, PageToken: token})
		cancel()
		if err != nil {
			return notFound(err, "chat ListMembers "+channelID)
		}
		for _, m := range resp.GetMembers() {
			if !f(m) {
				return nil
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return nil
		}
	}
	return fmt.Errorf("chat ListMembers %s: more than %d pages", channelID, maxMemberPages)
}

// ListMembers implements notify.MemberLister.
func (c *Chat) ListMembers(ctx context.Context, channelID string) ([]notify.Member, error) {
	var out []notify.Member
	err := c.forMembers(ctx, channelID, func(m *chatv1.Member) bool {
		out = append(out, notify.Member{UserID: m.GetUserId(), LastReadSeq: m.GetLastReadSeq()})
		return true
	})
	return out, err
}

// LastReadSeq implements notify.ReadTracker. A user no longer a member has
// read nothing more (0).
func (c *Chat) LastReadSeq(ctx context.Context, channelID, userID string) (int64, error) {
	var seq int64
	err := c.forMembers(ctx, channelID, func(m *chatv1.Member) bool {
		if m.GetUserId() == userID {
			seq = m.GetLastReadSeq()
			return false
		}
		return true
	})
	if errors.Is(err, notify.ErrNotFound) {
		return 0, nil
	}
	return seq, err
}

// ChannelName implements notify.ChannelDirectory.
func (c *Chat) ChannelName(ctx context.Context, channelID string) (string, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.client.GetChannel(cctx, &chatv1.GetChannelRequest{ChannelId: channelID})
	if err != nil {
		return "", notFound(err, "chat GetChannel "+channelID)
	}
	return resp.GetChannel().GetName(), nil
}

// Presence implements notify.PresenceChecker over the presence service.
type Presence struct {
	client presencev1.PresenceServiceClient
	caller
	memo presenceMemo
}

// NewPresence returns the presence adapter. A member's connected state is
// reused for cacheTTL (0 or less: every call asks; see presenceMemo).
func NewPresence(client presencev1.PresenceServiceClient, serviceToken string, timeout, cacheTTL time.Duration) *Presence {
	return &Presence{
		client: client, caller: caller{token: serviceToken, timeout: timeout},
		memo: presenceMemo{ttl: cacheTTL, now: time.Now},
	}
}

var _ notify.PresenceChecker = (*Presence)(nil)

// Connected implements notify.PresenceChecker: a user is connected when
// the presence service counts at least one open connection (device_count),
// whatever status they chose. Answers younger than the cache TTL are
// reused; only the rest are asked for.
func (p *Presence) Connected(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	ask := p.memo.lookup(ids, out)
	for start := 0; start < len(ask); start += maxPresenceUser {
		chunk := ask[start:min(start+maxPresenceUser, len(ask))]
		token := ""
		for range maxMemberPages {
			cctx, cancel := p.ctx(ctx)
			resp, err := p.client.GetOnlineUsers(cctx, &presencev1.GetOnlineUsersRequest{UserIds: chunk, PageSize: pageSize, PageToken: token})
			cancel()
			if err != nil {
				return nil, fmt.Errorf("presence GetOnlineUsers: %w", err)
			}
			for _, pr := range resp.GetPresences() {
				if pr.GetDeviceCount() > 0 {
					out[pr.GetUserId()] = true
				}
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
	}
	p.memo.store(ask, out)
	return out, nil
}

// presenceMemo remembers who was connected, for a short TTL.
//
// Every message asks about each member of its channel: at 200 messages/s
// into channels of 100 members that is 20,000 look-ups a second, mostly
// for the same few hundred users. A connected state a second or two old
// is as good as a fresh one here: the presence service itself learns of a
// crashed gateway's users only after its TTL, and a notification is
// decided when the event is handled, which under load is already later
// than the send. The cost of the staleness: a user who disconnects or
// connects within the TTL of a message may get one push notification
// more, or one fewer, for it (docs/notifications.md).
type presenceMemo struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	seen    map[string]presenceSeen
	pruneAt int
}

type presenceSeen struct {
	connected bool
	at        time.Time
}

// minPresencePrune is the size below which the memo is never swept.
const minPresencePrune = 4096

// lookup puts the fresh answers for ids into out and returns the ids
// that must be asked for.
func (m *presenceMemo) lookup(ids []string, out map[string]bool) []string {
	if m.ttl <= 0 {
		return ids
	}
	now := m.now()
	ask := make([]string, 0, len(ids))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		s, ok := m.seen[id]
		if !ok || now.Sub(s.at) >= m.ttl {
			ask = append(ask, id)
			continue
		}
		if s.connected {
			out[id] = true
		}
	}
	return ask
}

// store remembers the answers for asked.
func (m *presenceMemo) store(asked []string, out map[string]bool) {
	if m.ttl <= 0 || len(asked) == 0 {
		return
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]presenceSeen)
	}
	for _, id := range asked {
		m.seen[id] = presenceSeen{connected: out[id], at: now}
	}
	if len(m.seen) >= max(m.pruneAt, minPresencePrune) {
		for id, s := range m.seen {
			if now.Sub(s.at) >= m.ttl {
				delete(m.seen, id)
			}
		}
		m.pruneAt = 2 * len(m.seen)
	}
}

// Presence implements notify.PresenceChecker.
func (p *Presence) Presence(ctx context.Context, userID string) (notify.Presence, error) {
	cctx, cancel := p.ctx(ctx)
	defer cancel()
	resp, err := p.client.GetUserStatus(cctx, &presencev1.GetUserStatusRequest{UserId: userID})
	if status.Code(err) == codes.NotFound {
		return notify.Presence{}, nil // never seen
	}
	if err != nil {
		return notify.Presence{}, fmt.Errorf("presence GetUserStatus: %w", err)
	}
	pr := resp.GetPresence()
	out := notify.Presence{Connected: pr.GetDeviceCount() > 0}
	if pr.GetLastSeen() != nil {
		out.LastSeen = pr.GetLastSeen().AsTime()
	}
	return out, nil
}

// Users implements notify.UserDirectory over the user service.
type Users struct {
	client userv1.UserServiceClient
	caller
}

// NewUsers returns the user adapter.
func NewUsers(client userv1.UserServiceClient, serviceToken string, timeout time.Duration) *Users {
	return &Users{client: client, caller: caller{token: serviceToken, timeout: timeout}}
}

var _ notify.UserDirectory = (*Users)(nil)

// Users implements notify.UserDirectory with BatchGetUsers, 100 at a time.
func (u *Users) Users(ctx context.Context, ids []string) (map[string]notify.User, error) {
	out := make(map[string]notify.User, len(ids))
	for start := 0; start < len(ids); start += maxBatchUsers {
		cctx, cancel := u.ctx(ctx)
		resp, err := u.client.BatchGetUsers(cctx, &userv1.BatchGetUsersRequest{UserIds: ids[start:min(start+maxBatchUsers, len(ids))]})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("user BatchGetUsers: %w", err)
		}
		for _, usr := range resp.GetUsers() {
			out[usr.GetId()] = notify.User{ID: usr.GetId(), Username: usr.GetUsername(), DisplayName: usr.GetDisplayName()}
		}
	}
	return out, nil
}

// Email implements notify.UserDirectory with GetProfile called as a
// service; it needs the user service to include the private email field
// for service callers.
func (u *Users) Email(ctx context.Context, userID string) (string, error) {
	cctx, cancel := u.ctx(ctx)
	defer cancel()
	resp, err := u.client.GetProfile(cctx, &userv1.GetProfileRequest{UserId: userID})
	if err != nil {
		return "", notFound(err, "user GetProfile "+userID)
	}
	if e := resp.GetUser().GetEmail(); e != "" {
		return e, nil
	}
	return "", fmt.Errorf("user %s: %w", userID, notify.ErrNoEmail)
}
