package userservice_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice"
)

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestAccessTokenAttacks sends forged and broken access tokens to an
// authenticated method: every one is Unauthenticated.
func TestAccessTokenAttacks(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	reg := h.register(t, "victim")
	uid := reg.GetUser().GetId()
	good := reg.GetAccessToken()
	parts := strings.Split(good, ".")

	var claims map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	now := h.clock.Now()
	forge := func(mod func(*auth.Claims), key ed25519.PrivateKey, kid string) string {
		c := auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: "parley", Subject: uid, Audience: jwt.ClaimStrings{"parley"},
				ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)), IssuedAt: jwt.NewNumericDate(now), ID: "forged",
			},
			SessionID: claims["sid"].(string),
		}
		mod(&c)
		tk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tk.Header["kid"] = kid
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	strangerKid := auth.KeyID(strangerKey.Public().(ed25519.PublicKey))

	// Tampered: claims of another user under the victim's signature.
	evil := claims
	evil["sub"] = "someone-else"
	evil["roles"] = []string{"admin"}
	tampered := parts[0] + "." + b64(evil) + "." + parts[2]
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)-1] ^= 0x01
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	none := b64(map[string]string{"alg": "none", "typ": "JWT", "kid": h.kid}) + "." + parts[1] + "."
	// HS256 keyed with the service's public key, which anyone can fetch
	// from the JWKS.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims))
	hs.Header["kid"] = h.kid
	hsTok, err := hs.SignedString([]byte(h.signer.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"control: the real token", good, codes.OK},
		{"control: forged with the real key", forge(func(*auth.Claims) {}, h.signer, h.kid), codes.OK},
		{"tampered claims", tampered, codes.Unauthenticated},
		{"tampered signature", badSig, codes.Unauthenticated},
		{"alg none", none, codes.Unauthenticated},
		{"HS256 signed with the public key", hsTok, codes.Unauthenticated},
		{"expired", forge(func(c *auth.Claims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-time.Hour))
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-45 * time.Minute))
		}, h.signer, h.kid), codes.Unauthenticated},
		{"wrong audience", forge(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"another-app"} }, h.signer, h.kid), codes.Unauthenticated},
		{"wrong issuer", forge(func(c *auth.Claims) { c.Issuer = "evil" }, h.signer, h.kid), codes.Unauthenticated},
		{"unknown kid", forge(func(*auth.Claims) {}, strangerKey, strangerKid), codes.Unauthenticated},
		{"stranger's key with our kid", forge(func(*auth.Claims) {}, strangerKey, h.kid), codes.Unauthenticated},
		{"empty", "", codes.Unauthenticated},
		{"garbage", "garbage", codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ctx
			if tt.token != "" {
				c = bearer(ctx, tt.token)
			}
			resp, err := h.client.GetProfile(c, &userv1.GetProfileRequest{})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
			if err == nil && resp.GetUser().GetId() != uid {
				t.Fatalf("profile of %s, want %s", resp.GetUser().GetId(), uid)
			}
		})
	}
}

// TestRefreshReuseRevokesTheFamily: replaying a used refresh token revokes
// the whole session, including the token that replaced it.
func TestRefreshReuseRevokesTheFamily(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	reg := h.register(t, "rita")
	r1, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: reg.GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	if r1.GetRefreshToken() == reg.GetRefreshToken() || r1.GetAccessToken() == "" || r1.GetUser().GetEmail() == "" {
		t.Fatalf("refresh = %v", r1)
	}
	r2, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: r1.GetRefreshToken()})
	if err != nil {
		t.Fatal(err)
	}
	// The attacker replays the first token.
	if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: reg.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("replay: %v, want Unauthenticated", err)
	}
	// The legitimate holder's current token is dead too.
	if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: r2.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("current token after replay: %v, want Unauthenticated", err)
	}
	// Other sessions survive.
	other, err := h.client.Login(ctx, &userv1.LoginRequest{Login: "rita", Password: "password-rita"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: other.GetRefreshToken()}); err != nil {
		t.Fatalf("another session: %v", err)
	}
	for _, bad := range []string{"x", strings.Repeat("A", 43), `{"$gt": ""}`} {
		if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: bad}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refresh with %q: %v, want Unauthenticated", bad, err)
		}
	}
}

// TestLogoutAndTheStolenAccessToken documents the token model: logout
// revokes the refresh token at once, but an access token already issued
// (say, stolen) keeps working until it expires, at most AccessTTL (15
// minutes) later. Access tokens are verified offline by every service, so
// nothing can recall them; they are short-lived instead.
func TestLogoutAndTheStolenAccessToken(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	reg := h.register(t, "sven")
	stolen := reg.GetAccessToken()

	// Logout needs no access token: the refresh token is the authority.
	if _, err := h.client.Logout(ctx, &userv1.LogoutRequest{RefreshToken: reg.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: reg.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("refresh after logout: %v, want Unauthenticated", err)
	}
	if _, err := h.client.Logout(ctx, &userv1.LogoutRequest{RefreshToken: reg.GetRefreshToken()}); err != nil {
		t.Fatalf("logging out twice: %v", err)
	}

	h.clock.Advance(14 * time.Minute)
	if _, err := h.client.GetProfile(bearer(ctx, stolen), &userv1.GetProfileRequest{}); err != nil {
		t.Fatalf("the access token 14 minutes after logout: %v (it is expected to still work)", err)
	}
	h.clock.Advance(2 * time.Minute)
	if _, err := h.client.GetProfile(bearer(ctx, stolen), &userv1.GetProfileRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the access token 16 minutes after logout: %v, want Unauthenticated", err)
	}

	// Someone else's refresh token cannot log another user out.
	victim := h.register(t, "vera")
	mallory := h.register(t, "mallory")
	if _, err := h.client.Logout(bearer(ctx, mallory.GetAccessToken()), &userv1.LogoutRequest{RefreshToken: victim.GetRefreshToken()}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("logout with another user's token: %v, want Unauthenticated", err)
	}
	if _, err := h.client.RefreshToken(ctx, &userv1.RefreshTokenRequest{RefreshToken: victim.GetRefreshToken()}); err != nil {
		t.Fatalf("the victim's session after the attempt: %v", err)
	}
}

func TestLoginFailuresAreGenericAndRateLimited(t *testing.T) {
	h := newHarness(t, func(c *userservice.Config) {
		c.LoginMaxFailures, c.LoginBaseLockout, c.LoginMaxLockout = 3, time.Minute, 10*time.Minute
	})
	ctx := ctxT(t)
	h.register(t, "lena")

	_, wrongPw := h.client.Login(ctx, &userv1.LoginRequest{Login: "lena", Password: "nope"})
	_, unknown := h.client.Login(ctx, &userv1.LoginRequest{Login: "nobody", Password: "nope"})
	for name, err := range map[string]error{"wrong password": wrongPw, "unknown login": unknown} {
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s: %v, want Unauthenticated", name, err)
		}
	}
	if status.Convert(wrongPw).Message() != status.Convert(unknown).Message() {
		t.Fatalf("failures tell accounts apart: %q vs %q", status.Convert(wrongPw).Message(), status.Convert(unknown).Message())
	}

	// Two more failures reach the threshold of 3.
	for range 2 {
		if _, err := h.client.Login(ctx, &userv1.LoginRequest{Login: "LENA", Password: "nope"}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("failure: %v", err)
		}
	}
	// Locked: the right password is refused too.
	_, err := h.client.Login(ctx, &userv1.LoginRequest{Login: "lena", Password: "password-lena"})
	st := status.Convert(err)
	var retry time.Duration
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("during lockout: %v, want ResourceExhausted", err)
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.GetRetryDelay().AsDuration()
		}
	}
	if retry <= 0 || retry > time.Minute {
		t.Fatalf("retry-after = %s, want within the 1m lockout", retry)
	}
	h.clock.Advance(retry)
	if _, err := h.client.Login(ctx, &userv1.LoginRequest{Login: "lena", Password: "password-lena"}); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
}

// TestClientIPRateLimit: failures from one address across many accounts
// lock the address; the gateway's x-forwarded-for names it.
func TestClientIPRateLimit(t *testing.T) {
	h := newHarness(t, func(c *userservice.Config) {
		c.LoginMaxFailures, c.LoginMaxIPFailures, c.LoginBaseLockout = 100, 4, time.Minute
	})
	ctx := ctxT(t)
	h.register(t, "ivan")
	from := func(ip string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", "10.9.9.9, "+ip)
	}
	for i := range 4 {
		_, err := h.client.Login(from("203.0.113.5"), &userv1.LoginRequest{Login: "guess" + string(rune('a'+i)), Password: "x"})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatal(err)
		}
	}
	if _, err := h.client.Login(from("203.0.113.5"), &userv1.LoginRequest{Login: "ivan", Password: "password-ivan"}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("from the locked address: %v, want ResourceExhausted", err)
	}
	// The client-supplied first entry is not trusted: only the last one,
	// which the gateway appends, counts.
	if _, err := h.client.Login(from("203.0.113.6"), &userv1.LoginRequest{Login: "ivan", Password: "password-ivan"}); err != nil {
		t.Fatalf("from another address: %v", err)
	}
}

// TestDefaultsAreOWASP pins the production password-hashing cost: a
// service started without Argon2 settings hashes with m=19 MiB, t=2, p=1.
func TestDefaultsAreOWASP(t *testing.T) {
	h := newHarness(t, func(c *userservice.Config) {
		c.Argon2MemoryKiB, c.Argon2Iterations, c.Argon2Parallelism = 0, 0, 0
	})
	reg := h.register(t, "owasp")
	var doc struct {
		PasswordHash string `bson:"password_hash"`
	}
	if err := h.db.Collection("users").FindOne(ctxT(t), map[string]any{"_id": reg.GetUser().GetId()}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("stored hash %q is not argon2id with the OWASP parameters", doc.PasswordHash)
	}
	if strings.Contains(doc.PasswordHash, "password-owasp") {
		t.Fatal("the password is stored in clear")
	}
}
