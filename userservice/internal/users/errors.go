package users

import (
	"errors"
	"fmt"
	"time"
)

// Domain errors. The transport maps them to status codes in one place
// (internal/grpcapi); stores return them too.
var (
	// ErrInvalidArgument: the input breaks a rule. *FieldError values say
	// which field and why, and match it with errors.Is.
	ErrInvalidArgument = errors.New("users: invalid argument")
	// ErrNotFound: no such user (or refresh token, or friendship).
	ErrNotFound = errors.New("users: not found")
	// ErrAlreadyExists: the username or email address is taken.
	ErrAlreadyExists = errors.New("users: already exists")
	// ErrUsernameTaken and ErrEmailTaken say which one; both are also
	// ErrAlreadyExists.
	ErrUsernameTaken = fmt.Errorf("%w: username taken", ErrAlreadyExists)
	ErrEmailTaken    = fmt.Errorf("%w: email address taken", ErrAlreadyExists)
	// ErrInvalidCredentials is the one answer to a wrong login or a wrong
	// password: it never says which, so it cannot reveal whether an
	// account exists.
	ErrInvalidCredentials = errors.New("users: invalid login or password")
	// ErrInvalidRefreshToken: unknown, expired, revoked or already used.
	ErrInvalidRefreshToken = errors.New("users: invalid refresh token")
	// ErrRefreshTokenReused: a refresh token was presented a second time,
	// so it has leaked; its whole family (the session) has been revoked.
	// It is also ErrInvalidRefreshToken.
	ErrRefreshTokenReused = fmt.Errorf("%w: reused, session revoked", ErrInvalidRefreshToken)
	// ErrRateLimited: too many failed logins; *RateLimitedError says for
	// how long.
	ErrRateLimited = errors.New("users: too many failed login attempts")
	// ErrPermissionDenied: the caller may not do this.
	ErrPermissionDenied = errors.New("users: permission denied")
	// ErrConflict: a concurrent change won a race the operation could not
	// settle by retrying; the caller may try again.
	ErrConflict = errors.New("users: concurrent modification")
	// ErrInvalidConfig: New was given an incomplete configuration.
	ErrInvalidConfig = errors.New("users: invalid config")
)

// FieldError is an ErrInvalidArgument about one input field.
type FieldError struct {
	// Field is the input field's name as the API spells it ("username").
	Field string
	// Reason is a short, user-presentable explanation.
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("users: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidArgument }

func invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// RateLimitedError is an ErrRateLimited with the time until the next
// attempt is allowed.
type RateLimitedError struct {
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("users: too many failed login attempts, retry in %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }
