package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/parleyhq/parley/userservice/internal/users"
)

func TestToStatus(t *testing.T) {
	s := &Server{cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	ctx := context.Background()
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		message string
	}{
		{"field", fmt.Errorf("wrapped: %w", &users.FieldError{Field: "username", Reason: "too short"}), codes.InvalidArgument, "username"},
		{"invalid", fmt.Errorf("x: %w", users.ErrInvalidArgument), codes.InvalidArgument, ""},
		{"credentials", users.ErrInvalidCredentials, codes.Unauthenticated, "invalid login or password"},
		{"refresh", users.ErrInvalidRefreshToken, codes.Unauthenticated, "invalid refresh token"},
		{"reuse", users.ErrRefreshTokenReused, codes.Unauthenticated, "invalid refresh token"},
		{"username taken", fmt.Errorf("register: %w", users.ErrUsernameTaken), codes.AlreadyExists, "username"},
		{"email taken", users.ErrEmailTaken, codes.AlreadyExists, "email"},
		{"exists", users.ErrAlreadyExists, codes.AlreadyExists, ""},
		{"not found", fmt.Errorf("get: %w", users.ErrNotFound), codes.NotFound, ""},
		{"denied", users.ErrPermissionDenied, codes.PermissionDenied, ""},
		{"conflict", users.ErrConflict, codes.Aborted, ""},
		{"canceled", context.Canceled, codes.Canceled, ""},
		{"deadline", fmt.Errorf("db: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{"status passes", status.Error(codes.PermissionDenied, "nope"), codes.PermissionDenied, "nope"},
		{"internal hides detail", errors.New("mongo: connection refused to 10.0.0.7"), codes.Internal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.toStatus(ctx, tt.err))
			if st.Code() != tt.code || !strings.Contains(st.Message(), tt.message) {
				t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if tt.code == codes.Internal && strings.Contains(st.Message(), "10.0.0.7") {
				t.Fatal("internal detail leaked to the client")
			}
		})
	}

	// Field violations and retry hints travel as standard details.
	st := status.Convert(s.toStatus(ctx, &users.FieldError{Field: "email", Reason: "is not valid"}))
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "email" {
		t.Fatalf("details = %v, want a BadRequest about email", st.Details())
	}
	st = status.Convert(s.toStatus(ctx, fmt.Errorf("login: %w", &users.RateLimitedError{RetryAfter: 90 * time.Second})))
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("rate limited: %v", st.Code())
	}
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.GetRetryDelay().AsDuration() != 90*time.Second {
		t.Fatalf("details = %v, want RetryInfo of 90s", st.Details())
	}
}

func TestClientIP(t *testing.T) {
	peerCtx := func(addr string) context.Context {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return peer.NewContext(context.Background(), &peer.Peer{Addr: a})
	}
	withXFF := func(ctx context.Context, v ...string) context.Context {
		md := metadata.MD{}
		for _, x := range v {
			md.Append("x-forwarded-for", x)
		}
		return metadata.NewIncomingContext(ctx, md)
	}
	base := peerCtx("10.1.2.3:5555")
	tests := []struct {
		name    string
		ctx     context.Context
		proxies int
		want    string
	}{
		{"peer only", base, 0, "10.1.2.3"},
		{"ipv6 peer", peerCtx("[2001:db8::9]:443"), 0, "2001:db8::9"},
		{"gateway appended", withXFF(base, "198.51.100.4"), 0, "198.51.100.4"},
		{"client spoof ignored", withXFF(base, "1.1.1.1, 198.51.100.4"), 0, "198.51.100.4"},
		{"one trusted proxy", withXFF(base, "1.1.1.1, 198.51.100.4, 10.0.0.2"), 1, "198.51.100.4"},
		{"more proxies than hops", withXFF(base, "198.51.100.4"), 3, "198.51.100.4"},
		{"several headers", withXFF(base, "1.1.1.1", "198.51.100.4"), 0, "198.51.100.4"},
		{"mapped v4", withXFF(base, "::ffff:198.51.100.4"), 0, "198.51.100.4"},
		{"garbage falls back to the peer", withXFF(base, "not-an-ip"), 0, "10.1.2.3"},
		{"nothing", context.Background(), 0, ""},
	}
	for _, tt := range tests {
		if got := clientIP(tt.ctx, tt.proxies); got != tt.want {
			t.Errorf("%s: clientIP = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestPublicUserHasNoPrivateFields(t *testing.T) {
	u := users.User{
		ID: "u1", Username: "alice", Email: "alice@example.com", DisplayName: "Alice",
		PasswordHash: "$argon2id$secret", Roles: []string{"admin"}, CreatedAt: time.Now(),
	}
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(toProtoPublicUser(u))
	if err != nil {
		t.Fatal(err)
	}
	js := string(raw)
	for _, bad := range []string{"alice@example.com", "argon2id", "admin", "password"} {
		if strings.Contains(js, bad) {
			t.Fatalf("public user JSON contains %q: %s", bad, js)
		}
	}
	priv := toProtoPrivateUser(u)
	if priv.GetEmail() != "alice@example.com" || len(priv.GetRoles()) != 1 {
		t.Fatalf("private user = %v", priv)
	}
	raw, _ = protojson.Marshal(priv)
	if strings.Contains(string(raw), "argon2id") {
		t.Fatal("the private view carries the password hash")
	}
}

func TestPublicMethods(t *testing.T) {
	got := strings.Join(PublicMethods(), " ")
	for _, m := range []string{"/Register", "/Login", "/RefreshToken", "/Logout", "/GetJWKS"} {
		if !strings.Contains(got, "/parley.user.v1.UserService"+m) {
			t.Errorf("%s is not public", m)
		}
	}
	for _, m := range []string{"GetProfile", "UpdateProfile", "SearchUsers", "AddFriend", "ListFriends", "RemoveFriend", "BatchGetUsers"} {
		if strings.Contains(got, "/"+m) {
			t.Errorf("%s is public", m)
		}
	}
}
