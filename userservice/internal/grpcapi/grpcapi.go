// Package grpcapi is the user service's gRPC transport: thin handlers that
// turn requests into calls of package users, converters from domain values
// to protobuf messages, and the one mapping from domain errors to status
// codes.
package grpcapi

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// PublicMethods are the methods callable without an access token: signing
// up and in, renewing a session, publishing the verification keys, and
// logging out, which needs no access token because possessing the refresh
// token is what entitles the caller to revoke its session (and an expired
// access token must not stop a user from logging out).
func PublicMethods() []string {
	return []string{
		userv1.UserService_Register_FullMethodName,
		userv1.UserService_Login_FullMethodName,
		userv1.UserService_RefreshToken_FullMethodName,
		userv1.UserService_Logout_FullMethodName,
		userv1.UserService_GetJWKS_FullMethodName,
	}
}

// Config configures the handlers.
type Config struct {
	// TrustedProxies is how many proxies in front of the gateway append
	// to X-Forwarded-For; the client's IP (for login rate limiting) is the
	// entry that many places before the last one, which the gateway
	// appends itself. 0 when clients reach the gateway directly.
	TrustedProxies int
	// Logger records internal errors, whose detail the client does not
	// see (default slog.Default()).
	Logger *slog.Logger
}

// Server implements userv1.UserServiceServer.
type Server struct {
	userv1.UnimplementedUserServiceServer
	svc  *users.Service
	jwks []*userv1.JSONWebKey
	cfg  Config
}

var _ userv1.UserServiceServer = (*Server)(nil)

// New returns the handlers over svc; keys are the public keys GetJWKS
// publishes.
func New(svc *users.Service, keys []auth.JWK, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{svc: svc, jwks: toProtoJWKS(keys), cfg: cfg}
}

