package admin

import "errors"

// Errors of the admin package.
var (
	// ErrConfig: the collector configuration is incomplete or invalid.
	ErrConfig = errors.New("admin: invalid collector config")
)
