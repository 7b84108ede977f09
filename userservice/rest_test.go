package userservice_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice"
)

// TestRESTSurface drives the REST paths of DESIGN's table through the
// gateway mux.
func TestRESTSurface(t *testing.T) {
	h := newHarness(t)

	code, reg, raw := h.do(t, http.MethodPost, "/v1/auth/register", "", map[string]string{
		"username": "Rest_User", "email": "rest@example.com", "password": "password1", "display_name": "Rest User",
	})
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, raw)
	}
	for _, k := range []string{"user", "access_token", "refresh_token", "expires_at", "refresh_expires_at"} {
		if _, ok := reg[k]; !ok {
			t.Fatalf("register response lacks %q: %s", k, raw)
		}
	}
	if _, err := time.Parse(time.RFC3339, reg["expires_at"].(string)); err != nil {
		t.Fatalf("expires_at %v is not RFC 3339", reg["expires_at"])
	}
	user := reg["user"].(map[string]any)
	if user["username"] != "rest_user" || user["display_name"] != "Rest User" || user["email"] != "rest@example.com" {
		t.Fatalf("user = %v", user)
	}
	access, refresh := reg["access_token"].(string), reg["refresh_token"].(string)

	code, login, raw := h.do(t, http.MethodPost, "/v1/auth/login", "", map[string]string{"login": "rest@example.com", "password": "password1"})
	if code != http.StatusOK || login["access_token"] == "" {
		t.Fatalf("login: %d %s", code, raw)
	}
	if code, _, raw := h.do(t, http.MethodPost, "/v1/auth/login", "", map[string]string{"login": "rest_user", "password": "wrong-one"}); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %s", code, raw)
	}

	code, me, raw := h.do(t, http.MethodGet, "/v1/users/me", access, nil)
	if code != http.StatusOK || me["user"].(map[string]any)["email"] != "rest@example.com" {
		t.Fatalf("GET /v1/users/me: %d %s", code, raw)
	}
	if code, _, raw := h.do(t, http.MethodGet, "/v1/users/me", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v1/users/me: %d %s", code, raw)
	}
	code, upd, raw := h.do(t, http.MethodPatch, "/v1/users/me", access, map[string]string{"status_message": "hello", "avatar_url": "/v1/attachments/pic1"})
	if code != http.StatusOK || upd["user"].(map[string]any)["status_message"] != "hello" || upd["user"].(map[string]any)["display_name"] != "Rest User" {
		t.Fatalf("PATCH /v1/users/me: %d %s", code, raw)
	}

	other := h.register(t, "other_one")
	otherID := other.GetUser().GetId()
	// Public views never carry private fields, not even as empty keys
	// with a value; the field names are checked in the raw JSON.
	code, _, raw = h.do(t, http.MethodGet, "/v1/users/"+otherID, access, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/users/{id}: %d %s", code, raw)
	}
	assertNoPrivateData(t, raw, "other_one@example.com")
	code, search, raw := h.do(t, http.MethodGet, "/v1/users?query=OTHER&page_size=10", access, nil)
	if code != http.StatusOK || len(search["users"].([]any)) != 1 {
		t.Fatalf("search: %d %s", code, raw)
	}
	assertNoPrivateData(t, raw, "other_one@example.com")
	code, batch, raw := h.do(t, http.MethodGet, "/v1/users:batchGet?user_ids="+otherID, access, nil)
	if code != http.StatusOK || len(batch["users"].([]any)) != 1 {
		t.Fatalf("batchGet: %d %s", code, raw)
	}
	assertNoPrivateData(t, raw, "other_one@example.com")

	code, add, raw := h.do(t, http.MethodPost, "/v1/users/me/friends", access, map[string]string{"user_id": otherID})
	if code != http.StatusOK || add["friend"].(map[string]any)["state"] != "outgoing" {
		t.Fatalf("POST friends: %d %s", code, raw)
	}
	assertNoPrivateData(t, raw, "other_one@example.com")
	code, list, raw := h.do(t, http.MethodGet, "/v1/users/me/friends?state=outgoing", access, nil)
	if code != http.StatusOK || len(list["friends"].([]any)) != 1 {
		t.Fatalf("GET friends: %d %s", code, raw)
	}
	assertNoPrivateData(t, raw, "other_one@example.com")
	if code, _, raw := h.do(t, http.MethodDelete, "/v1/users/me/friends/"+otherID, access, nil); code != http.StatusOK {
		t.Fatalf("DELETE friend: %d %s", code, raw)
	}
	if code, _, raw := h.do(t, http.MethodPost, "/v1/users/me/friends", access, map[string]string{"user_id": "nobody-here"}); code != http.StatusNotFound {
		t.Fatalf("befriend unknown: %d %s", code, raw)
	}

	code, ref, raw := h.do(t, http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	if code != http.StatusOK || ref["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %s", code, raw)
	}
	if code, _, raw := h.do(t, http.MethodPost, "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); code != http.StatusUnauthorized {
		t.Fatalf("refresh reuse: %d %s", code, raw)
	}
	if code, _, raw := h.do(t, http.MethodPost, "/v1/auth/logout", "", map[string]string{"refresh_token": login["refresh_token"].(string)}); code != http.StatusOK {
		t.Fatalf("logout: %d %s", code, raw)
	}

	if code, _, raw := h.do(t, http.MethodPost, "/v1/auth/register", "", map[string]string{
		"username": "REST_USER", "email": "new@example.com", "password": "password1", "display_name": "X",
	}); code != http.StatusConflict {
		t.Fatalf("duplicate username: %d %s, want 409", code, raw)
	}
}

