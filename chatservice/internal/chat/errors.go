package chat

import "errors"

// Errors returned (wrapped, with details) by Service. The transport maps each
// to a status code in one place; match them with errors.Is.
var (
	// ErrInvalidArgument reports a request that breaks a rule on its own
	// (blank content, a bad page token, a seq range that makes no sense).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound reports a channel, member, message or attachment that does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermissionDenied reports a caller who may not do what was asked:
	// a non-member reading a group channel, a member changing roles.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrFailedPrecondition reports a request that is valid but cannot apply
	// to the current state (adding a third user to a direct channel, the last
	// owner demoting themself).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrTooLarge reports an attachment over the configured size limit.
	ErrTooLarge = errors.New("attachment too large")
	// ErrUnsupportedMedia reports an attachment whose sniffed content type
	// is not on the allowlist.
	ErrUnsupportedMedia = errors.New("content type not allowed")
	// ErrAborted reports a write that lost too many races in a row (seq
	// allocation under extreme contention); the caller may retry.
	ErrAborted = errors.New("aborted after conflicting writes")
)

// Errors the store adapters return so the domain can react to what happened
// without knowing the database.
var (
	// ErrDuplicate reports a write rejected by a unique index or _id.
	ErrDuplicate = errors.New("duplicate key")
	// ErrMessageExists reports an insert of a message whose id is already
	// stored: a retried send with the same client_msg_id.
	ErrMessageExists = errors.New("message already stored")
	// ErrSeqTaken reports an insert whose seq another message of the channel
	// already holds: the counter handed it out twice or went backwards.
	ErrSeqTaken = errors.New("seq already taken")
)
