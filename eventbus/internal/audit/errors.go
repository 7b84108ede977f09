package audit

import (
	"errors"

	"github.com/parleyhq/parley/eventbus"
)

// Domain errors; the gRPC layer maps them to status codes in one place.
var (
	// ErrNotFound: no such event or dead letter.
	ErrNotFound = errors.New("audit: not found")
	// ErrInvalidArgument: a malformed request (page token, time range, id).
	ErrInvalidArgument = errors.New("audit: invalid argument")
)

// IsNotFound reports whether err means the thing asked for does not exist,
// whether the audit store or the dead-letter queue said so.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, eventbus.ErrDeadLetterNotFound)
}
