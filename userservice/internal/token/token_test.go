package token_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice/internal/token"
	"github.com/parleyhq/parley/userservice/internal/users"
)

func writeKey(t *testing.T, dir, name string) (string, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := token.MarshalPrivateKeyPEM(priv)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, priv
}

func TestIssuedTokenClaims(t *testing.T) {
	ring, err := token.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	iss := token.NewIssuer(ring, token.IssuerConfig{})
	now := time.Date(2026, 5, 6, 7, 8, 9, 500_000_000, time.UTC)
	tok, exp, err := iss.IssueAccessToken(users.AccessGrant{UserID: "u1", SessionID: "s1", Roles: []string{"admin"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Truncate(time.Second).Add(15 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expires = %v, want %v (15 minutes)", exp, want)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS compact serialisation", tok)
	}
	var header map[string]any
	decodePart(t, parts[0], &header)
	if header["alg"] != "EdDSA" || header["kid"] != ring.SigningKeyID() || header["typ"] != "JWT" {
		t.Fatalf("header = %v", header)
	}
	var claims map[string]any
	decodePart(t, parts[1], &claims)
	for _, k := range []string{"sub", "sid", "roles", "iss", "aud", "exp", "iat", "jti"} {
		if _, ok := claims[k]; !ok {
			t.Errorf("claim %q missing from %v", k, claims)
		}
	}
	if claims["sub"] != "u1" || claims["sid"] != "s1" || claims["iss"] != "parley" {
		t.Errorf("claims = %v", claims)
	}
	if got := claims["exp"].(float64) - claims["iat"].(float64); got != 900 {
		t.Errorf("exp - iat = %v s, want 900", got)
	}
	other, _, _ := iss.IssueAccessToken(users.AccessGrant{UserID: "u1", SessionID: "s1"}, now)
	var claims2 map[string]any
	decodePart(t, strings.Split(other, ".")[1], &claims2)
	if claims["jti"] == claims2["jti"] {
		t.Error("two tokens share a jti")
	}

	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys(ring.JWKS()), Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("the platform verifier rejects an issued token: %v", err)
	}
	if p.UserID != "u1" || p.SessionID != "s1" || !p.HasRole("admin") {
		t.Fatalf("principal = %+v", p)
	}
}

func decodePart(t *testing.T, part string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func TestRotationWithKeyFiles(t *testing.T) {
	dir := t.TempDir()
	oldPath, _ := writeKey(t, dir, "old.pem")
	newPath, _ := writeKey(t, dir, "new.pem")
	now := time.Now()

	// Before the rotation only the old key exists.
	before, err := token.LoadKeyFiles([]string{oldPath})
	if err != nil {
		t.Fatal(err)
	}
	oldTok, _, err := token.NewIssuer(before, token.IssuerConfig{}).IssueAccessToken(users.AccessGrant{UserID: "u", SessionID: "s"}, now)
	if err != nil {
		t.Fatal(err)
	}
	// After it, the new key signs and both verify.
	after, err := token.LoadKeyFiles([]string{newPath, oldPath})
	if err != nil {
		t.Fatal(err)
	}
	jwks := after.JWKS()
	if len(jwks) != 2 || jwks[0].Kid != after.SigningKeyID() || jwks[1].Kid != before.SigningKeyID() {
		t.Fatalf("JWKS = %+v, want the new then the old key", jwks)
	}
	newTok, _, err := token.NewIssuer(after, token.IssuerConfig{}).IssueAccessToken(users.AccessGrant{UserID: "u", SessionID: "s"}, now)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: auth.StaticKeys(jwks)})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s token: %v", name, err)
		}
	}
}

func TestKeyDirCreatesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	// Replicas starting together agree on one key.
	var wg sync.WaitGroup
	kids := make([]string, 8)
	for i := range kids {
		wg.Go(func() {
			r, err := token.LoadOrCreateKeyDir(dir)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = r.SigningKeyID()
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k == "" || k != kids[0] {
			t.Fatalf("kids = %v, want one key", kids)
		}
	}
	info, err := os.Stat(filepath.Join(dir, token.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %o, want 600", perm)
	}
	dinfo, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := dinfo.Mode().Perm(); perm != 0o700 {
		t.Fatalf("key dir mode = %o, want 700", perm)
	}
	again, err := token.LoadOrCreateKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.SigningKeyID() != kids[0] {
		t.Fatal("a restart generated a new key instead of reusing the stored one")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("key dir holds %d files, want just the key (temporary files removed)", len(entries))
	}
}

func TestBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongType := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(wrongType, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{notPEM, wrongType} {
		if _, err := token.LoadKeyFiles([]string{p}); !errors.Is(err, token.ErrBadKey) {
			t.Errorf("LoadKeyFiles(%s) err = %v, want ErrBadKey", filepath.Base(p), err)
		}
	}
	if _, err := token.LoadKeyFiles([]string{filepath.Join(dir, "missing.pem")}); err == nil {
		t.Error("LoadKeyFiles of a missing file succeeded")
	}
	if _, err := token.NewKeyring(); !errors.Is(err, token.ErrNoKeys) {
		t.Errorf("NewKeyring() err = %v, want ErrNoKeys", err)
	}
}
