package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
)

// In-test stand-ins for the chat, presence and user services: small
// in-memory behaviour behind real gRPC servers with the real auth hook, so
// the hub's token forwarding is exercised as in production.

const testServiceToken = "svc-secret"

// testVerifier accepts "tok-<user id>" tokens.
type testVerifier struct{}

func (testVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	uid, ok := strings.CutPrefix(token, "tok-")
	if !ok || uid == "" {
		return auth.Principal{}, errors.New("invalid token")
	}
	return auth.Principal{UserID: uid, SessionID: "s-" + uid}, nil
}

func tokenFor(uid string) string { return "tok-" + uid }

// caller returns the authenticated principal of a fake service call.
func caller(ctx context.Context) (auth.Principal, error) { return auth.Require(ctx) }

func requireUser(ctx context.Context) (string, error) {
	p, err := caller(ctx)
	if err != nil {
		return "", err
	}
	if p.IsService() {
		return "", status.Error(codes.PermissionDenied, "user call made as a service")
	}
	return p.UserID, nil
}

// failures injects one-shot errors per method name.
type failures struct {
	mu   sync.Mutex
	next map[string]error
}

func (f *failures) failNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next = make(map[string]error)
	}
	f.next[method] = err
}

func (f *failures) take(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.next[method]
	delete(f.next, method)
	return err
}

type fakeChannel struct {
	id, typ  string
	members  []string
	msgs     []*chatv1.Message
	byClient map[string]*chatv1.Message
	lastRead map[string]int64
}

func (ch *fakeChannel) isMember(uid string) bool { return slices.Contains(ch.members, uid) }

// fakeChat stores messages with per-channel seqs and publishes the realtime
// frames on NATS as the chat service does.
type fakeChat struct {
	chatv1.UnimplementedChatServiceServer
	failures
	nc     *nats.Conn
	prefix string

	mu       sync.Mutex
	channels map[string]*fakeChannel
	// drop, when set, decides which message seqs are stored but never
	// published (a lost realtime frame).
	drop func(seq int64) bool
}

func newFakeChat(nc *nats.Conn, prefix string) *fakeChat {
	return &fakeChat{nc: nc, prefix: prefix, channels: make(map[string]*fakeChannel)}
}

func (s *fakeChat) addChannel(id, typ string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[id] = &fakeChannel{id: id, typ: typ, members: members, byClient: make(map[string]*chatv1.Message), lastRead: make(map[string]int64)}
}

func (s *fakeChat) setDrop(f func(int64) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = f
}

// publishLocked publishes a realtime frame; called with mu held so frames
// leave in seq order.
func (s *fakeChat) publishLocked(typ, channel, actor string, data any) {
	var raw json.RawMessage
	switch d := data.(type) {
	case *chatv1.Message:
		raw, _ = protojson.MarshalOptions{UseProtoNames: true}.Marshal(d)
	default:
		raw, _ = json.Marshal(d)
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "channel": channel, "data": raw, "timestamp": time.Now().UnixMilli(), "user_id": actor})
	// Core NATS is fire and forget: a publish during an outage is lost.
	_ = s.nc.Publish(s.prefix+"rt.channel."+channel, b)
}

func (s *fakeChat) channel(id string) (*fakeChannel, error) {
	ch := s.channels[id]
	if ch == nil {
		return nil, status.Error(codes.NotFound, "channel not found")
	}
	return ch, nil
}

func (s *fakeChat) begin(_ context.Context, method string) error { return s.take(method) }

// sendAs stores and publishes a message outside gRPC (for floods).
func (s *fakeChat) sendAs(uid, channel, content string) (*chatv1.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(channel)
	if err != nil {
		return nil, err
	}
	return s.storeLocked(ch, uid, &chatv1.SendMessageRequest{ChannelId: channel, Content: content}), nil
}

