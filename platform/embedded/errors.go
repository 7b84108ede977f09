package embedded

import "errors"

var (
	// ErrNoDir is returned when a backend that persists data is started
	// without a data directory.
	ErrNoDir = errors.New("embedded: data directory is required")

	// ErrNotReady is returned when a server did not become ready to accept
	// connections in time.
	ErrNotReady = errors.New("embedded: server not ready for connections")
)
