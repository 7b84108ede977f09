package store

import "errors"

// Errors of the storage adapters.
var (
	// ErrRedis wraps a failed Redis call.
	ErrRedis = errors.New("redis")
	// ErrBadReply is a script reply that does not have the expected shape.
	ErrBadReply = errors.New("unexpected redis reply")
	// ErrMongo wraps a failed MongoDB call.
	ErrMongo = errors.New("mongodb")
)

// ErrInconsistent is returned by RedisState.Verify when keys contradict
// each other.
var ErrInconsistent = errors.New("presence state inconsistent")
