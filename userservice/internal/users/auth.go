package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// refreshTokenBytes is the entropy of a refresh token: 256 bits.
const refreshTokenBytes = 32

// RegisterInput is a registration request.
type RegisterInput struct {
	Username    string
	Email       string
	Password    string
	DisplayName string
}

// Register creates an account and signs it in. Of several concurrent
// registrations of one username (or email), exactly one succeeds: the
// store's unique indexes decide, the others get ErrUsernameTaken
// (ErrEmailTaken).
func (s *Service) Register(ctx context.Context, in RegisterInput) (Session, error) {
	username, err := NormalizeUsername(in.Username)
	if err != nil {
		return Session{}, err
	}
	email, err := NormalizeEmail(in.Email)
	if err != nil {
		return Session{}, err
	}
	if err := ValidatePassword(in.Password); err != nil {
		return Session{}, err
	}
	displayName, err := NormalizeDisplayName(in.DisplayName)
	if err != nil {
		return Session{}, err
	}
	hash, err := s.Hasher.Hash(ctx, normalizePassword(in.Password))
	if err != nil {
		return Session{}, fmt.Errorf("users: hash password: %w", err)
	}
	id, err := newID()
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	u := User{
		ID: id, Username: username, Email: email, DisplayName: displayName,
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	ev, err := newEvent(EventUserRegistered, id, EntityUser, id,
		UserRegistered{UserID: id, Username: username, DisplayName: displayName, CreatedAt: now}, now)
	if err != nil {
		return Session{}, err
	}
	if err := s.Users.CreateUser(ctx, u, ev); err != nil {
		return Session{}, fmt.Errorf("users: register %q: %w", username, err)
	}
	s.publish(ctx, ev)
	return s.startSession(ctx, u)
}

// LoginInput is a login request.
type LoginInput struct {
	// Login is a username or an email address.
	Login    string
	Password string
	// ClientIP is the address the request came from, for rate limiting;
	// may be empty.
	ClientIP string
}

// Login checks a password and signs the account in. Every failure to
// authenticate is ErrInvalidCredentials, whether the account exists or not,
// and takes about as long either way (an unknown login is checked against a
// dummy hash). After too many failures for the login or from the client IP
// it answers *RateLimitedError, even to the right password.
func (s *Service) Login(ctx context.Context, in LoginInput) (Session, error) {
	login, isEmail, err := normalizeLogin(in.Login)
	if err != nil {
		return Session{}, err
	}
	if len(in.Password) == 0 || len(in.Password) > 4*PasswordMaxLen {
		// Not the policy (old passwords keep working when it changes),
		// just a bound on the work an attacker can ask for.
		return Session{}, invalid("password", "must be 1-128 characters")
	}
	attempt := LoginAttempt{Login: login, ClientIP: in.ClientIP}
	wait, err := s.Limiter.Wait(ctx, attempt)
	if err != nil {
		return Session{}, fmt.Errorf("users: login rate limit: %w", err)
	}
	if wait > 0 {
		return Session{}, &RateLimitedError{RetryAfter: wait}
	}

	var u User
	if isEmail {
		u, err = s.Users.UserByEmail(ctx, login)
	} else {
		u, err = s.Users.UserByUsername(ctx, login)
	}
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Session{}, fmt.Errorf("users: login lookup: %w", err)
	}
	hash := s.dummyHash
	if found {
		hash = u.PasswordHash
	}
	password := normalizePassword(in.Password)
	ok, err := s.Hasher.Verify(ctx, password, hash)
	if err != nil {
		return Session{}, fmt.Errorf("users: verify password: %w", err)
	}
	if !found || !ok {
		if _, err := s.Limiter.Failed(ctx, attempt); err != nil {
			return Session{}, fmt.Errorf("users: record failed login: %w", err)
		}
		return Session{}, ErrInvalidCredentials
	}
	if err := s.Limiter.Succeeded(ctx, attempt); err != nil {
		// The login is good; a stale failure counter only means an
		// earlier lockout for this account later on.
		s.cfg.Logger.WarnContext(ctx, "users: reset login failures", slog.Any("error", err))
	}
	if s.Hasher.NeedsRehash(u.PasswordHash) {
		s.rehash(ctx, u.ID, password)
	}
	return s.startSession(ctx, u)
}

// rehash upgrades a password hash made with older parameters, now that the
// password is known. Best effort: the old hash still works.
func (s *Service) rehash(ctx context.Context, userID, password string) {
	h, err := s.Hasher.Hash(ctx, password)
	if err == nil {
		err = s.Users.SetPasswordHash(ctx, userID, h, s.now())
	}
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "users: upgrading a password hash failed", slog.String("user_id", userID), slog.Any("error", err))
	}
}

