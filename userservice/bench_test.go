package userservice_test

import (
	"testing"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/userservice"
)

// BenchmarkLogin measures a whole login over gRPC with the production
// (OWASP) argon2id cost: rate-limit check, user lookup, one password
// verification, refresh-token insert, token signing. The argon2id cost
// dominates, by design.
func BenchmarkLogin(b *testing.B) {
	h := newHarness(b, func(c *userservice.Config) {
		c.Argon2MemoryKiB, c.Argon2Iterations, c.Argon2Parallelism = 0, 0, 0
	})
	h.register(b, "bench")
	ctx := ctxT(b)
	req := &userv1.LoginRequest{Login: "bench", Password: "password-bench"}
	for b.Loop() {
		if _, err := h.client.Login(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetProfile is an authenticated read: the auth hook verifies the
// access token, then one lookup by id.
func BenchmarkGetProfile(b *testing.B) {
	h := newHarness(b)
	reg := h.register(b, "reader")
	ctx := bearer(ctxT(b), reg.GetAccessToken())
	for b.Loop() {
		if _, err := h.client.GetProfile(ctx, &userv1.GetProfileRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
