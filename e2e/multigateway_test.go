package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/embedded"
)

// sharedBackends starts one FerretDB, NATS and Redis in the test process for
// several all-in-one processes to share, so that each process acts as a
// replica of every service and of the gateway.
func sharedBackends(t *testing.T) (*embedded.NATS, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mongo, err := embedded.StartMongo(ctx, embedded.MongoConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mongo.Close(context.Background()) })
	ns, err := embedded.StartNATS(embedded.NATSConfig{Dir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	rd, err := embedded.StartRedis(embedded.RedisConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Close)
	return ns, []string{"--mongodb-uri", mongo.URI(), "--nats-url", ns.URL(), "--redis-url", rd.URL()}
}

// kill ends the process abruptly, as a crashed node.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	<-s.done
	s.done <- nil // stop() at cleanup sees a finished process
}

func messageOf(t *testing.T, f frame) message {
	t.Helper()
	var m message
	if err := json.Unmarshal(f.Data, &m); err != nil {
		t.Fatalf("message frame %s: %v", f.Data, err)
	}
	return m
}

// TestTwoGateways runs two all-in-one processes on shared backends: users
// on different gateways chat and see typing and presence; NATS restarting
// mid-stream loses nothing; a gateway that dies sends its users offline
// within two heartbeat intervals, and its clients recover on the other
// gateway with no gap.
func TestTwoGateways(t *testing.T) {
	ns, backendArgs := sharedBackends(t)
	// With external backends the data dir only holds the token signing key
	// and the unsubscribe secret, which replicas must share (in production:
	// the same key files from a Secret).
	shared := t.TempDir()
	gwA := startServer(t, shared, backendArgs...)
	gwB := startServer(t, shared, backendArgs...)

	alice := registerUser(t, gwA.URL, "alice")
	bob := registerUser(t, gwB.URL, "bob")
	var created struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if code, body := call(t, "POST", gwA.URL+"/v1/channels", alice.AccessToken, map[string]any{
		"name": "replicas", "type": "group", "member_ids": []string{bob.User.ID},
	}, &created); code != http.StatusOK {
		t.Fatalf("create channel: %d %s", code, body)
	}
	ch := created.Channel.ID

	a := dialWS(t, gwA.URL, alice.AccessToken)
	b := dialWS(t, gwB.URL, bob.AccessToken)
	a.request("join_channel", ch, map[string]any{})
	b.request("join_channel", ch, map[string]any{})

	// Across gateways, both ways, and typing.
	a.request("send_message", ch, map[string]any{"content": "from A", "type": "text"})
	b.next(func(f frame) bool { return f.Type == "message" && strings.Contains(string(f.Data), "from A") })
	b.request("send_message", ch, map[string]any{"content": "from B", "type": "text"})
	a.next(func(f frame) bool { return f.Type == "message" && strings.Contains(string(f.Data), "from B") })
	b.send(frame{Type: "user_typing", Channel: ch, Data: mustJSON(t, map[string]any{})})
	if f := a.next(func(f frame) bool { return f.Type == "user_typing" }); f.UserID != bob.User.ID {
		t.Errorf("typing from %q, want bob", f.UserID)
	}

	// NATS restarts mid-stream: messages sent around the restart all reach
	// bob on the other gateway, in order, once each (live or replayed by the
	// hub's recovery).
	if err := ns.Restart(); err != nil {
		t.Fatalf("restart NATS: %v", err)
	}
	for i := range 3 {
		a.request("send_message", ch, map[string]any{"content": fmt.Sprintf("after restart %d", i), "type": "text", "client_msg_id": fmt.Sprintf("ar%d", i)})
	}
	var lastSeen int64
	for i := range 3 {
		f := b.next(func(f frame) bool { return f.Type == "message" && strings.Contains(string(f.Data), "after restart") })
		m := messageOf(t, f)
		if want := fmt.Sprintf("after restart %d", i); m.Content != want {
			t.Fatalf("bob got %q, want %q (no gap, no duplicate, in order)", m.Content, want)
		}
		lastSeen = m.seq(t)
	}

	// Gateway B dies. Its node stops heartbeating, so alice sees bob go
	// offline once the presence service sweeps it (default interval 10 s:
	// within 20 s).
	gwB.kill(t)
	start := time.Now()
	a.next(func(f frame) bool {
		return f.Type == "user_offline" && strings.Contains(string(f.Data)+f.UserID, bob.User.ID)
	})
	if waited := time.Since(start); waited > 25*time.Second {
		t.Errorf("bob went offline %s after his gateway died, want within 2 heartbeat intervals", waited)
	}

	// Alice keeps talking; bob reconnects to gateway A and syncs.
	for i := range 4 {
		a.request("send_message", ch, map[string]any{"content": fmt.Sprintf("while away %d", i), "type": "text", "client_msg_id": fmt.Sprintf("wa%d", i)})
	}
	b2 := dialWS(t, gwA.URL, bob.AccessToken)
	b2.request("join_channel", ch, map[string]any{})
	b2.send(frame{Type: "sync", ID: "s", Data: mustJSON(t, map[string]any{"channels": map[string]int64{ch: lastSeen}})})
	for i := range 4 {
		m := messageOf(t, b2.next(func(f frame) bool { return f.Type == "message" && f.Channel == ch }))
		if want := fmt.Sprintf("while away %d", i); m.Content != want {
			t.Fatalf("after reconnecting bob got %q, want %q", m.Content, want)
		}
	}
}
