package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// JWK field values for the only key type Parley uses (RFC 8037).
const (
	KeyTypeOKP     = "OKP"
	CurveEd25519   = "Ed25519"
	AlgorithmEdDSA = "EdDSA"
	KeyUseSig      = "sig"
)

// keyIDLen is the length of a key id: the first 16 characters (96 bits) of
// the RFC 7638 thumbprint, plenty to tell a handful of keys apart while
// keeping the token header short.
const keyIDLen = 16

// JWK is a public signing key in RFC 7517 form; Parley only publishes and
// accepts Ed25519 keys (kty "OKP", crv "Ed25519", RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	// X is the public key, base64url without padding.
	X   string `json:"x"`
	Kid string `json:"kid"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKSet is a JSON Web Key Set as served at /.well-known/jwks.json.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// NewJWK describes an Ed25519 public key, with its KeyID as kid.
func NewJWK(pub ed25519.PublicKey) JWK {
	return JWK{
		Kty: KeyTypeOKP,
		Crv: CurveEd25519,
		X:   base64.RawURLEncoding.EncodeToString(pub),
		Kid: KeyID(pub),
		Use: KeyUseSig,
		Alg: AlgorithmEdDSA,
	}
}

// KeyID derives the key id of an Ed25519 public key from its RFC 7638
// thumbprint, so every replica that loads the same key names it the same
// way without any coordination.
func KeyID(pub ed25519.PublicKey) string {
	// RFC 7638 section 3.2: the required members in lexicographic order,
	// no white space.
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:keyIDLen]
}

// PublicKey returns the Ed25519 key the JWK describes, refusing any other
// key type, curve or algorithm.
func (k JWK) PublicKey() (ed25519.PublicKey, error) {
	if k.Kty != KeyTypeOKP || k.Crv != CurveEd25519 {
		return nil, fmt.Errorf("%w: kid %q: key type %q curve %q, want OKP Ed25519", ErrInvalidKey, k.Kid, k.Kty, k.Crv)
	}
	if k.Alg != "" && k.Alg != AlgorithmEdDSA {
		return nil, fmt.Errorf("%w: kid %q: algorithm %q, want EdDSA", ErrInvalidKey, k.Kid, k.Alg)
	}
	if k.Use != "" && k.Use != KeyUseSig {
		return nil, fmt.Errorf("%w: kid %q: use %q, want sig", ErrInvalidKey, k.Kid, k.Use)
	}
	if k.Kid == "" {
		return nil, fmt.Errorf("%w: empty kid", ErrInvalidKey)
	}
	raw, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil {
		return nil, fmt.Errorf("%w: kid %q: x: %w", ErrInvalidKey, k.Kid, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: kid %q: x is %d bytes, want %d", ErrInvalidKey, k.Kid, len(raw), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
