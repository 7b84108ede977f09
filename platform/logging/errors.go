package logging

import "errors"

// ErrUnknownLevel is returned for a log level name New does not know.
var ErrUnknownLevel = errors.New("logging: unknown level")