func (s *fakeChat) storeLocked(ch *fakeChannel, uid string, req *chatv1.SendMessageRequest) *chatv1.Message {
	if req.GetClientMsgId() != "" {
		if m := ch.byClient[uid+"/"+req.GetClientMsgId()]; m != nil {
			return m
		}
	}
	typ := req.GetType()
	if typ == "" {
		typ = "text"
	}
	m := &chatv1.Message{
		Id:          fmt.Sprintf("%s-m%d", ch.id, len(ch.msgs)+1),
		ChannelId:   ch.id,
		Seq:         int64(len(ch.msgs) + 1),
		UserId:      uid,
		Content:     req.GetContent(),
		Type:        typ,
		Metadata:    req.GetMetadata(),
		ClientMsgId: req.GetClientMsgId(),
		CreatedAt:   timestamppb.Now(),
	}
	ch.msgs = append(ch.msgs, m)
	if req.GetClientMsgId() != "" {
		ch.byClient[uid+"/"+req.GetClientMsgId()] = m
	}
	if s.drop == nil || !s.drop(m.Seq) {
		s.publishLocked("message", ch.id, uid, m)
	}
	return m
}

func (s *fakeChat) SendMessage(ctx context.Context, req *chatv1.SendMessageRequest) (*chatv1.SendMessageResponse, error) {
	if err := s.begin(ctx, "SendMessage"); err != nil {
		return nil, err
	}
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.GetContent()) == "" || len(req.GetContent()) > 4000 {
		return nil, status.Error(codes.InvalidArgument, "content must be 1-4000 characters")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(req.GetChannelId())
	if err != nil {
		return nil, err
	}
	if !ch.isMember(uid) {
		return nil, status.Error(codes.PermissionDenied, "not a member")
	}
	return &chatv1.SendMessageResponse{Message: s.storeLocked(ch, uid, req)}, nil
}

func (s *fakeChat) GetMessages(ctx context.Context, req *chatv1.GetMessagesRequest) (*chatv1.GetMessagesResponse, error) {
	if err := s.begin(ctx, "GetMessages"); err != nil {
		return nil, err
	}
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = 50
	}
	if limit > 100 {
		return nil, status.Error(codes.InvalidArgument, "limit above 100")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(req.GetChannelId())
	if err != nil {
		return nil, err
	}
	if ch.typ != "public" && !ch.isMember(uid) {
		return nil, status.Error(codes.PermissionDenied, "not a member")
	}
	var out []*chatv1.Message
	more := false
	switch {
	case req.AfterSeq != nil:
		after := int(req.GetAfterSeq())
		if after < len(ch.msgs) {
			out = ch.msgs[after:]
		}
		if len(out) > limit {
			out, more = out[:limit], true
		}
	default:
		end := len(ch.msgs)
		if req.BeforeSeq != nil {
			end = min(end, int(req.GetBeforeSeq())-1)
		}
		start := max(0, end-limit)
		out, more = ch.msgs[start:end], start > 0
	}
	return &chatv1.GetMessagesResponse{Messages: slices.Clone(out), HasMore: more}, nil
}

func (s *fakeChat) CheckAccess(ctx context.Context, req *chatv1.CheckAccessRequest) (*chatv1.CheckAccessResponse, error) {
	if err := s.begin(ctx, "CheckAccess"); err != nil {
		return nil, err
	}
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(req.GetChannelId())
	if err != nil {
		return nil, err
	}
	member := ch.isMember(req.GetUserId())
	resp := &chatv1.CheckAccessResponse{CanRead: member || ch.typ == "public", CanWrite: member, IsMember: member, ChannelType: ch.typ}
	if member {
		resp.Role = "member"
	}
	return resp, nil
}

