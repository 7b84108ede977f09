package chatservice

import "errors"

// ErrNoVerifier is returned by New without a token verifier: the service
// could not tell who is calling.
var ErrNoVerifier = errors.New("chatservice: Config.Verifier is required")
