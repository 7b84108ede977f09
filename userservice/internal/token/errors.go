package token

import "errors"

var (
	// ErrNoKeys: a keyring needs at least one key.
	ErrNoKeys = errors.New("token: no signing keys")
	// ErrBadKey: a key file is not a PEM PKCS#8 Ed25519 private key.
	ErrBadKey = errors.New("token: not an Ed25519 private key")
)
