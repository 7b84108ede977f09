package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/platform/auth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.Set(t)
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// countingSource serves a mutable key set and counts fetches.
type countingSource struct {
	mu      sync.Mutex
	keys    []auth.JWK
	err     error
	fetches atomic.Int32
}

func (s *countingSource) FetchKeys(context.Context) ([]auth.JWK, error) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return append([]auth.JWK(nil), s.keys...), nil
}

func (s *countingSource) set(keys []auth.JWK, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.err = keys, err
}

func newKey(t testing.TB) (ed25519.PrivateKey, auth.JWK) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, auth.NewJWK(pub)
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func claimsAt(now time.Time) auth.Claims {
	return auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "parley",
			Subject:   "user-1",
			Audience:  jwt.ClaimStrings{"parley"},
			ExpiresAt: jwt.NewNumericDate(now.Add(15 * time.Minute)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        "jti-1",
		},
		SessionID: "session-1",
		Roles:     []string{"admin"},
	}
}

func sign(t testing.TB, priv ed25519.PrivateKey, kid string, c auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestVerify(t *testing.T) {
	priv, jwk := newKey(t)
	otherPriv, _ := newKey(t)
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys{jwk}, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, priv, jwk.Kid, claimsAt(epoch))
	parts := strings.Split(good, ".")

	// alg none: a valid header and claims, no signature.
	noneTok := b64(map[string]string{"alg": "none", "typ": "JWT", "kid": jwk.Kid}) + "." + parts[1] + "."
	// HS256 keyed with the public key bytes: the classic algorithm
	// confusion attack.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsAt(epoch))
	hs.Header["kid"] = jwk.Kid
	pub := priv.Public().(ed25519.PublicKey)
	hsTok, err := hs.SignedString([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	hsXTok, err := hs.SignedString([]byte(jwk.X))
	if err != nil {
		t.Fatal(err)
	}
	// Tampered: change the claims, keep the signature.
	tampered := claimsAt(epoch)
	tampered.Subject = "user-2"
	tamperedTok := parts[0] + "." + b64(tampered) + "." + parts[2]
	// Flip one bit of the signature.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	badSigTok := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	withClaims := func(f func(*auth.Claims)) string {
		c := claimsAt(epoch)
		f(&c)
		return sign(t, priv, jwk.Kid, c)
	}

	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"valid", good, nil},
		{"tampered claims", tamperedTok, auth.ErrInvalidToken},
		{"tampered signature", badSigTok, auth.ErrInvalidToken},
		{"alg none", noneTok, auth.ErrInvalidToken},
		{"HS256 keyed with the public key", hsTok, auth.ErrInvalidToken},
		{"HS256 keyed with the JWK x", hsXTok, auth.ErrInvalidToken},
		{"signed by another key with our kid", sign(t, otherPriv, jwk.Kid, claimsAt(epoch)), auth.ErrInvalidToken},
		{"expired", withClaims(func(c *auth.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(epoch.Add(-time.Minute))
			c.IssuedAt = jwt.NewNumericDate(epoch.Add(-16 * time.Minute))
		}), auth.ErrInvalidToken},
		{"no exp", withClaims(func(c *auth.Claims) { c.ExpiresAt = nil }), auth.ErrInvalidToken},
		{"issued in the future", withClaims(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(epoch.Add(time.Hour)) }), auth.ErrInvalidToken},
		{"not yet valid", withClaims(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(epoch.Add(time.Hour)) }), auth.ErrInvalidToken},
		{"wrong audience", withClaims(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"someone-else"} }), auth.ErrInvalidToken},
		{"no audience", withClaims(func(c *auth.Claims) { c.Audience = nil }), auth.ErrInvalidToken},
		{"wrong issuer", withClaims(func(c *auth.Claims) { c.Issuer = "evil" }), auth.ErrInvalidToken},
		{"no subject", withClaims(func(c *auth.Claims) { c.Subject = "" }), auth.ErrInvalidToken},
		{"no session", withClaims(func(c *auth.Claims) { c.SessionID = "" }), auth.ErrInvalidToken},
		{"unknown kid", sign(t, otherPriv, "not-a-key", claimsAt(epoch)), auth.ErrUnknownKey},
		{"no kid", sign(t, priv, "", claimsAt(epoch)), auth.ErrUnknownKey},
		{"garbage", "not.a.token", auth.ErrInvalidToken},
		{"empty", "", auth.ErrInvalidToken},
		{"too long", good + strings.Repeat("A", auth.MaxTokenBytes), auth.ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				want := auth.Principal{UserID: "user-1", SessionID: "session-1", Roles: []string{"admin"}}
				if p.UserID != want.UserID || p.SessionID != want.SessionID || !p.HasRole("admin") || len(p.Roles) != 1 {
					t.Fatalf("principal = %+v, want %+v", p, want)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify error %v is not ErrInvalidToken", err)
			}
		})
	}
}

