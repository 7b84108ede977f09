// Package auth is how every Parley service and the gateway know who is
// calling: the authenticated Principal carried in the context, the gRPC auth
// hook that establishes it from a bearer access token (or, for calls between
// services, the shared service token), and the JWT verifier backed by the user
// service's JWKS.
package auth

import (
	"context"
	"slices"
)

// Well-known roles.
const (
	// RoleAdmin is granted to the usernames listed in PARLEY_ADMIN_USERS.
	RoleAdmin = "admin"
	// RoleService marks another Parley service calling internal RPCs.
	RoleService = "service"
)

// Principal is the authenticated caller.
type Principal struct {
	// UserID is the user's id, or "service:<name>" for a service.
	UserID string
	// SessionID identifies the login session (the refresh-token family) the
	// access token belongs to; empty for services.
	SessionID string
	// Roles held by the caller (RoleAdmin, RoleService).
	Roles []string
	// Token is the raw bearer token the caller presented, so a service acting
	// on the user's behalf can forward it; empty for services.
	Token string
}

// HasRole reports whether the principal holds role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// IsService reports whether the caller is another Parley service.
func (p Principal) IsService() bool { return p.HasRole(RoleService) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the authenticated caller, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
