package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// restContract is DESIGN section 3's REST table: every path with its method.
var restContract = []struct{ method, path string }{
	{"post", "/v1/auth/register"},
	{"post", "/v1/auth/login"},
	{"post", "/v1/auth/refresh"},
	{"post", "/v1/auth/logout"},
	{"get", "/v1/users/me"},
	{"get", "/v1/users/{user_id}"},
	{"patch", "/v1/users/me"},
	{"get", "/v1/users"},
	{"post", "/v1/users/me/friends"},
	{"get", "/v1/users/me/friends"},
	{"delete", "/v1/users/me/friends/{user_id}"},
	{"post", "/v1/channels"},
	{"get", "/v1/channels"},
	{"get", "/v1/channels/{channel_id}"},
	{"post", "/v1/channels/{channel_id}/members"},
	{"delete", "/v1/channels/{channel_id}/members/me"},
	{"post", "/v1/channels/{channel_id}/messages"},
	{"get", "/v1/channels/{channel_id}/messages"},
	{"get", "/v1/messages:search"},
	{"put", "/v1/users/me/status"},
	{"get", "/v1/users/{user_id}/status"},
	{"get", "/v1/presence/online"},
	{"get", "/v1/users/me/notifications"},
	{"put", "/v1/users/me/notification-preferences"},
	{"post", "/v1/users/me/devices"},
	{"get", "/.well-known/jwks.json"},
}

func TestAllInOneServesHealthAndOpenAPI(t *testing.T) {
	s := startServer(t, t.TempDir())

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, s.URL+path); code != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200", path, code, body)
		}
	}

	code, body := get(t, s.URL+"/openapi/parley.swagger.json")
	if code != http.StatusOK {
		t.Fatalf("GET openapi document = %d", code)
	}
	var doc struct {
		Swagger string                                `json:"swagger"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi document is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger version = %q, want 2.0", doc.Swagger)
	}
	for _, c := range restContract {
		if _, ok := doc.Paths[c.path][c.method]; !ok {
			t.Errorf("openapi document lacks %s %s", strings.ToUpper(c.method), c.path)
		}
	}

	code, page := get(t, s.URL+"/openapi/")
	if code != http.StatusOK || !strings.Contains(string(page), "viewer.js") {
		t.Errorf("GET /openapi/ = %d, want the browsing page", code)
	}
}

func TestAllInOneRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if code, _ := get(t, s.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("first start not ready: %d", code)
	}
	s.stop(t)
	// JetStream keeps its store in the data dir from the first start on;
	// FerretDB creates its SQLite files on the first write.
	if entries, err := os.ReadDir(filepath.Join(dir, "nats")); err != nil || len(entries) == 0 {
		t.Errorf("data dir nats is empty after a run (err %v)", err)
	}
	s2 := startServer(t, dir)
	if code, body := get(t, s2.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("restart on the same data dir not ready: %d %s", code, body)
	}
}

// TestAccountSurvivesRestart registers over REST, restarts the all-in-one on
// the same data dir, and checks that the account, the login and the access
// token issued before the restart (the signing key is kept) still work.
func TestAccountSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	var reg authResponse
	code, body := call(t, "POST", s.URL+"/v1/auth/register", "", map[string]string{
		"username": "alice", "email": "alice@example.com", "password": "correct horse battery", "display_name": "Alice",
	}, &reg)
	if code != http.StatusOK || reg.AccessToken == "" || reg.User.ID == "" {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, body := call(t, "POST", s.URL+"/v1/auth/register", "", map[string]string{
		"username": "ALICE", "email": "other@example.com", "password": "correct horse battery", "display_name": "Alice 2",
	}, nil); code != http.StatusConflict {
		t.Errorf("second registration of alice: %d %s, want 409", code, body)
	}
	if code, body := call(t, "GET", s.URL+"/v1/users/me", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/users/me without a token: %d %s, want 401", code, body)
	}
	s.stop(t)

	s2 := startServer(t, dir)
	var me struct {
		User struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"user"`
	}
	if code, body := call(t, "GET", s2.URL+"/v1/users/me", reg.AccessToken, nil, &me); code != http.StatusOK || me.User.ID != reg.User.ID {
		t.Errorf("GET /v1/users/me with the pre-restart token: %d %s", code, body)
	}
	var login authResponse
	if code, body := call(t, "POST", s2.URL+"/v1/auth/login", "", map[string]string{
		"login": "alice@example.com", "password": "correct horse battery",
	}, &login); code != http.StatusOK || login.User.ID != reg.User.ID {
		t.Fatalf("login after restart: %d %s", code, body)
	}
	if code, body := call(t, "POST", s2.URL+"/v1/auth/login", "", map[string]string{
		"login": "alice", "password": "wrong password!",
	}, nil); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong password: %d %s, want 401", code, body)
	}
}
