package presence

import "errors"

// Errors of the presence rules; the transport maps them to status codes.
var (
	// ErrInvalidArgument is a malformed request (empty ids, bad sizes).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrInvalidStatus is a status other than online, away, busy, offline.
	ErrInvalidStatus = errors.New("invalid status")
	// ErrInvalidPageToken is a page token this service did not issue for
	// the same query.
	ErrInvalidPageToken = errors.New("invalid page token")
	// ErrForbidden is a caller that may not do this (e.g. a service
	// setting a status, or a channel the caller cannot see).
	ErrForbidden = errors.New("forbidden")
	// ErrChannelNotFound is an unknown channel.
	ErrChannelNotFound = errors.New("channel not found")
	// ErrScopeUnavailable is a scope (friends, channel members) whose
	// source service is not configured.
	ErrScopeUnavailable = errors.New("scope not available")
	// ErrScopeTooLarge is a resolved user set above the configured limit.
	ErrScopeTooLarge = errors.New("scope too large")
	// ErrUpstream is a failure of a service asked on the caller's behalf.
	ErrUpstream = errors.New("upstream service failed")
	// ErrSlowSubscriber ends a presence stream whose reader fell behind,
	// so changes were lost; the client should subscribe again.
	ErrSlowSubscriber = errors.New("presence stream reader too slow")
)
