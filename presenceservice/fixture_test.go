package presenceservice_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/testenv"

	"github.com/parleyhq/parley/presenceservice"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

const serviceToken = "test-service-token"

// users maps each test user's access token to the user; the JWT checks
// themselves are platform/auth's business.
var users = map[string]string{"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol", "tok-dave": "dave"}

type staticVerifier struct{}

func (staticVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	u, ok := users[token]
	if !ok {
		return auth.Principal{}, errors.New("unknown token")
	}
	return auth.Principal{UserID: u, SessionID: "s-" + u}, nil
}

// callerOf returns the user whose bearer token is in ctx's incoming
// metadata, as the fake user and chat services see it.
func callerOf(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, _ := strings.CutPrefix(v, "Bearer ")
		if u, ok := users[tok]; ok {
			return u, nil
		}
	}
	return "", status.Error(codes.Unauthenticated, "no user token forwarded")
}

// fakeUsers plays the user service's ListFriends.
type fakeUsers struct {
	userv1.UnimplementedUserServiceServer
	friends map[string][]string
}

func (f *fakeUsers) ListFriends(ctx context.Context, req *userv1.ListFriendsRequest) (*userv1.ListFriendsResponse, error) {
	u, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	all := f.friends[u]
	start, _ := strconv.Atoi(req.GetPageToken())
	end := min(start+int(max(req.GetPageSize(), 1)), len(all))
	resp := &userv1.ListFriendsResponse{}
	for _, id := range all[start:end] {
		resp.Friends = append(resp.Friends, &userv1.Friend{User: &userv1.User{Id: id}, State: "friend"})
	}
	if end < len(all) {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

// fakeChat plays the chat service's ListMembers: only members see a
// channel's members.
type fakeChat struct {
	chatv1.UnimplementedChatServiceServer
	members map[string][]string
}

func (f *fakeChat) ListMembers(ctx context.Context, req *chatv1.ListMembersRequest) (*chatv1.ListMembersResponse, error) {
	u, err := callerOf(ctx)
	if err != nil {
		return nil, err
	}
	ms, ok := f.members[req.GetChannelId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such channel")
	}
	member := false
	resp := &chatv1.ListMembersResponse{}
	for _, m := range ms {
		member = member || m == u
		resp.Members = append(resp.Members, &chatv1.Member{UserId: m, Role: "member"})
	}
	if !member {
		return nil, status.Error(codes.PermissionDenied, "not a member")
	}
	return resp, nil
}

// serve runs a gRPC server with the fakes on loopback until the test ends
// and returns a client connection to it.
func serveFakes(t testing.TB, u *fakeUsers, c *fakeChat) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	userv1.RegisterUserServiceServer(srv, u)
	chatv1.RegisterChatServiceServer(srv, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when stopped below
	}()
	conn := dial(t, lis.Addr().String())
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return conn
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // closing a client conn only fails if already closed
	return conn
}

// service is a running presence service and a client of it.
type service struct {
	client        presencev1.PresenceServiceClient
	conn          *grpc.ClientConn
	subjectPrefix string
	env           *testenv.Env
	stop          func() error
}

// start runs the presence service on the test environment, isolated by
// unique names, with the fake user and chat services; edit adjusts the
// config. The service stops when the test ends.
func start(t testing.TB, edit func(*presenceservice.Config)) *service {
	t.Helper()
	env := testenv.New(t)
	fakes := serveFakes(t,
		&fakeUsers{friends: map[string][]string{"alice": {"bob", "carol"}, "bob": {"alice"}}},
		&fakeChat{members: map[string][]string{"team": {"alice", "bob", "carol"}, "secret": {"dave"}}},
	)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Unique("presence")
	cfg := presenceservice.Config{
		GRPCListener:  lis,
		MongoURI:      env.MongoURI,
		Database:      prefix,
		NATSURL:       env.NATSURL,
		RedisURL:      env.RedisURL,
		RedisPrefix:   prefix + ":",
		SubjectPrefix: prefix + ".",
		ServiceToken:  serviceToken,
		Verifier:      staticVerifier{},
		UserService:   fakes,
		ChatService:   fakes,
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := presenceservice.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = errors.New("Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		rdb := env.Redis(t)
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		keys, err := rdb.Keys(cctx, cfg.RedisPrefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(cctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("clean up Redis keys: %v", err)
		}
		mc := env.MongoClient(t)
		if err := mc.Database(cfg.Database).Drop(cctx); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	conn := dial(t, lis.Addr().String())
	return &service{client: presencev1.NewPresenceServiceClient(conn), conn: conn, subjectPrefix: cfg.SubjectPrefix, env: env, stop: stop}
}

// as returns a context calling as the user with token tok.
func as(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

// asGateway returns a context calling as the gateway service.
func asGateway() context.Context {
	return auth.OutgoingAsService(context.Background(), "gateway", serviceToken)
}

func wantCode(t testing.TB, what string, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Errorf("%s: code %s (%v), want %s", what, got, err, code)
	}
}