func TestVerifyLeewayAndExpiry(t *testing.T) {
	priv, jwk := newKey(t)
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys{jwk}, Clock: clk.Now, Leeway: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, priv, jwk.Kid, claimsAt(epoch))
	for _, tc := range []struct {
		at time.Duration
		ok bool
	}{
		{0, true},
		{15*time.Minute - time.Second, true},
		{15*time.Minute + 5*time.Second, true}, // within the leeway
		{15*time.Minute + 11*time.Second, false},
	} {
		clk.Set(epoch.Add(tc.at))
		_, err := v.Verify(context.Background(), tok)
		if (err == nil) != tc.ok {
			t.Errorf("at +%s: err = %v, want ok=%v", tc.at, err, tc.ok)
		}
	}
}

func TestServiceRoleIsStripped(t *testing.T) {
	priv, jwk := newKey(t)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys{jwk}, Clock: newClock(epoch).Now})
	if err != nil {
		t.Fatal(err)
	}
	c := claimsAt(epoch)
	c.Roles = []string{auth.RoleService, auth.RoleAdmin}
	p, err := v.Verify(context.Background(), sign(t, priv, jwk.Kid, c))
	if err != nil {
		t.Fatal(err)
	}
	if p.IsService() || !p.HasRole(auth.RoleAdmin) {
		t.Fatalf("roles = %v, want admin only", p.Roles)
	}
}

func TestUnknownKidRefetchesOnceWithinInterval(t *testing.T) {
	oldPriv, oldJWK := newKey(t)
	newPriv, newJWK := newKey(t)
	src := &countingSource{keys: []auth.JWK{oldJWK}}
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: src, Clock: clk.Now, MinRefetchInterval: time.Minute, RefreshInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, oldPriv, oldJWK.Kid, claimsAt(epoch))); err != nil {
		t.Fatalf("old key: %v", err)
	}
	if got := src.fetches.Load(); got != 1 {
		t.Fatalf("fetches after first verify = %d, want 1", got)
	}

	// The user service rotates: the new key appears in the key set. The
	// first token naming it triggers a refetch (the last fetch was long
	// enough ago).
	clk.Advance(2 * time.Minute)
	src.set([]auth.JWK{newJWK, oldJWK}, nil)
	if _, err := v.Verify(ctx, sign(t, newPriv, newJWK.Kid, claimsAt(clk.Now()))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if got := src.fetches.Load(); got != 2 {
		t.Fatalf("fetches after rotation = %d, want 2", got)
	}

	// A flood of tokens with made-up kids, concurrently, causes at most
	// one more fetch within MinRefetchInterval.
	garbagePriv, _ := newKey(t)
	clk.Advance(2 * time.Minute)
	garbage := make([]string, 200)
	for i := range garbage {
		garbage[i] = sign(t, garbagePriv, "kid-"+string(rune('a'+i%26)), claimsAt(clk.Now()))
	}
	var wg sync.WaitGroup
	for _, tok := range garbage {
		wg.Go(func() {
			if _, err := v.Verify(ctx, tok); !errors.Is(err, auth.ErrUnknownKey) {
				t.Errorf("garbage kid: err = %v, want ErrUnknownKey", err)
			}
		})
	}
	wg.Wait()
	if got := src.fetches.Load(); got != 3 {
		t.Fatalf("fetches after 200 garbage kids = %d, want 3 (one refetch)", got)
	}
	// Known keys keep working without fetching.
	if _, err := v.Verify(ctx, sign(t, oldPriv, oldJWK.Kid, claimsAt(clk.Now()))); err != nil {
		t.Fatalf("old key after flood: %v", err)
	}
	if got := src.fetches.Load(); got != 3 {
		t.Fatalf("fetches = %d, want 3", got)
	}
}

