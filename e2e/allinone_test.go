package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/testenv"
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

// TestAuditLogIsAdminOnly checks the event bus wiring: registrations land in
// the audit log, which only an admin can read over REST.
func TestAuditLogIsAdminOnly(t *testing.T) {
	s := startServer(t, t.TempDir(), "--admin-users", "root")
	register := func(name string) authResponse {
		var r authResponse
		code, body := call(t, "POST", s.URL+"/v1/auth/register", "", map[string]string{
			"username": name, "email": name + "@example.com", "password": "correct horse battery", "display_name": name,
		}, &r)
		if code != http.StatusOK {
			t.Fatalf("register %s: %d %s", name, code, body)
		}
		return r
	}
	root, alice := register("root"), register("alice")

	if code, body := call(t, "GET", s.URL+"/v1/admin/events", alice.AccessToken, nil, nil); code != http.StatusForbidden {
		t.Errorf("alice lists the audit log: %d %s, want 403", code, body)
	}
	if code, body := call(t, "GET", s.URL+"/v1/admin/events", "", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous audit log: %d %s, want 401", code, body)
	}
	// The audit consumer records events asynchronously: wait for both.
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		var page struct {
			Events []struct {
				Type      string `json:"type"`
				SubjectID string `json:"subject_id"`
			} `json:"events"`
		}
		code, body := call(t, "GET", s.URL+"/v1/admin/events?type=user.registered", root.AccessToken, nil, &page)
		if code != http.StatusOK {
			return fmt.Errorf("root lists the audit log: %d %s", code, body)
		}
		seen := map[string]bool{}
		for _, e := range page.Events {
			seen[e.SubjectID] = e.Type == "user.registered"
		}
		if !seen[root.User.ID] || !seen[alice.User.ID] {
			return fmt.Errorf("audit log lacks the registrations of root and alice: %s", body)
		}
		return nil
	})
}
