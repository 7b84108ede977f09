package presenceservice

import "errors"

// ErrNoVerifier is returned by New without Config.Verifier.
var ErrNoVerifier = errors.New("presenceservice: Config.Verifier is required")
