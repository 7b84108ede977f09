package users

import (
	"context"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
)

// fakeUsers is a user service that knows a few ids and insists on the
// service token.
type fakeUsers struct {
	userv1.UnimplementedUserServiceServer
	known map[string]bool
	calls int
}

func (f *fakeUsers) BatchGetUsers(ctx context.Context, req *userv1.BatchGetUsersRequest) (*userv1.BatchGetUsersResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get(auth.ServiceTokenHeader); len(got) != 1 || got[0] != "secret" {
		return nil, status.Error(codes.Unauthenticated, "no service token")
	}
	if len(req.GetUserIds()) > batchSize {
		return nil, status.Error(codes.InvalidArgument, "too many ids")
	}
	f.calls++
	resp := &userv1.BatchGetUsersResponse{}
	for _, id := range req.GetUserIds() {
		if f.known[id] {
			resp.Users = append(resp.Users, &userv1.User{Id: id})
		}
	}
	return resp, nil
}

func TestMissingUsers(t *testing.T) {
	fake := &fakeUsers{known: map[string]bool{"alice": true, "bob": true}}
	srv := grpc.NewServer()
	userv1.RegisterUserServiceServer(srv, fake)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	d := New(conn, "chatservice", "secret")
	ids := []string{"alice", "ghost", "bob"}
	for i := range 150 {
		ids = append(ids, "x"+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	missing, err := d.MissingUsers(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 151 || !slices.Contains(missing, "ghost") || slices.Contains(missing, "alice") {
		t.Fatalf("missing %d: %v", len(missing), missing[:3])
	}
	if fake.calls != 2 {
		t.Fatalf("%d calls for 153 ids, want 2 batches", fake.calls)
	}
	if _, err := New(conn, "chatservice", "wrong").MissingUsers(t.Context(), []string{"alice"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v", err)
	}
}
