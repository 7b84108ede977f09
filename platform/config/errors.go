package config

import "errors"

// ErrBadEnv is returned by Parse when an environment variable holds a value
// its flag does not accept.
var ErrBadEnv = errors.New("config: invalid environment variable")
