package auth

import "errors"

// Errors returned by the verifier and the key sources. Verify wraps every
// rejection of a token in ErrInvalidToken, with the reason after it; callers
// should not tell clients more than "invalid token".
var (
	// ErrInvalidToken: the token is malformed, badly signed, of the wrong
	// algorithm, expired, not yet valid, or for another issuer or audience.
	ErrInvalidToken = errors.New("auth: invalid access token")
	// ErrUnknownKey: the token names a key id the key set does not hold,
	// even after a refetch (or a refetch was not allowed yet). It is also
	// an ErrInvalidToken.
	ErrUnknownKey = errors.New("auth: unknown signing key")
	// ErrKeysUnavailable: the key set could not be fetched, so no token can
	// be verified right now. This is the verifier's fault, not the
	// caller's: the hook reports it as Unavailable, not Unauthenticated.
	ErrKeysUnavailable = errors.New("auth: verification keys unavailable")
	// ErrInvalidKey: a JSON Web Key is not a usable Ed25519 public key.
	ErrInvalidKey = errors.New("auth: invalid JSON web key")
	// ErrInvalidConfig: the verifier configuration is incomplete.
	ErrInvalidConfig = errors.New("auth: invalid verifier config")
)