// Register creates an account.
func (s *Server) Register(ctx context.Context, req *userv1.RegisterRequest) (*userv1.RegisterResponse, error) {
	sess, err := s.svc.Register(ctx, users.RegisterInput{
		Username: req.GetUsername(), Email: req.GetEmail(), Password: req.GetPassword(), DisplayName: req.GetDisplayName(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.RegisterResponse{
		User: toProtoPrivateUser(sess.User), AccessToken: sess.AccessToken, RefreshToken: sess.RefreshToken,
		ExpiresAt: ts(sess.AccessExpiresAt), RefreshExpiresAt: ts(sess.RefreshExpiresAt),
	}, nil
}

// Login signs in.
func (s *Server) Login(ctx context.Context, req *userv1.LoginRequest) (*userv1.LoginResponse, error) {
	sess, err := s.svc.Login(ctx, users.LoginInput{
		Login: req.GetLogin(), Password: req.GetPassword(), ClientIP: clientIP(ctx, s.cfg.TrustedProxies),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.LoginResponse{
		User: toProtoPrivateUser(sess.User), AccessToken: sess.AccessToken, RefreshToken: sess.RefreshToken,
		ExpiresAt: ts(sess.AccessExpiresAt), RefreshExpiresAt: ts(sess.RefreshExpiresAt),
	}, nil
}

// RefreshToken rotates a refresh token.
func (s *Server) RefreshToken(ctx context.Context, req *userv1.RefreshTokenRequest) (*userv1.RefreshTokenResponse, error) {
	sess, err := s.svc.Refresh(ctx, req.GetRefreshToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.RefreshTokenResponse{
		User: toProtoPrivateUser(sess.User), AccessToken: sess.AccessToken, RefreshToken: sess.RefreshToken,
		ExpiresAt: ts(sess.AccessExpiresAt), RefreshExpiresAt: ts(sess.RefreshExpiresAt),
	}, nil
}

// Logout revokes the refresh token's session.
func (s *Server) Logout(ctx context.Context, req *userv1.LogoutRequest) (*userv1.LogoutResponse, error) {
	caller, _ := auth.FromContext(ctx)
	if caller.IsService() {
		caller = auth.Principal{} // a service logs a user out on the token's authority alone
	}
	if err := s.svc.Logout(ctx, req.GetRefreshToken(), caller.UserID); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.LogoutResponse{}, nil
}

// GetProfile returns the caller's own profile (user_id "", "me" or the
// caller's id) with its private fields, or another user's public profile;
// a service caller gets the private fields of anyone.
func (s *Server) GetProfile(ctx context.Context, req *userv1.GetProfileRequest) (*userv1.GetProfileResponse, error) {
	caller, err := auth.Require(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetUserId()
	if !caller.IsService() && (id == "" || id == "me" || id == caller.UserID) {
		u, err := s.svc.Me(ctx, caller.UserID)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		return &userv1.GetProfileResponse{User: toProtoPrivateUser(u)}, nil
	}
	u, err := s.svc.User(ctx, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if caller.IsService() {
		// Other services need the address to reach the user (the
		// notification service's email digest); users never see it.
		return &userv1.GetProfileResponse{User: toProtoPrivateUser(u)}, nil
	}
	return &userv1.GetProfileResponse{User: toProtoPublicUser(u)}, nil
}

// UpdateProfile changes the caller's profile.
func (s *Server) UpdateProfile(ctx context.Context, req *userv1.UpdateProfileRequest) (*userv1.UpdateProfileResponse, error) {
	caller, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.svc.UpdateProfile(ctx, caller.UserID, users.ProfileUpdate{
		DisplayName: req.DisplayName, AvatarURL: req.AvatarUrl, StatusMessage: req.StatusMessage,
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.UpdateProfileResponse{User: toProtoPrivateUser(u)}, nil
}

// SearchUsers finds users by username or display-name prefix.
func (s *Server) SearchUsers(ctx context.Context, req *userv1.SearchUsersRequest) (*userv1.SearchUsersResponse, error) {
	if _, err := auth.Require(ctx); err != nil {
		return nil, err
	}
	us, next, err := s.svc.SearchUsers(ctx, req.GetQuery(), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.SearchUsersResponse{Users: toProtoPublicUsers(us), NextPageToken: next}, nil
}

// AddFriend sends or accepts a friend request.
func (s *Server) AddFriend(ctx context.Context, req *userv1.AddFriendRequest) (*userv1.AddFriendResponse, error) {
	caller, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	f, err := s.svc.AddFriend(ctx, caller.UserID, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.AddFriendResponse{Friend: toProtoFriend(f)}, nil
}

// ListFriends lists the caller's friends and requests.
func (s *Server) ListFriends(ctx context.Context, req *userv1.ListFriendsRequest) (*userv1.ListFriendsResponse, error) {
	caller, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	fs, next, err := s.svc.ListFriends(ctx, caller.UserID, users.FriendState(req.GetState()), int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := make([]*userv1.Friend, 0, len(fs))
	for _, f := range fs {
		out = append(out, toProtoFriend(f))
	}
	return &userv1.ListFriendsResponse{Friends: out, NextPageToken: next}, nil
}

// RemoveFriend ends a friendship or a request.
func (s *Server) RemoveFriend(ctx context.Context, req *userv1.RemoveFriendRequest) (*userv1.RemoveFriendResponse, error) {
	caller, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.svc.RemoveFriend(ctx, caller.UserID, req.GetUserId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.RemoveFriendResponse{}, nil
}

// BatchGetUsers returns public profiles, for users and services.
func (s *Server) BatchGetUsers(ctx context.Context, req *userv1.BatchGetUsersRequest) (*userv1.BatchGetUsersResponse, error) {
	if _, err := auth.Require(ctx); err != nil {
		return nil, err
	}
	us, err := s.svc.UsersByID(ctx, req.GetUserIds())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &userv1.BatchGetUsersResponse{Users: toProtoPublicUsers(us)}, nil
}

// GetJWKS publishes the token verification keys.
func (s *Server) GetJWKS(context.Context, *userv1.GetJWKSRequest) (*userv1.GetJWKSResponse, error) {
	return &userv1.GetJWKSResponse{Keys: s.jwks}, nil
}

// requireUser returns the calling user; services have no friends or
// profile of their own.
func requireUser(ctx context.Context) (auth.Principal, error) {
	p, err := auth.Require(ctx)
	if err != nil {
		return p, err
	}
	if p.IsService() {
		return p, permissionDenied("this method acts for a signed-in user, not a service")
	}
	return p, nil
}

// clientIP is the address login attempts are counted against: the
// X-Forwarded-For entry the gateway appended (trustedProxies places before
// the end, when proxies sit in front of the gateway), else the peer.
func clientIP(ctx context.Context, trustedProxies int) string {
	md, _ := metadata.FromIncomingContext(ctx)
	var hops []string
	for _, v := range md.Get("x-forwarded-for") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	if i := len(hops) - 1 - trustedProxies; len(hops) > 0 {
		i = max(i, 0)
		if a, err := netip.ParseAddr(hops[i]); err == nil {
			return a.Unmap().String()
		}
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host, _, err := net.SplitHostPort(p.Addr.String())
		if err != nil {
			host = p.Addr.String()
		}
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap().String()
		}
	}
	return ""
}