func assertNoPrivateData(t *testing.T, raw, email string) {
	t.Helper()
	for _, bad := range []string{email, "password", "argon2", "hash", `"roles":["`} {
		if strings.Contains(raw, bad) {
			t.Fatalf("public response contains %q: %s", bad, raw)
		}
	}
	if strings.Contains(raw, `"email":"`) && !strings.Contains(raw, `"email":""`) {
		t.Fatalf("public response carries an email: %s", raw)
	}
}

// TestBadInputOverREST: invalid registrations and logins are 400 and
// store nothing.
func TestBadInputOverREST(t *testing.T) {
	h := newHarness(t)
	h.register(t, "existing")
	count := func() int64 {
		n, err := h.db.Collection("users").CountDocuments(ctxT(t), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	good := map[string]any{"username": "newbie", "email": "newbie@example.com", "password": "password1", "display_name": "Newbie"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	register := []struct {
		name string
		body any
	}{
		{"empty object", map[string]any{}},
		{"not JSON", `{"username":`},
		{"array", `[]`},
		{"missing username", with("username", nil)},
		{"empty username", with("username", "")},
		{"short username", with("username", "ab")},
		{"long username", with("username", strings.Repeat("a", 33))},
		{"username with space", with("username", "new bie")},
		{"cyrillic username", with("username", "nеwbie")},
		{"kelvin sign username", with("username", "\u212Aelvin")},
		{"username operator", with("username", map[string]any{"$gt": ""})},
		{"username operator string", with("username", `{"$gt": ""}`)},
		{"username number", with("username", 12345)},
		{"invalid email", with("email", "not-an-email")},
		{"email without domain", with("email", "newbie@")},
		{"email display form", with("email", "Newbie <newbie@example.com>")},
		{"unicode email", with("email", "nеwbie@example.com")},
		{"long email", with("email", strings.Repeat("a", 250)+"@example.com")},
		{"email operator", with("email", map[string]any{"$ne": nil})},
		{"short password", with("password", "1234567")},
		{"long password", with("password", strings.Repeat("p", 129))},
		{"empty display name", with("display_name", "")},
		{"long display name", with("display_name", strings.Repeat("d", 65))},
		{"bidi display name", with("display_name", "admin\u202Egnp.exe")},
		{"zero-width display name", with("display_name", "ad\u200Bmin")},
		{"control display name", with("display_name", "new\nbie")},
		{"unknown field", with("$where", "1")},
	}
	for _, tt := range register {
		t.Run("register/"+tt.name, func(t *testing.T) {
			code, _, raw := h.do(t, http.MethodPost, "/v1/auth/register", "", tt.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", code, raw)
			}
		})
	}
	if after := count(); after != before {
		t.Fatalf("%d users stored by bad registrations", after-before)
	}

	login := []struct {
		name string
		body any
	}{
		{"operator object", map[string]any{"login": map[string]any{"$gt": ""}, "password": "x"}},
		{"operator string", map[string]any{"login": `{"$gt": ""}`, "password": "x"}},
		{"ne null", map[string]any{"login": map[string]any{"$ne": nil}, "password": map[string]any{"$ne": nil}}},
		{"password operator", map[string]any{"login": "existing", "password": map[string]any{"$gt": ""}}},
		{"regex login", map[string]any{"login": "^ex.*", "password": "x"}},
		{"empty", map[string]any{"login": "", "password": ""}},
		{"missing password", map[string]any{"login": "existing"}},
		{"long password", map[string]any{"login": "existing", "password": strings.Repeat("p", 129)}},
		{"login too long", map[string]any{"login": strings.Repeat("a", 255), "password": "x"}},
	}
	for _, tt := range login {
		t.Run("login/"+tt.name, func(t *testing.T) {
			code, _, raw := h.do(t, http.MethodPost, "/v1/auth/login", "", tt.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d (%s), want 400", code, raw)
			}
		})
	}
	if after := count(); after != before {
		t.Fatalf("%d users stored by bad logins", after-before)
	}
	// Bad input is not a failed login: it does not count towards a lockout.
	keys, err := testenvRedisKeys(t, h.cfg.RedisPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("bad input created rate-limit keys: %v", keys)
	}
}

// TestJWKSPublishedAndUsable: the key set is served at
// /.well-known/jwks.json, both by the gateway mux and the service's own
// HTTP listener, and verifies the tokens the service issues.
func TestJWKSPublishedAndUsable(t *testing.T) {
	h := newHarness(t)
	reg := h.register(t, "jwks")
	code, body, raw := h.do(t, http.MethodGet, userservice.JWKSPath, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", userservice.JWKSPath, code, raw)
	}
	keys := body["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
	k := keys[0].(map[string]any)
	if k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" || k["use"] != "sig" || k["kid"] != h.kid {
		t.Fatalf("key = %v", k)
	}
	if strings.Contains(raw, `"d"`) {
		t.Fatal("the key set publishes a private key")
	}
	for _, url := range []string{h.rest.URL + userservice.JWKSPath, "http://" + h.httpAddr + userservice.JWKSPath} {
		v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: &auth.HTTPKeySource{URL: url}, Clock: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(context.Background(), reg.GetAccessToken())
		if err != nil {
			t.Fatalf("verify with keys from %s: %v", url, err)
		}
		if p.UserID != reg.GetUser().GetId() || p.SessionID == "" {
			t.Fatalf("principal = %+v", p)
		}
	}
	// The probes are there too.
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + h.httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
	}
}
