package password_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/userservice/internal/password"
)

// fast parameters keep the functional tests quick; TestOWASPParams pins
// the production ones.
var fast = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}

func TestOWASPParams(t *testing.T) {
	p := password.OWASP()
	// OWASP Password Storage Cheat Sheet, argon2id: m=19456 KiB (19 MiB),
	// t=2, p=1 at least.
	if p.Memory < 19*1024 || p.Iterations < 2 || p.Parallelism < 1 {
		t.Fatalf("OWASP() = %+v, want at least m=19456, t=2, p=1", p)
	}
	if p.SaltLen < 16 || p.KeyLen < 32 {
		t.Fatalf("OWASP() salt/key = %d/%d bytes, want at least 16/32", p.SaltLen, p.KeyLen)
	}
	h, err := password.NewHasher(p, 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", enc)
	}
}

func TestHashAndVerify(t *testing.T) {
	h, err := password.NewHasher(fast, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, "s3cret-pässword")
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := h.Hash(ctx, "s3cret-pässword")
	if err != nil {
		t.Fatal(err)
	}
	if enc == enc2 {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	tests := []struct {
		name, password string
		want           bool
	}{
		{"right", "s3cret-pässword", true},
		{"wrong", "s3cret-password", false},
		{"empty", "", false},
		{"prefix", "s3cret", false},
		{"longer", "s3cret-pässword!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Verify(ctx, tt.password, enc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Verify(%q) = %v, want %v", tt.password, got, tt.want)
			}
		})
	}
}

func TestVerifyUsesTheHashParameters(t *testing.T) {
	ctx := context.Background()
	old, err := password.NewHasher(password.Params{Memory: 32, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := old.Hash(ctx, "password1")
	if err != nil {
		t.Fatal(err)
	}
	cur, err := password.NewHasher(fast, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := cur.Verify(ctx, "password1", enc); err != nil || !ok {
		t.Fatalf("a hash made with older parameters no longer verifies: %v %v", ok, err)
	}
	if !cur.NeedsRehash(enc) {
		t.Fatal("NeedsRehash = false for a hash made with other parameters")
	}
	fresh, _ := cur.Hash(ctx, "password1")
	if cur.NeedsRehash(fresh) {
		t.Fatal("NeedsRehash = true for a current hash")
	}
}

func TestMalformedHashes(t *testing.T) {
	h, err := password.NewHasher(fast, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA",
		"$argon2id$v=19$m=x,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		// Absurd costs from a planted hash are refused, not computed.
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=100000,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
	} {
		if _, err := h.Verify(context.Background(), "password", enc); !errors.Is(err, password.ErrMalformedHash) {
			t.Errorf("Verify(%q) err = %v, want ErrMalformedHash", enc, err)
		}
	}
}

func TestNewHasherRejectsBadParams(t *testing.T) {
	for _, p := range []password.Params{
		{},
		{Memory: 64, Iterations: 0, Parallelism: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Iterations: 1, Parallelism: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 4},
	} {
		if _, err := password.NewHasher(p, 0); !errors.Is(err, password.ErrInvalidParams) {
			t.Errorf("NewHasher(%+v) err = %v, want ErrInvalidParams", p, err)
		}
	}
}

func TestConcurrencyLimitHonoursContext(t *testing.T) {
	h, err := password.NewHasher(password.OWASP(), 1)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), "password1")
	if err != nil {
		t.Fatal(err)
	}
	// A caller that has gone away gets no hash.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Verify(ctx, "password1", enc); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with a canceled context: err = %v, want Canceled", err)
	}
	// With one slot, four concurrent 19 MiB hashes run one at a time, so
	// callers with a 1ms deadline cannot all get through: the waiting ones
	// give up instead of queueing forever.
	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := h.Verify(dctx, "password1", enc)
			errs <- err
		}()
	}
	var expired int
	for range 4 {
		if err := <-errs; errors.Is(err, context.DeadlineExceeded) {
			expired++
		} else if err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if expired == 0 {
		t.Fatal("four concurrent hashes on one slot all beat a 1ms deadline")
	}
}

// BenchmarkHashOWASP and BenchmarkVerifyOWASP measure the deliberate cost
// of one password hash with the production parameters: the floor of a
// login's latency.
func BenchmarkHashOWASP(b *testing.B) {
	h, err := password.NewHasher(password.OWASP(), 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyOWASP(b *testing.B) {
	h, err := password.NewHasher(password.OWASP(), 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := h.Verify(ctx, "correct horse battery staple", enc); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
