package notificationservice_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/rpc"
)

// staticVerifier maps bearer tokens to principals.
type staticVerifier map[string]auth.Principal

func (v staticVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	if p, ok := v[token]; ok {
		return p, nil
	}
	return auth.Principal{}, auth.ErrInvalidToken
}

// peers plays the chat, presence and user services over real gRPC, with
// the same auth hook as the real ones: every call must come as a service.
type peers struct {
	chatv1.UnimplementedChatServiceServer
	presencev1.UnimplementedPresenceServiceServer
	userv1.UnimplementedUserServiceServer

	mu        sync.Mutex
	members   map[string][]string // channel -> users
	channels  map[string]string   // channel -> name
	connected map[string]bool
	lastSeen  map[string]time.Time
	users     map[string]*userv1.User
	calls     map[string]int
	conn      *grpc.ClientConn
}

func startPeers(t *testing.T, serviceToken string) *peers {
	t.Helper()
	p := &peers{
		members: map[string][]string{}, channels: map[string]string{}, connected: map[string]bool{},
		lastSeen: map[string]time.Time{}, users: map[string]*userv1.User{}, calls: map[string]int{},
	}
	gs, err := rpc.NewServer(rpc.ServerConfig{Auth: auth.Hook(auth.HookConfig{Verifier: staticVerifier{}, ServiceToken: serviceToken})})
	if err != nil {
		t.Fatal(err)
	}
	chatv1.RegisterChatServiceServer(gs, p)
	presencev1.RegisterPresenceServiceServer(gs, p)
	userv1.RegisterUserServiceServer(gs, p)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.ServeWithGrace(ctx, gs, lis, time.Second) }()
	p.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("peers: %v", err)
		}
	})
	return p
}

func (p *peers) called(ctx context.Context, method string) error {
	if _, err := auth.RequireService(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[method]++
	return nil
}

func (p *peers) addUser(id, username, name, email string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[id] = &userv1.User{Id: id, Username: username, DisplayName: name, Email: email}
}

func (p *peers) setChannel(id, name string, members ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.channels[id], p.members[id] = name, members
}

func (p *peers) setPresence(user string, connected bool, lastSeen time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected[user], p.lastSeen[user] = connected, lastSeen
}

func (p *peers) ListMembers(ctx context.Context, req *chatv1.ListMembersRequest) (*chatv1.ListMembersResponse, error) {
	if err := p.called(ctx, "ListMembers"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ms, ok := p.members[req.GetChannelId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such channel")
	}
	// One member per page, to exercise the pagination.
	i := 0
	if req.GetPageToken() != "" {
		for i < len(ms) && ms[i] != req.GetPageToken() {
			i++
		}
	}
	out := &chatv1.ListMembersResponse{}
	if i < len(ms) {
		out.Members = []*chatv1.Member{{UserId: ms[i], Role: "member"}}
		if i+1 < len(ms) {
			out.NextPageToken = ms[i+1]
		}
	}
	return out, nil
}

func (p *peers) GetChannel(ctx context.Context, req *chatv1.GetChannelRequest) (*chatv1.GetChannelResponse, error) {
	if err := p.called(ctx, "GetChannel"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return &chatv1.GetChannelResponse{Channel: &chatv1.Channel{Id: req.GetChannelId(), Name: p.channels[req.GetChannelId()]}}, nil
}

func (p *peers) GetOnlineUsers(ctx context.Context, req *presencev1.GetOnlineUsersRequest) (*presencev1.GetOnlineUsersResponse, error) {
	if err := p.called(ctx, "GetOnlineUsers"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &presencev1.GetOnlineUsersResponse{}
	for _, id := range req.GetUserIds() {
		if p.connected[id] {
			out.Presences = append(out.Presences, &presencev1.Presence{UserId: id, Status: "online", DeviceCount: 1})
		}
	}
	return out, nil
}

func (p *peers) GetUserStatus(ctx context.Context, req *presencev1.GetUserStatusRequest) (*presencev1.GetUserStatusResponse, error) {
	if err := p.called(ctx, "GetUserStatus"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := &presencev1.Presence{UserId: req.GetUserId(), Status: "offline"}
	if p.connected[req.GetUserId()] {
		pr.Status, pr.DeviceCount = "online", 1
	}
	if ls := p.lastSeen[req.GetUserId()]; !ls.IsZero() {
		pr.LastSeen = timestamppb.New(ls)
	}
	return &presencev1.GetUserStatusResponse{Presence: pr}, nil
}

func (p *peers) BatchGetUsers(ctx context.Context, req *userv1.BatchGetUsersRequest) (*userv1.BatchGetUsersResponse, error) {
	if err := p.called(ctx, "BatchGetUsers"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &userv1.BatchGetUsersResponse{}
	for _, id := range req.GetUserIds() {
		if u, ok := p.users[id]; ok {
			out.Users = append(out.Users, &userv1.User{Id: u.Id, Username: u.Username, DisplayName: u.DisplayName})
		}
	}
	return out, nil
}

// GetProfile answers a service with the private email field: what the
// notification service needs from the user service (see the report).
func (p *peers) GetProfile(ctx context.Context, req *userv1.GetProfileRequest) (*userv1.GetProfileResponse, error) {
	if err := p.called(ctx, "GetProfile"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[req.GetUserId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &userv1.GetProfileResponse{User: u}, nil
}

var errNotYet = errors.New("not yet")
