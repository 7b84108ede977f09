// Package directory resolves the user sets presence queries are about by
// asking the services that own them, on the caller's behalf: the caller's
// friends from the user service and a channel's members from the chat
// service (which checks that the caller may see the channel). Both forward
// the caller's bearer token, so those services apply their own rules.
package directory

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

const (
	// pageSize is the largest page the user and chat services serve.
	pageSize = 100
	// callTimeout bounds each page request when the context has no
	// earlier deadline.
	callTimeout = 5 * time.Second
)

// Friends is presence.FriendLister over the user service.
type Friends struct {
	client userv1.UserServiceClient
}

var _ presence.FriendLister = (*Friends)(nil)

// NewFriends returns a lister calling the user service over conn.
func NewFriends(conn grpc.ClientConnInterface) *Friends {
	return &Friends{client: userv1.NewUserServiceClient(conn)}
}

// FriendIDs implements presence.FriendLister: the users in state "friend"
// (not pending requests), at most limit+1.
func (f *Friends) FriendIDs(ctx context.Context, caller presence.Caller, limit int) ([]string, error) {
	ctx = auth.OutgoingAsUser(ctx, caller.Token)
	var ids []string
	token := ""
	for {
		resp, err := call(ctx, func(ctx context.Context) (*userv1.ListFriendsResponse, error) {
			return f.client.ListFriends(ctx, &userv1.ListFriendsRequest{State: "friend", PageSize: pageSize, PageToken: token})
		})
		if err != nil {
			return nil, fromStatus("user service: list friends", err, presence.ErrUpstream)
		}
		for _, fr := range resp.GetFriends() {
			if id := fr.GetUser().GetId(); id != "" && fr.GetState() == "friend" {
				ids = append(ids, id)
			}
		}
		token = resp.GetNextPageToken()
		if token == "" || len(ids) > limit {
			return ids, nil
		}
	}
}

// Members is presence.MemberLister over the chat service.
type Members struct {
	client chatv1.ChatServiceClient
}

var _ presence.MemberLister = (*Members)(nil)

// NewMembers returns a lister calling the chat service over conn.
func NewMembers(conn grpc.ClientConnInterface) *Members {
	return &Members{client: chatv1.NewChatServiceClient(conn)}
}

// MemberIDs implements presence.MemberLister, at most limit+1 ids.
func (m *Members) MemberIDs(ctx context.Context, caller presence.Caller, channelID string, limit int) ([]string, error) {
	ctx = auth.OutgoingAsUser(ctx, caller.Token)
	var ids []string
	token := ""
	for {
		resp, err := call(ctx, func(ctx context.Context) (*chatv1.ListMembersResponse, error) {
			return m.client.ListMembers(ctx, &chatv1.ListMembersRequest{ChannelId: channelID, PageSize: pageSize, PageToken: token})
		})
		if err != nil {
			return nil, fromStatus("chat service: list members", err, presence.ErrChannelNotFound)
		}
		for _, mem := range resp.GetMembers() {
			if id := mem.GetUserId(); id != "" {
				ids = append(ids, id)
			}
		}
		token = resp.GetNextPageToken()
		if token == "" || len(ids) > limit {
			return ids, nil
		}
	}
}

// call runs one request with a deadline.
func call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, callTimeout)
		defer cancel()
	}
	return f(ctx)
}

// fromStatus maps the other service's answer to the presence errors (with
// notFound for codes.NotFound): what the caller may not see there stays
// hidden the same way here.
func fromStatus(what string, err, notFound error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%w: %s: %s", notFound, what, st.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		return fmt.Errorf("%w: %s: %s", presence.ErrForbidden, what, st.Message())
	case codes.Canceled:
		return fmt.Errorf("%s: %w", what, context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	default:
		return fmt.Errorf("%w: %s: %s: %s", presence.ErrUpstream, what, st.Code(), st.Message())
	}
}