func TestStaleKeySetIsRefreshedAndSurvivesOutage(t *testing.T) {
	priv, jwk := newKey(t)
	otherPriv, otherJWK := newKey(t)
	src := &countingSource{keys: []auth.JWK{jwk, otherJWK}}
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: src, Clock: clk.Now, RefreshInterval: 5 * time.Minute, MinRefetchInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, priv, jwk.Kid, claimsAt(clk.Now()))); err != nil {
		t.Fatal(err)
	}

	// The user service is down when the set goes stale: the cached keys
	// keep verifying.
	clk.Advance(6 * time.Minute)
	src.set(nil, errors.New("connection refused"))
	if _, err := v.Verify(ctx, sign(t, priv, jwk.Kid, claimsAt(clk.Now()))); err != nil {
		t.Fatalf("during outage: %v", err)
	}
	if got := src.fetches.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (one failed refresh)", got)
	}

	// Back up, with otherJWK removed: after the next refresh the removed
	// key stops verifying.
	clk.Advance(2 * time.Second)
	src.set([]auth.JWK{jwk}, nil)
	if _, err := v.Verify(ctx, sign(t, priv, jwk.Kid, claimsAt(clk.Now()))); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, sign(t, otherPriv, otherJWK.Kid, claimsAt(clk.Now()))); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("removed key: err = %v, want ErrUnknownKey", err)
	}
}

func TestKeysUnavailable(t *testing.T) {
	priv, jwk := newKey(t)
	src := &countingSource{err: errors.New("user service down")}
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: src, Clock: clk.Now, MinRefetchInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, priv, jwk.Kid, claimsAt(epoch))
	for range 5 {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, auth.ErrKeysUnavailable) {
			t.Fatalf("err = %v, want ErrKeysUnavailable", err)
		}
	}
	if got := src.fetches.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1: failures must be throttled too", got)
	}
	// It recovers once the source does and the interval has passed.
	src.set([]auth.JWK{jwk}, nil)
	clk.Advance(11 * time.Second)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestKeySetWithOnlyUnusableKeys(t *testing.T) {
	priv, jwk := newKey(t)
	bad := jwk
	bad.Kty = "RSA"
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys{bad}, Clock: newClock(epoch).Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, priv, jwk.Kid, claimsAt(epoch))); !errors.Is(err, auth.ErrKeysUnavailable) {
		t.Fatalf("err = %v, want ErrKeysUnavailable", err)
	}
}

func TestNewVerifierNeedsKeySource(t *testing.T) {
	if _, err := auth.NewVerifier(auth.VerifierConfig{}); !errors.Is(err, auth.ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	priv, jwk := newKey(t)
	_, otherJWK := newKey(t)
	src := &countingSource{keys: []auth.JWK{jwk, otherJWK}}
	clk := newClock(epoch)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: src, Clock: clk.Now, Leeway: time.Second, MinRefetchInterval: time.Second, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := sign(t, priv, jwk.Kid, claimsAt(epoch))
	p1, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	p1.Roles[0] = "mutated"
	p2, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Roles[0] != "admin" || p2.UserID != "user-1" {
		t.Fatalf("cached principal = %+v: a caller changed the cache", p2)
	}

	// The cache holds at most CacheSize tokens and keeps working when full.
	for i := range 5 {
		c := claimsAt(epoch)
		c.ID = fmt.Sprint("jti-", i)
		if _, err := v.Verify(ctx, sign(t, priv, jwk.Kid, c)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}

	// Expiry is checked on every hit.
	clk.Advance(15*time.Minute + 2*time.Second)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("cached token after expiry: err = %v", err)
	}

	// A key removed from the key set stops its cached tokens.
	tok2 := sign(t, priv, jwk.Kid, claimsAt(clk.Now()))
	if _, err := v.Verify(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	src.set([]auth.JWK{otherJWK}, nil)
	clk.Advance(2 * time.Second)
	garbage, _ := newKey(t)
	_, _ = v.Verify(ctx, sign(t, garbage, "unknown", claimsAt(clk.Now()))) // triggers the refetch
	if _, err := v.Verify(ctx, tok2); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("cached token of a removed key: err = %v, want ErrUnknownKey", err)
	}
}

// BenchmarkVerify measures the full verification of a token (signature,
// claims, cached key) with the verified-token cache off; run with -cpu 1
// for the per-core figure.
func BenchmarkVerify(b *testing.B) {
	benchmarkVerify(b, -1)
}

// BenchmarkVerifyCached measures a token seen before (the usual case: a
// client presents the same token on every request until it expires).
func BenchmarkVerifyCached(b *testing.B) {
	benchmarkVerify(b, 0)
}

func benchmarkVerify(b *testing.B, cacheSize int) {
	priv, jwk := newKey(b)
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys{jwk}, CacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	tok := sign(b, priv, jwk.Kid, claimsAt(time.Now()))
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "verifies/cpu-s")
	}
}
