package auth

import "github.com/golang-jwt/jwt/v5"

// Claims are the claims of a Parley access token: the registered ones (sub
// = user id, iss, aud, exp, iat, jti) plus the session and the roles. The
// user service signs them; every other service only verifies them.
type Claims struct {
	jwt.RegisteredClaims
	// SessionID is the login session (refresh-token family) the token was
	// issued for.
	SessionID string `json:"sid"`
	// Roles granted to the user when the token was issued.
	Roles []string `json:"roles,omitempty"`
}
