// Package token holds the user service's signing keys and signs access
// tokens: Ed25519 (EdDSA) JWTs whose `kid` header names the key, so
// verifiers pick the right key from the published key set during a
// rotation.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// KeyFileName is the key a KeyDir holds.
const KeyFileName = "jwt-signing-key.pem"

const pemType = "PRIVATE KEY"

// Keyring is the set of signing keys: the first signs new tokens, all of
// them verify (so tokens signed with the previous key stay valid during a
// rotation).
type Keyring struct {
	keys []key
}

type key struct {
	kid  string
	priv ed25519.PrivateKey
}

// NewKeyring returns a keyring of the given keys; the first signs.
func NewKeyring(keys ...ed25519.PrivateKey) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrNoKeys)
	}
	r := &Keyring{}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if len(k) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("%w: %d-byte Ed25519 private key", ErrBadKey, len(k))
		}
		kid := auth.KeyID(k.Public().(ed25519.PublicKey))
		if seen[kid] {
			continue
		}
		seen[kid] = true
		r.keys = append(r.keys, key{kid: kid, priv: k})
	}
	return r, nil
}

// GenerateKeyring returns a keyring with one new key, for a process whose
// tokens need not survive it (tests, a throwaway dev run).
func GenerateKeyring() (*Keyring, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	return NewKeyring(priv)
}

// LoadKeyFiles reads PEM (PKCS#8) Ed25519 private keys; the first file's
// key signs.
func LoadKeyFiles(paths []string) (*Keyring, error) {
	keys := make([]ed25519.PrivateKey, 0, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("token: read key: %w", err)
		}
		k, err := ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("token: key %s: %w", p, err)
		}
		keys = append(keys, k)
	}
	return NewKeyring(keys...)
}

// LoadOrCreateKeyDir loads dir/KeyFileName, creating the directory (0700)
// and a new key (0600) on first use. Replicas racing to create it agree on
// one key: the file is created exclusively and the losers read the
// winner's.
func LoadOrCreateKeyDir(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token: key dir: %w", err)
	}
	path := filepath.Join(dir, KeyFileName)
	if r, err := LoadKeyFiles([]string{path}); err == nil {
		return r, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	pemBytes, err := MarshalPrivateKeyPEM(priv)
	if err != nil {
		return nil, err
	}
	// Write to a temporary file and hard-link it into place: the link
	// fails if the key exists, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return nil, fmt.Errorf("token: create key: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // the link (if any) keeps the key
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("token: create key: %w", err)
	}
	if _, err := tmp.Write(pemBytes); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("token: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("token: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("token: write key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("token: install key: %w", err)
	}
	return LoadKeyFiles([]string{path})
}

// MarshalPrivateKeyPEM encodes a key as PEM PKCS#8, the format LoadKeyFiles
// reads (and `openssl genpkey -algorithm ed25519` writes).
func MarshalPrivateKeyPEM(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("token: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes a PEM PKCS#8 Ed25519 private key.
func ParsePrivateKeyPEM(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemType {
		return nil, fmt.Errorf("%w: want a PEM %q block", ErrBadKey, pemType)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an Ed25519 key", ErrBadKey, k)
	}
	return priv, nil
}

// JWKS returns the public keys, signing key first.
func (r *Keyring) JWKS() []auth.JWK {
	out := make([]auth.JWK, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, auth.NewJWK(k.priv.Public().(ed25519.PublicKey)))
	}
	return out
}

// SigningKeyID returns the kid of the signing key.
func (r *Keyring) SigningKeyID() string { return r.keys[0].kid }

// IssuerConfig configures an Issuer; zero values mean the defaults.
type IssuerConfig struct {
	// Issuer and Audience claims (default "parley" each).
	Issuer, Audience string
	// TTL of an access token (default 15 minutes).
	TTL time.Duration
}

// Issuer signs access tokens with a keyring's signing key.
type Issuer struct {
	ring *Keyring
	cfg  IssuerConfig
}

var _ users.TokenIssuer = (*Issuer)(nil)

// NewIssuer returns an issuer.
func NewIssuer(ring *Keyring, cfg IssuerConfig) *Issuer {
	if cfg.Issuer == "" {
		cfg.Issuer = auth.DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = auth.DefaultAudience
	}
	if cfg.TTL <= 0 {
		cfg.TTL = users.DefaultAccessTTL
	}
	return &Issuer{ring: ring, cfg: cfg}
}

// IssueAccessToken signs a token for g, valid from now for the TTL.
func (i *Issuer) IssueAccessToken(g users.AccessGrant, now time.Time) (string, time.Time, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("token: jti: %w", err)
	}
	// JWT times have one-second resolution; truncate so that expires_at
	// reported to the client is exactly the token's exp.
	now = now.Truncate(time.Second)
	exp := now.Add(i.cfg.TTL)
	claims := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   g.UserID,
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		SessionID: g.SessionID,
		Roles:     g.Roles,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	signer := i.ring.keys[0]
	t.Header["kid"] = signer.kid
	s, err := t.SignedString(signer.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	return s, exp, nil
}
