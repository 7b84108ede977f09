package notify

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Adapters return them (wrapped) and the gRPC layer maps
// them to status codes in one place.
var (
	// ErrNotFound: the notification, device or user does not exist (or is
	// not the caller's).
	ErrNotFound = errors.New("notify: not found")
	// ErrInvalidArgument: the request breaks a rule the API validation
	// cannot express (an unknown time zone, a malformed page token).
	ErrInvalidArgument = errors.New("notify: invalid argument")
	// ErrNoEmail: the user has no email address to send to.
	ErrNoEmail = errors.New("notify: user has no email address")
	// ErrUnregistered: the push service says the device token or
	// subscription is no longer valid (FCM UNREGISTERED, Web Push 404/410);
	// the device is deleted and never retried.
	ErrUnregistered = errors.New("notify: device unregistered by the push service")
	// ErrInvalidConfig: the service was assembled without a required part.
	ErrInvalidConfig = errors.New("notify: invalid configuration")
	// ErrInvalidToken: an unsubscribe token is malformed or forged.
	ErrInvalidToken = errors.New("notify: invalid unsubscribe token")
)

// RetryError is a temporary delivery failure: the job is delivered again
// later, not before After (a provider's Retry-After; zero means "use the
// queue's backoff").
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("temporary (retry after %s): %v", e.After, e.Err)
	}
	return "temporary: " + e.Err.Error()
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter is how long the queue must wait at least before redelivering.
func (e *RetryError) RetryAfter() time.Duration { return e.After }

// Temporary wraps err as a temporary failure to retry after at least
// after. Temporary(nil, _) is nil.
func Temporary(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryError{After: after, Err: err}
}

// PermanentError is a delivery failure that retrying cannot fix (a
// rejected payload, a 5xx SMTP reply): the job is dead-lettered at once.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports that the error is permanent; the job queue looks for
// this method rather than the type, so it does not depend on this package.
func (e *PermanentError) Permanent() bool { return true }

// Permanent wraps err as a permanent failure. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is marked permanent anywhere in its chain.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// RetryAfterOf returns the minimum retry delay carried by err, if any.
func RetryAfterOf(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}
