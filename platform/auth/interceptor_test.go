package auth_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/platform/auth"
)

type stubVerifier struct {
	p   auth.Principal
	err error
}

func (s stubVerifier) Verify(context.Context, string) (auth.Principal, error) { return s.p, s.err }

func TestHook(t *testing.T) {
	const (
		public  = "/parley.user.v1.UserService/Login"
		private = "/parley.user.v1.UserService/GetProfile"
	)
	user := auth.Principal{UserID: "u1", SessionID: "s1"}
	ok := stubVerifier{p: user}
	bad := stubVerifier{err: auth.ErrInvalidToken}
	down := stubVerifier{err: auth.ErrKeysUnavailable}

	tests := []struct {
		name     string
		verifier auth.TokenVerifier
		method   string
		md       metadata.MD
		wantCode codes.Code
		wantUser string
	}{
		{"public, anonymous", ok, public, nil, codes.OK, ""},
		{"public, valid token", ok, public, metadata.Pairs("authorization", "Bearer t"), codes.OK, "u1"},
		{"public, invalid token is anonymous", bad, public, metadata.Pairs("authorization", "Bearer t"), codes.OK, ""},
		{"private, anonymous", ok, private, nil, codes.Unauthenticated, ""},
		{"private, valid token", ok, private, metadata.Pairs("authorization", "Bearer t"), codes.OK, "u1"},
		{"private, lower-case scheme", ok, private, metadata.Pairs("authorization", "bearer t"), codes.OK, "u1"},
		{"private, invalid token", bad, private, metadata.Pairs("authorization", "Bearer t"), codes.Unauthenticated, ""},
		{"private, empty bearer", ok, private, metadata.Pairs("authorization", "Bearer "), codes.Unauthenticated, ""},
		{"private, basic auth", ok, private, metadata.Pairs("authorization", "Basic dTpw"), codes.Unauthenticated, ""},
		{"private, keys unavailable", down, private, metadata.Pairs("authorization", "Bearer t"), codes.Unavailable, ""},
		{"service token", bad, private, metadata.Pairs(auth.ServiceTokenHeader, "secret", "x-parley-service-name", "chat"), codes.OK, "service:chat"},
		{"wrong service token", ok, private, metadata.Pairs(auth.ServiceTokenHeader, "guess", "authorization", "Bearer t"), codes.Unauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hook := auth.Hook(auth.HookConfig{Verifier: tt.verifier, Public: []string{public}, ServiceToken: "secret"})
			ctx := context.Background()
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			got, err := hook(ctx, tt.method)
			if code := status.Code(err); code != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", code, err, tt.wantCode)
			}
			if err != nil {
				return
			}
			p, found := auth.FromContext(got)
			if tt.wantUser == "" {
				if found {
					t.Fatalf("principal %+v set, want none", p)
				}
				return
			}
			if !found || p.UserID != tt.wantUser {
				t.Fatalf("principal = %+v (found %v), want user %q", p, found, tt.wantUser)
			}
			if tt.wantUser == "u1" && p.Token != "t" {
				t.Fatalf("principal token = %q, want the bearer token", p.Token)
			}
		})
	}
}

func TestRequireHelpers(t *testing.T) {
	anon := context.Background()
	user := auth.WithPrincipal(anon, auth.Principal{UserID: "u1"})
	admin := auth.WithPrincipal(anon, auth.Principal{UserID: "u2", Roles: []string{auth.RoleAdmin}})
	svc := auth.WithPrincipal(anon, auth.Principal{UserID: "service:x", Roles: []string{auth.RoleService}})
	tests := []struct {
		name string
		f    func(context.Context) (auth.Principal, error)
		ctx  context.Context
		want codes.Code
	}{
		{"require anon", auth.Require, anon, codes.Unauthenticated},
		{"require user", auth.Require, user, codes.OK},
		{"admin as user", func(c context.Context) (auth.Principal, error) { return auth.RequireRole(c, auth.RoleAdmin) }, user, codes.PermissionDenied},
		{"admin as admin", func(c context.Context) (auth.Principal, error) { return auth.RequireRole(c, auth.RoleAdmin) }, admin, codes.OK},
		{"service as user", auth.RequireService, user, codes.PermissionDenied},
		{"service as service", auth.RequireService, svc, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.f(tt.ctx)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOutgoing(t *testing.T) {
	ctx := auth.OutgoingAsService(context.Background(), "chat", "secret")
	md, _ := metadata.FromOutgoingContext(ctx)
	if got := md.Get(auth.ServiceTokenHeader); len(got) != 1 || got[0] != "secret" {
		t.Fatalf("service token metadata = %v", got)
	}
	ctx = auth.OutgoingAsUser(context.Background(), "tok")
	md, _ = metadata.FromOutgoingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer tok" {
		t.Fatalf("authorization metadata = %v", got)
	}
	// The two ends agree: what OutgoingAsService sends, Hook accepts.
	out, _ := metadata.FromOutgoingContext(auth.OutgoingAsService(context.Background(), "chat", "secret"))
	in := metadata.NewIncomingContext(context.Background(), out)
	got, err := auth.Hook(auth.HookConfig{Verifier: stubVerifier{err: errors.New("unused")}, ServiceToken: "secret"})(in, "/x/Y")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := auth.FromContext(got); !p.IsService() || p.UserID != "service:chat" {
		t.Fatalf("principal = %+v, want service:chat", p)
	}
}