func (s *fakeChat) ListMembers(ctx context.Context, req *chatv1.ListMembersRequest) (*chatv1.ListMembersResponse, error) {
	if err := s.begin(ctx, "ListMembers"); err != nil {
		return nil, err
	}
	if _, err := requireUser(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(req.GetChannelId())
	if err != nil {
		return nil, err
	}
	start := 0
	if req.GetPageToken() != "" {
		fmt.Sscan(req.GetPageToken(), &start)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	end := min(len(ch.members), start+size)
	resp := &chatv1.ListMembersResponse{}
	for _, m := range ch.members[start:end] {
		resp.Members = append(resp.Members, &chatv1.Member{UserId: m, Role: "member"})
	}
	if end < len(ch.members) {
		resp.NextPageToken = fmt.Sprint(end)
	}
	return resp, nil
}

func (s *fakeChat) MarkRead(ctx context.Context, req *chatv1.MarkReadRequest) (*chatv1.MarkReadResponse, error) {
	if err := s.begin(ctx, "MarkRead"); err != nil {
		return nil, err
	}
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, err := s.channel(req.GetChannelId())
	if err != nil {
		return nil, err
	}
	if !ch.isMember(uid) {
		return nil, status.Error(codes.PermissionDenied, "not a member")
	}
	ch.lastRead[uid] = max(ch.lastRead[uid], req.GetSeq())
	s.publishLocked("receipt", ch.id, uid, map[string]any{"kind": "read", "seq": ch.lastRead[uid], "user_id": uid})
	return &chatv1.MarkReadResponse{LastReadSeq: ch.lastRead[uid], UnreadCount: int64(len(ch.msgs)) - ch.lastRead[uid]}, nil
}

func (s *fakeChat) findOwn(ctx context.Context, channel, msgID string) (*fakeChannel, *chatv1.Message, string, error) {
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	ch, err := s.channel(channel)
	if err != nil {
		return nil, nil, "", err
	}
	for _, m := range ch.msgs {
		if m.GetId() == msgID {
			if m.GetUserId() != uid {
				return nil, nil, "", status.Error(codes.PermissionDenied, "not your message")
			}
			return ch, m, uid, nil
		}
	}
	return nil, nil, "", status.Error(codes.NotFound, "message not found")
}

func (s *fakeChat) EditMessage(ctx context.Context, req *chatv1.EditMessageRequest) (*chatv1.EditMessageResponse, error) {
	if err := s.begin(ctx, "EditMessage"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, m, uid, err := s.findOwn(ctx, req.GetChannelId(), req.GetMessageId())
	if err != nil {
		return nil, err
	}
	m.Content, m.EditedAt = req.GetContent(), timestamppb.Now()
	s.publishLocked("message_updated", ch.id, uid, m)
	return &chatv1.EditMessageResponse{Message: m}, nil
}

func (s *fakeChat) DeleteMessage(ctx context.Context, req *chatv1.DeleteMessageRequest) (*chatv1.DeleteMessageResponse, error) {
	if err := s.begin(ctx, "DeleteMessage"); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, m, uid, err := s.findOwn(ctx, req.GetChannelId(), req.GetMessageId())
	if err != nil {
		return nil, err
	}
	m.Content, m.Deleted = "", true
	s.publishLocked("message_deleted", ch.id, uid, m)
	return &chatv1.DeleteMessageResponse{Message: m}, nil
}

// addMember adds a member and publishes user_joined as the service would.
func (s *fakeChat) addMember(channel, uid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	ch.members = append(ch.members, uid)
	s.publishLocked("user_joined", channel, uid, map[string]any{"user_id": uid, "role": "member"})
}

// removeMember removes a member (by an admin) and publishes user_left.
func (s *fakeChat) removeMember(channel, uid, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	ch.members = slices.DeleteFunc(ch.members, func(m string) bool { return m == uid })
	s.publishLocked("user_left", channel, by, map[string]any{"user_id": uid, "role": "member"})
}

// fakePresence tracks connections per user and publishes presence changes.
type fakePresence struct {
	presencev1.UnimplementedPresenceServiceServer
	failures
	nc     *nats.Conn
	prefix string

	mu         sync.Mutex
	conns      map[string]string // connection id -> user id
	status     map[string]string // chosen status per user
	version    int64
	heartbeats int
	connects   int
	lastBeat   []string
}

func newFakePresence(nc *nats.Conn, prefix string) *fakePresence {
	return &fakePresence{nc: nc, prefix: prefix, conns: make(map[string]string), status: make(map[string]string)}
}

func (s *fakePresence) devices(uid string) int {
	n := 0
	for _, u := range s.conns {
		if u == uid {
			n++
		}
	}
	return n
}

func (s *fakePresence) publishLocked(uid string) {
	st := "offline"
	n := s.devices(uid)
	if n > 0 {
		st = s.status[uid]
		if st == "" {
			st = "online"
		}
	}
	s.version++
	b, _ := json.Marshal(map[string]any{"user_id": uid, "status": st, "last_seen": time.Now().UTC().Format(time.RFC3339), "device_count": n, "changed_at": time.Now().UTC().Format(time.RFC3339Nano), "version": s.version})
	_ = s.nc.Publish(s.prefix+"presence."+uid, b)
}

func (s *fakePresence) Connect(ctx context.Context, req *presencev1.ConnectRequest) (*presencev1.ConnectResponse, error) {
	if err := s.take("Connect"); err != nil {
		return nil, err
	}
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connects++
	_, known := s.conns[req.GetConnectionId()]
	s.conns[req.GetConnectionId()] = req.GetUserId()
	if !known && s.devices(req.GetUserId()) == 1 {
		s.publishLocked(req.GetUserId())
	}
	return &presencev1.ConnectResponse{Presence: &presencev1.Presence{UserId: req.GetUserId(), Status: "online"}}, nil
}

func (s *fakePresence) Disconnect(ctx context.Context, req *presencev1.DisconnectRequest) (*presencev1.DisconnectResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[req.GetConnectionId()]; ok {
		delete(s.conns, req.GetConnectionId())
		if s.devices(req.GetUserId()) == 0 {
			s.publishLocked(req.GetUserId())
		}
	}
	return &presencev1.DisconnectResponse{}, nil
}

func (s *fakePresence) Heartbeat(ctx context.Context, req *presencev1.HeartbeatRequest) (*presencev1.HeartbeatResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heartbeats++
	s.lastBeat = slices.Clone(req.GetConnectionIds())
	resp := &presencev1.HeartbeatResponse{}
	for _, id := range req.GetConnectionIds() {
		if _, ok := s.conns[id]; !ok {
			resp.UnknownConnectionIds = append(resp.UnknownConnectionIds, id)
		}
	}
	return resp, nil
}

func (s *fakePresence) UpdateStatus(ctx context.Context, req *presencev1.UpdateStatusRequest) (*presencev1.UpdateStatusResponse, error) {
	if err := s.take("UpdateStatus"); err != nil {
		return nil, err
	}
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	switch req.GetStatus() {
	case "online", "away", "busy", "offline":
	default:
		return nil, status.Error(codes.InvalidArgument, "status must be online, away, busy or offline")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[uid] = req.GetStatus()
	s.publishLocked(uid)
	return &presencev1.UpdateStatusResponse{Presence: &presencev1.Presence{UserId: uid, Status: req.GetStatus()}}, nil
}

// forget drops a connection as if its record expired.
func (s *fakePresence) forget(connID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, connID)
}

func (s *fakePresence) connected(connID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.conns[connID]
	return ok
}

func (s *fakePresence) connectionsOf(uid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.devices(uid)
}

// fakeUsers serves friend lists.
type fakeUsers struct {
	userv1.UnimplementedUserServiceServer
	mu      sync.Mutex
	friends map[string][]string
}

func (s *fakeUsers) befriend(a, b string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.friends == nil {
		s.friends = make(map[string][]string)
	}
	s.friends[a] = append(s.friends[a], b)
	s.friends[b] = append(s.friends[b], a)
}

func (s *fakeUsers) ListFriends(ctx context.Context, req *userv1.ListFriendsRequest) (*userv1.ListFriendsResponse, error) {
	uid, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &userv1.ListFriendsResponse{}
	for _, f := range s.friends[uid] {
		resp.Friends = append(resp.Friends, &userv1.Friend{User: &userv1.User{Id: f}, State: "friend"})
	}
	return resp, nil
}

// startServices serves the fakes over an in-memory gRPC connection.
func startServices(t testing.TB, chat *fakeChat, pres *fakePresence, users *fakeUsers) *grpc.ClientConn {
	t.Helper()
	hook := auth.Hook(auth.HookConfig{Verifier: testVerifier{}, ServiceToken: testServiceToken})
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := hook(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}))
	chatv1.RegisterChatServiceServer(srv, chat)
	presencev1.RegisterPresenceServiceServer(srv, pres)
	userv1.RegisterUserServiceServer(srv, users)
	lis := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc client: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
		<-served
	})
	return cc
}
