package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fakeVerifier accepts the tokens it knows.
type fakeVerifier map[string]auth.Principal

func (f fakeVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	p, ok := f[token]
	if !ok {
		return auth.Principal{}, fmt.Errorf("%w: unknown", auth.ErrInvalidToken)
	}
	return p, nil
}

// startCollector runs a collector for one node until the test ends (or
// its stop function is called).
func startCollector(t *testing.T, env *testenv.Env, prefix, node string, local NodeStats) (*Collector, func()) {
	t.Helper()
	c, err := NewCollector(CollectorConfig{
		NATS:          env.NATS(t),
		SubjectPrefix: prefix,
		NodeID:        node,
		Local:         func() NodeStats { return local },
		Interval:      50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run(%s) = %v", node, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run(%s) did not return after cancel", node)
		}
	}
	t.Cleanup(stop)
	return c, stop
}

func TestCollectorAggregatesNodes(t *testing.T) {
	env := testenv.New(t)
	prefix := testenv.Unique("admin") + "."
	a, _ := startCollector(t, env, prefix, "node-a", NodeStats{Connections: 3, Users: 2, Channels: 4})
	b, stopB := startCollector(t, env, prefix, "node-b", NodeStats{Connections: 5, Users: 1, Channels: 2})

	for _, c := range []*Collector{a, b} {
		testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			s := c.Snapshot()
			if len(s.Nodes) != 2 || s.Connections != 8 || s.OnlineUsers != 3 || s.Channels != 6 {
				return fmt.Errorf("snapshot of %s = %+v, want 2 nodes, 8 connections, 3 users, 6 channels", c.cfg.NodeID, s)
			}
			if s.Nodes[0].NodeID != "node-a" || s.Nodes[1].NodeID != "node-b" {
				return fmt.Errorf("nodes = %+v, want node-a then node-b", s.Nodes)
			}
			return nil
		})
	}

	// Realtime traffic: message frames count, other frames do not. Every
	// frame is counted by exactly one node (a queue group), so the sum of
	// the nodes' rates is the cluster's rate.
	pub := env.NATS(t)
	const messages = 20
	for i := range messages {
		frame := fmt.Sprintf(`{"type":"message","channel":"c1","data":{"seq":"%d"}}`, i+1)
		if err := pub.Publish(prefix+"rt.channel.c1", []byte(frame)); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(prefix+"rt.channel.c1", []byte(`{"type":"user_typing","channel":"c1"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish("other."+prefix+"rt.channel.c1", []byte(`{"type":"message"}`)); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	window := DefaultWindow.Seconds()
	for _, c := range []*Collector{a, b} {
		testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			got := c.Snapshot().MessagesPerSecond * window
			if math.Abs(got-messages) > 0.001 {
				return fmt.Errorf("%s counts %.3f messages in the window, want %d", c.cfg.NodeID, got, messages)
			}
			return nil
		})
	}

	// A node that stops reporting expires after three intervals.
	stopB()
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		s := a.Snapshot()
		if len(s.Nodes) != 1 || s.Nodes[0].NodeID != "node-a" || s.Connections != 3 {
			return fmt.Errorf("after node-b stopped: %+v, want node-a alone", s)
		}
		return nil
	})
}

func TestStatsHandlerAuth(t *testing.T) {
	env := testenv.New(t)
	c, _ := startCollector(t, env, testenv.Unique("adminh")+".", "node-h", NodeStats{Connections: 7, Users: 4, Channels: 1})
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if len(c.Snapshot().Nodes) != 1 {
			return errors.New("own report not recorded yet")
		}
		return nil
	})
	v := fakeVerifier{
		"admin-token": {UserID: "u1", Roles: []string{auth.RoleAdmin}},
		"user-token":  {UserID: "u2"},
	}
	srv := httptest.NewServer(c.Handler(v))
	t.Cleanup(srv.Close)

	tests := []struct {
		name, method, auth string
		want               int
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized},
		{"not bearer", http.MethodGet, "Basic abc", http.StatusUnauthorized},
		{"invalid token", http.MethodGet, "Bearer nope", http.StatusUnauthorized},
		{"not admin", http.MethodGet, "Bearer user-token", http.StatusForbidden},
		{"admin", http.MethodGet, "Bearer admin-token", http.StatusOK},
		{"post refused", http.MethodPost, "Bearer admin-token", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, tc.method, srv.URL+"/v1/admin/stats", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if resp.StatusCode != http.StatusOK {
				var e struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Message == "" {
					t.Fatalf("error body: %+v, %v", e, err)
				}
				return
			}
			var s struct {
				Nodes []struct {
					NodeID      string    `json:"node_id"`
					Connections int       `json:"connections"`
					Users       int       `json:"users"`
					Channels    int       `json:"channels"`
					UpdatedAt   time.Time `json:"updated_at"`
				} `json:"nodes"`
				Connections       int      `json:"connections"`
				OnlineUsers       int      `json:"online_users"`
				Channels          int      `json:"channels"`
				MessagesPerSecond *float64 `json:"messages_per_second"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
				t.Fatal(err)
			}
			if len(s.Nodes) != 1 || s.Nodes[0].NodeID != "node-h" || s.Nodes[0].UpdatedAt.IsZero() ||
				s.Connections != 7 || s.OnlineUsers != 4 || s.Channels != 1 || s.MessagesPerSecond == nil {
				t.Fatalf("stats = %+v", s)
			}
		})
	}
}

func TestNewCollectorValidates(t *testing.T) {
	env := testenv.New(t)
	nc := env.NATS(t)
	local := func() NodeStats { return NodeStats{} }
	tests := []struct {
		name string
		cfg  CollectorConfig
	}{
		{"no NATS", CollectorConfig{NodeID: "n", Local: local}},
		{"no node id", CollectorConfig{NATS: nc, Local: local}},
		{"no local", CollectorConfig{NATS: nc, NodeID: "n"}},
		{"wildcard prefix", CollectorConfig{NATS: nc, NodeID: "n", Local: local, SubjectPrefix: "a.*."}},
		{"negative interval", CollectorConfig{NATS: nc, NodeID: "n", Local: local, Interval: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewCollector(tc.cfg); !errors.Is(err, ErrConfig) {
				t.Fatalf("NewCollector = %v, want ErrConfig", err)
			}
		})
	}
	c, err := NewCollector(CollectorConfig{NATS: nc, NodeID: "n", Local: local})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Interval != DefaultInterval || len(c.buckets) != int(DefaultWindow/time.Second) {
		t.Fatalf("defaults not applied: interval %s, %d buckets", c.cfg.Interval, len(c.buckets))
	}
}
