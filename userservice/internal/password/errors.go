package password

import "errors"

var (
	// ErrInvalidParams: NewHasher was given unusable cost parameters.
	ErrInvalidParams = errors.New("password: invalid argon2id parameters")
	// ErrMalformedHash: a stored hash cannot be parsed, or its parameters
	// are outside the accepted bounds.
	ErrMalformedHash = errors.New("password: malformed hash")
)
