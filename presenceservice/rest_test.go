package presenceservice_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
)

// restServer serves the presence REST API the way the gateway does:
// grpc-gateway over the real gRPC client, snake_case JSON.
func restServer(t *testing.T, s *service) *httptest.Server {
	t.Helper()
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
	}))
	if err := presencev1.RegisterPresenceServiceHandlerClient(context.Background(), mux, s.client); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, ctx context.Context, method, url, token, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

type restPresence struct {
	UserID        string  `json:"user_id"`
	Status        string  `json:"status"`
	LastSeen      *string `json:"last_seen"`
	DeviceCount   int     `json:"device_count"`
	StatusMessage string  `json:"status_message"`
}

func TestREST(t *testing.T) {
	s := start(t, nil)
	srv := restServer(t, s)
	ctx := context.Background()
	if _, err := s.client.Connect(asGateway(), &presencev1.ConnectRequest{UserId: "alice", ConnectionId: "a1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token, body string
		wantCode                        int
		check                           func(t *testing.T, body []byte)
	}{
		{
			name: "set my status", method: http.MethodPut, path: "/v1/users/me/status", token: "tok-alice",
			body: `{"status": "busy", "status_message": "deep work"}`, wantCode: http.StatusOK,
			check: func(t *testing.T, b []byte) {
				var r struct{ Presence restPresence }
				mustJSON(t, b, &r)
				if p := r.Presence; p.UserID != "alice" || p.Status != "busy" || p.StatusMessage != "deep work" || p.DeviceCount != 1 {
					t.Errorf("presence %+v", p)
				}
			},
		},
		{
			name: "someone's status", method: http.MethodGet, path: "/v1/users/alice/status", token: "tok-bob", wantCode: http.StatusOK,
			check: func(t *testing.T, b []byte) {
				var r struct{ Presence restPresence }
				mustJSON(t, b, &r)
				if p := r.Presence; p.Status != "busy" || p.StatusMessage != "deep work" {
					t.Errorf("presence %+v", p)
				}
			},
		},
		{
			name: "someone never seen", method: http.MethodGet, path: "/v1/users/nobody/status", token: "tok-bob", wantCode: http.StatusOK,
			check: func(t *testing.T, b []byte) {
				if !strings.Contains(string(b), `"last_seen":null`) || !strings.Contains(string(b), `"status":"offline"`) {
					t.Errorf("body %s", b)
				}
			},
		},
		{
			name: "online among given users", method: http.MethodGet, path: "/v1/presence/online?user_ids=alice&user_ids=bob", token: "tok-bob", wantCode: http.StatusOK,
			check: func(t *testing.T, b []byte) {
				var r struct {
					Presences     []restPresence `json:"presences"`
					NextPageToken string         `json:"next_page_token"`
				}
				mustJSON(t, b, &r)
				if len(r.Presences) != 1 || r.Presences[0].UserID != "alice" || r.NextPageToken != "" {
					t.Errorf("body %s", b)
				}
			},
		},
		{name: "online friends", method: http.MethodGet, path: "/v1/presence/online?friends=true", token: "tok-bob", wantCode: http.StatusOK,
			check: func(t *testing.T, b []byte) {
				if !strings.Contains(string(b), `"user_id":"alice"`) {
					t.Errorf("body %s", b)
				}
			}},
		{name: "no token", method: http.MethodGet, path: "/v1/users/alice/status", wantCode: http.StatusUnauthorized},
		{name: "bad status", method: http.MethodPut, path: "/v1/users/me/status", token: "tok-alice", body: `{"status": "gone"}`, wantCode: http.StatusBadRequest},
		{name: "a channel the caller is not in", method: http.MethodGet, path: "/v1/presence/online?channel_id=secret", token: "tok-bob", wantCode: http.StatusForbidden},
		{name: "too many scopes", method: http.MethodGet, path: "/v1/presence/online?friends=true&channel_id=team", token: "tok-bob", wantCode: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, ctx, tt.method, srv.URL+tt.path, tt.token, tt.body)
			if code != tt.wantCode {
				t.Fatalf("HTTP %d, want %d: %s", code, tt.wantCode, body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func TestSubscribeOverREST(t *testing.T) {
	s := start(t, nil)
	srv := restServer(t, s)
	gw := asGateway()
	// Warm up the lazily opened connections (see TestSubscribeOverGRPC).
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "warm", ConnectionId: "w1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Disconnect(gw, &presencev1.DisconnectRequest{UserId: "warm", ConnectionId: "w1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	ignore := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer.func2"),
		// The HTTP client keeps its idle connections to the test server.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/presence/stream?user_ids=alice&user_ids=bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok-carol")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			var m struct {
				Result struct {
					Update struct {
						UserID    string  `json:"user_id"`
						Status    string  `json:"status"`
						ChangedAt *string `json:"changed_at"`
					} `json:"update"`
				} `json:"result"`
			}
			mustJSON(t, []byte(l), &m)
			u := m.Result.Update
			if u.ChangedAt == nil {
				t.Errorf("update without changed_at: %s", l)
			}
			return u.UserID + ":" + u.Status
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10s")
			return ""
		}
	}
	if a, b := next(), next(); a != "alice:offline" || b != "bob:offline" {
		t.Fatalf("snapshot %s, %s", a, b)
	}
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "bob", ConnectionId: "b1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.UpdateStatus(as("tok-bob"), &presencev1.UpdateStatusRequest{Status: "away"}); err != nil {
		t.Fatal(err)
	}
	if a, b := next(), next(); a != "bob:online" || b != "bob:away" {
		t.Errorf("changes %s, %s; want bob:online, bob:away", a, b)
	}

	// The HTTP client goes away: the gateway's gRPC stream and the
	// service's subscription end with it.
	cancel()
	for range lines {
	}
	goleak.VerifyNone(t, ignore...)
}
