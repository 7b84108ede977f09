package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ServiceTokenHeader is the gRPC metadata key that carries the shared service
// token on calls between Parley services.
const ServiceTokenHeader = "x-parley-service-token"

// TokenVerifier turns a bearer access token into the principal it names.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// HookConfig configures the gRPC auth hook.
type HookConfig struct {
	// Verifier checks user access tokens. Required.
	Verifier TokenVerifier
	// Public lists full method names ("/parley.user.v1.UserService/Login")
	// that need no authentication; a valid token there still sets the
	// principal.
	Public []string
	// ServiceToken, when non-empty, is the shared secret other services
	// present in ServiceTokenHeader to call as RoleService.
	ServiceToken string
}

// Hook returns the function platform/rpc calls before every handler: it
// authenticates the caller and puts the Principal in the context, or fails
// with codes.Unauthenticated. Its signature matches rpc.AuthFunc.
func Hook(cfg HookConfig) func(ctx context.Context, fullMethod string) (context.Context, error) {
	public := make(map[string]bool, len(cfg.Public))
	for _, m := range cfg.Public {
		public[m] = true
	}
	return func(ctx context.Context, fullMethod string) (context.Context, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if cfg.ServiceToken != "" {
			if got := first(md, ServiceTokenHeader); got != "" {
				if subtle.ConstantTimeCompare([]byte(got), []byte(cfg.ServiceToken)) != 1 {
					return nil, status.Error(codes.Unauthenticated, "invalid service token")
				}
				name := first(md, "x-parley-service-name")
				if name == "" {
					name = "unknown"
				}
				return WithPrincipal(ctx, Principal{UserID: "service:" + name, Roles: []string{RoleService}}), nil
			}
		}
		token, hasToken := bearer(first(md, "authorization"))
		if !hasToken {
			if public[fullMethod] {
				return ctx, nil
			}
			return nil, status.Error(codes.Unauthenticated, "missing bearer token")
		}
		p, err := cfg.Verifier.Verify(ctx, token)
		if err != nil {
			if public[fullMethod] {
				// A stale token must not lock a user out of logging in again.
				return ctx, nil
			}
			if errors.Is(err, ErrKeysUnavailable) {
				// Our fault, not the caller's: a retry may succeed, and
				// clients must not drop a good token over it.
				return nil, status.Error(codes.Unavailable, "cannot verify access tokens right now")
			}
			return nil, status.Error(codes.Unauthenticated, "invalid access token")
		}
		p.Token = token
		return WithPrincipal(ctx, p), nil
	}
}

// Require returns the caller or an Unauthenticated error, for handlers.
func Require(ctx context.Context) (Principal, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return Principal{}, status.Error(codes.Unauthenticated, "authentication required")
	}
	return p, nil
}

// RequireRole returns the caller if it holds role, else Unauthenticated or
// PermissionDenied.
func RequireRole(ctx context.Context, role string) (Principal, error) {
	p, err := Require(ctx)
	if err != nil {
		return p, err
	}
	if !p.HasRole(role) {
		return p, status.Errorf(codes.PermissionDenied, "requires the %s role", role)
	}
	return p, nil
}

// RequireService returns the caller if it is another Parley service.
func RequireService(ctx context.Context) (Principal, error) {
	return RequireRole(ctx, RoleService)
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func bearer(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}
