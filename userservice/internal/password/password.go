// Package password hashes passwords with argon2id and checks them in
// constant time. Hashes are stored in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash), which carries its own
// parameters, so raising the cost later keeps old hashes verifiable.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Iterations (time cost).
	Iterations uint32
	// Parallelism (lanes).
	Parallelism uint8
	// SaltLen and KeyLen in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// OWASP returns the OWASP Password Storage Cheat Sheet's argon2id
// configuration: 19 MiB of memory, 2 iterations, 1 lane (with a 128-bit
// salt and a 256-bit hash). This is the production default.
func OWASP() Params {
	return Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

// Bounds on parameters read from a stored hash: a corrupted or planted hash
// must not make one verification eat gigabytes or minutes.
const (
	maxMemory       = 1 << 20 // 1 GiB in KiB
	maxIterations   = 64
	minKeyLen       = 16
	maxKeyLen       = 128
	minSaltLen      = 8
	maxSaltLen      = 64
	phcPrefix       = "$argon2id$v=19$"
	defaultSlotsPer = 2
)

// Hasher hashes and verifies passwords. Each hash holds Params.Memory KiB
// while it runs, so at most MaxConcurrent run at once; the others wait (or
// give up when their context ends). It is safe for concurrent use.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// NewHasher returns a hasher with params; maxConcurrent <= 0 means two per
// CPU.
func NewHasher(params Params, maxConcurrent int) (*Hasher, error) {
	if params.Memory < 8*uint32(params.Parallelism) || params.Memory > maxMemory ||
		params.Iterations < 1 || params.Iterations > maxIterations || params.Parallelism < 1 ||
		params.SaltLen < minSaltLen || params.SaltLen > maxSaltLen ||
		params.KeyLen < minKeyLen || params.KeyLen > maxKeyLen {
		return nil, fmt.Errorf("%w: %+v", ErrInvalidParams, params)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = defaultSlotsPer * runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: params, slots: make(chan struct{}, maxConcurrent)}, nil
}

// Params returns the parameters new hashes are made with.
func (h *Hasher) Params() Params { return h.params }

// Hash returns the encoded argon2id hash of password with a fresh salt.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Iterations, h.params.Memory, h.params.Parallelism, h.params.KeyLen)
	h.release()
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches encoded. The comparison takes
// the same time wherever the hashes differ.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLen)
	h.release()
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters than
// the hasher's (or cannot be read).
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return true
	}
	return p.Memory != h.params.Memory || p.Iterations != h.params.Iterations ||
		p.Parallelism != h.params.Parallelism || uint32(len(salt)) != h.params.SaltLen ||
		uint32(len(key)) != h.params.KeyLen
}

func (h *Hasher) acquire(ctx context.Context) error {
	// A caller that has gone away gets no hash, even if a slot is free
	// (select would pick at random between a free slot and a done ctx).
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password: waiting to hash: %w", err)
	}
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password: waiting to hash: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.Memory, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

func decode(encoded string) (Params, []byte, []byte, error) {
	rest, ok := strings.CutPrefix(encoded, phcPrefix)
	if !ok {
		return Params{}, nil, nil, fmt.Errorf("%w: not an argon2id v19 hash", ErrMalformedHash)
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return Params{}, nil, nil, fmt.Errorf("%w: want params$salt$hash", ErrMalformedHash)
	}
	var p Params
	if _, err := fmt.Sscanf(parts[0], "m=%d,t=%d,p=%d", &p.Memory, &p.Iterations, &p.Parallelism); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: params %q: %w", ErrMalformedHash, parts[0], err)
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: salt: %w", ErrMalformedHash, err)
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: hash: %w", ErrMalformedHash, err)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxMemory || p.Iterations < 1 || p.Iterations > maxIterations ||
		p.Parallelism < 1 || p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen || p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen {
		return Params{}, nil, nil, fmt.Errorf("%w: parameters out of bounds", ErrMalformedHash)
	}
	return p, salt, key, nil
}
