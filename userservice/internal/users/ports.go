package users

import (
	"context"
	"time"
)

// UserStore keeps accounts.
type UserStore interface {
	// CreateUser stores u together with its pending event; a taken
	// username or email gives ErrUsernameTaken or ErrEmailTaken.
	CreateUser(ctx context.Context, u User, ev Event) error
	// UserByID, UserByUsername and UserByEmail give ErrNotFound when
	// there is no such user; username and email are normalised.
	UserByID(ctx context.Context, id string) (User, error)
	UserByUsername(ctx context.Context, username string) (User, error)
	UserByEmail(ctx context.Context, email string) (User, error)
	// UsersByID returns the users that exist among ids, in no order.
	UsersByID(ctx context.Context, ids []string) ([]User, error)
	// UpdateProfile applies upd (already validated) and returns the user.
	UpdateProfile(ctx context.Context, id string, upd ProfileUpdate, now time.Time) (User, error)
	// SetPasswordHash replaces the stored hash (rehash on login).
	SetPasswordHash(ctx context.Context, id, hash string, now time.Time) error
	// SearchUsers returns up to limit users whose username or SearchKey of
	// the display name starts with prefix (already a SearchKey), ordered
	// by username, with usernames after afterUsername.
	SearchUsers(ctx context.Context, prefix, afterUsername string, limit int) ([]User, error)
}

// SessionStore keeps refresh tokens.
type SessionStore interface {
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// RefreshToken returns the token with that hash, or ErrNotFound.
	RefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// MarkRefreshTokenUsed records that t was exchanged, if, and only if,
	// nobody did before; it reports whether this call did. Of two
	// concurrent refreshes with one token exactly one gets true.
	MarkRefreshTokenUsed(ctx context.Context, t RefreshToken, now time.Time) (bool, error)
	// RevokeFamily revokes every token of a family (a session), and
	// remembers the revocation until keepUntil, so that a token a
	// concurrent refresh adds to the family can be caught
	// (SessionRevoked).
	RevokeFamily(ctx context.Context, familyID string, now, keepUntil time.Time) error
	// SessionRevoked reports whether RevokeFamily was called for the
	// family.
	SessionRevoked(ctx context.Context, familyID string) (bool, error)
	// DeleteExpiredRefreshTokens removes the tokens (and the records
	// kept about them) that expired before the given time and returns
	// how many tokens it removed.
	DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int64, error)
}

// FriendStore keeps friendships.
type FriendStore interface {
	// CreateFriendship stores f with its pending event; ErrAlreadyExists
	// if the pair already has a document.
	CreateFriendship(ctx context.Context, f Friendship, ev Event) error
	// Friendship returns the pair's document or ErrNotFound.
	Friendship(ctx context.Context, id string) (Friendship, error)
	// UpdateFriendship replaces the pair's state with f (whose Version is
	// the new one) and adds ev, if the stored Version is still
	// expectVersion; it reports whether it did.
	UpdateFriendship(ctx context.Context, f Friendship, expectVersion int64, ev Event) (bool, error)
	// ListFriendships returns up to limit friendships of userID that userID
	// sees in state (any non-removed one if state is ""), ordered by ID,
	// with IDs after afterID.
	ListFriendships(ctx context.Context, userID string, state FriendState, afterID string, limit int) ([]Friendship, error)
}

// Outbox finds and clears the pending events stored with the documents.
type Outbox interface {
	// PendingEvents returns up to limit pending events that occurred
	// before the given time.
	PendingEvents(ctx context.Context, before time.Time, limit int) ([]Event, error)
	// MarkPublished removes ev from its document's pending events.
	MarkPublished(ctx context.Context, ev Event) error
}

// EventPublisher puts events on the bus; publishing an event twice must
// store it once (the event id de-duplicates).
type EventPublisher interface {
	Publish(ctx context.Context, ev Event) error
}

// PasswordHasher hashes and checks passwords (argon2id in production).
type PasswordHasher interface {
	Hash(ctx context.Context, password string) (string, error)
	// Verify reports whether password matches encoded, in time that does
	// not depend on where they differ.
	Verify(ctx context.Context, password, encoded string) (bool, error)
	// NeedsRehash reports whether encoded was made with other parameters
	// than the current ones.
	NeedsRehash(encoded string) bool
}

// AccessGrant is what an access token says about its bearer.
type AccessGrant struct {
	UserID    string
	SessionID string
	Roles     []string
}

// TokenIssuer signs access tokens.
type TokenIssuer interface {
	// IssueAccessToken returns a signed token for g, issued at now, and
	// its expiry.
	IssueAccessToken(g AccessGrant, now time.Time) (token string, expiresAt time.Time, err error)
}

// LoginAttempt identifies a login attempt for rate limiting: the
// normalised login (username or email) and the client's IP address.
type LoginAttempt struct {
	Login    string
	ClientIP string
}

// LoginLimiter throttles failed logins per account and per client IP.
type LoginLimiter interface {
	// Wait returns how long the attempt must wait; 0 means go ahead.
	Wait(ctx context.Context, a LoginAttempt) (time.Duration, error)
	// Failed records a failed attempt and returns the lockout it causes
	// (0 for none yet).
	Failed(ctx context.Context, a LoginAttempt) (time.Duration, error)
	// Succeeded clears the account's failures.
	Succeeded(ctx context.Context, a LoginAttempt) error
}

// Clock returns the current time.
type Clock func() time.Time
