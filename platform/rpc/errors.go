package rpc

import "errors"

// ErrNoTarget is returned by Dial for an empty target.
var ErrNoTarget = errors.New("rpc: empty dial target")