// Refresh exchanges a refresh token for a new session token pair. The
// token is single-use: presenting it again (a leaked copy, or a replay)
// revokes every token of its session and fails with ErrRefreshTokenReused.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	hash, err := hashRefreshToken(refreshToken)
	if err != nil {
		return Session{}, err
	}
	rt, err := s.Sessions.RefreshToken(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrInvalidRefreshToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("users: refresh: %w", err)
	}
	now := s.now()
	switch {
	case !rt.RevokedAt.IsZero():
		return Session{}, ErrInvalidRefreshToken
	case !rt.UsedAt.IsZero():
		return Session{}, s.revokeReused(ctx, rt, now)
	case !now.Before(rt.ExpiresAt):
		return Session{}, ErrInvalidRefreshToken
	}
	// The conditional update settles a race between two refreshes with
	// the same token: only one marks it used, the other is a reuse.
	marked, err := s.Sessions.MarkRefreshTokenUsed(ctx, rt, now)
	if err != nil {
		return Session{}, fmt.Errorf("users: refresh: %w", err)
	}
	if !marked {
		return Session{}, s.revokeReused(ctx, rt, now)
	}
	u, err := s.Users.UserByID(ctx, rt.UserID)
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrInvalidRefreshToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("users: refresh: %w", err)
	}
	sess, err := s.issue(ctx, u, rt.FamilyID)
	if err != nil {
		return Session{}, err
	}
	// A logout (or a reuse) may have revoked the session between our
	// checks and the new token's insertion, missing the new token. The
	// revocation is recorded before the tokens are revoked, so looking
	// now catches it.
	revoked, err := s.Sessions.SessionRevoked(ctx, rt.FamilyID)
	if err != nil {
		return Session{}, fmt.Errorf("users: refresh: %w", err)
	}
	if revoked {
		if err := s.revokeSession(ctx, rt.FamilyID, now); err != nil {
			return Session{}, err
		}
		return Session{}, ErrInvalidRefreshToken
	}
	return sess, nil
}

// revokeSession revokes a refresh-token family, remembering the revocation
// as long as any of its tokens can live.
func (s *Service) revokeSession(ctx context.Context, family string, now time.Time) error {
	if err := s.Sessions.RevokeFamily(ctx, family, now, now.Add(s.cfg.RefreshTTL)); err != nil {
		return fmt.Errorf("users: revoke session: %w", err)
	}
	return nil
}

func (s *Service) revokeReused(ctx context.Context, rt RefreshToken, now time.Time) error {
	s.cfg.Logger.WarnContext(ctx, "users: refresh token reused; revoking the session",
		slog.String("user_id", rt.UserID), slog.String("session_id", rt.FamilyID))
	if err := s.revokeSession(ctx, rt.FamilyID, now); err != nil {
		return err
	}
	return ErrRefreshTokenReused
}

// Logout revokes the session the refresh token belongs to: that token and
// every other one of its family stop working. Access tokens already issued
// stay valid until they expire (AccessTTL). callerID is the authenticated
// caller, if any; a token of another user is refused as invalid. Logging
// out an already revoked session succeeds.
func (s *Service) Logout(ctx context.Context, refreshToken, callerID string) error {
	hash, err := hashRefreshToken(refreshToken)
	if err != nil {
		return err
	}
	rt, err := s.Sessions.RefreshToken(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidRefreshToken
	}
	if err != nil {
		return fmt.Errorf("users: logout: %w", err)
	}
	if callerID != "" && callerID != rt.UserID {
		return ErrInvalidRefreshToken
	}
	return s.revokeSession(ctx, rt.FamilyID, s.now())
}

// startSession opens a new session (refresh-token family) for u.
func (s *Service) startSession(ctx context.Context, u User) (Session, error) {
	family, err := newID()
	if err != nil {
		return Session{}, err
	}
	return s.issue(ctx, u, family)
}

// issue stores a new refresh token of the family and signs an access token.
func (s *Service) issue(ctx context.Context, u User, family string) (Session, error) {
	now := s.now()
	token, hash, err := newRefreshToken()
	if err != nil {
		return Session{}, err
	}
	rt := RefreshToken{Hash: hash, FamilyID: family, UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}
	if err := s.Sessions.CreateRefreshToken(ctx, rt); err != nil {
		return Session{}, fmt.Errorf("users: store refresh token: %w", err)
	}
	u = s.withRoles(u)
	access, exp, err := s.Tokens.IssueAccessToken(AccessGrant{UserID: u.ID, SessionID: family, Roles: u.Roles}, now)
	if err != nil {
		return Session{}, fmt.Errorf("users: sign access token: %w", err)
	}
	return Session{User: u, AccessToken: access, AccessExpiresAt: exp, RefreshToken: token, RefreshExpiresAt: rt.ExpiresAt}, nil
}

// newRefreshToken returns a random token and the hash it is stored under.
func newRefreshToken() (token, hash string, err error) {
	var b [refreshTokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("users: refresh token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:]), nil
}

// hashRefreshToken checks a presented refresh token's shape and returns its
// hash. The shape check keeps garbage away from the store; a malformed token
// is an invalid one (Unauthenticated), not a bad request.
func hashRefreshToken(token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != refreshTokenBytes {
		return "", ErrInvalidRefreshToken
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:]), nil
}

// PurgeExpiredSessions deletes expired refresh tokens: they can no longer
// be used, and a reuse of one proves nothing the expiry does not already
// prevent. Run it periodically (there are no TTL indexes).
func (s *Service) PurgeExpiredSessions(ctx context.Context) (int64, error) {
	n, err := s.Sessions.DeleteExpiredRefreshTokens(ctx, s.now())
	if err != nil {
		return 0, fmt.Errorf("users: purge expired sessions: %w", err)
	}
	return n, nil
}
