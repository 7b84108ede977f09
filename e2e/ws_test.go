package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// frame is the WebSocket envelope (DESIGN section 3).
type frame struct {
	Type      string          `json:"type"`
	ID        string          `json:"id,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp int64           `json:"timestamp,omitempty"`
	UserID    string          `json:"user_id,omitempty"`
}

// wsClient is one WebSocket connection of a test user.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	n    int
}

// dialWS connects to the all-in-one and authenticates with the first frame,
// as a browser does.
func dialWS(t *testing.T, baseURL, token string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/v1/ws"
	conn, resp, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() })
	c.send(frame{Type: "authenticate", Data: mustJSON(t, map[string]string{"token": token})})
	if f := c.next(func(f frame) bool { return f.Type == "welcome" || f.Type == "error" }); f.Type != "welcome" {
		t.Fatalf("authenticate: got %s %s", f.Type, f.Data)
	}
	return c
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (c *wsClient) send(f frame) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.conn.WriteJSON(f); err != nil {
		c.t.Fatalf("write %s: %v", f.Type, err)
	}
}

// request sends a frame with a fresh id and returns its ack (failing on an
// error frame).
func (c *wsClient) request(typ, channel string, data any) frame {
	c.t.Helper()
	c.n++
	id := "r" + strconv.Itoa(c.n)
	c.send(frame{Type: typ, ID: id, Channel: channel, Data: mustJSON(c.t, data)})
	f := c.next(func(f frame) bool { return f.ID == id && (f.Type == "ack" || f.Type == "error") })
	if f.Type != "ack" {
		c.t.Fatalf("%s: error %s", typ, f.Data)
	}
	return f
}

// next returns the first frame that matches, skipping others; it fails the
// test after 15 s.
func (c *wsClient) next(match func(frame) bool) frame {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		var f frame
		if err := c.conn.ReadJSON(&f); err != nil {
			c.t.Fatalf("waiting for a frame: %v", err)
		}
		if match(f) {
			return f
		}
	}
}

// message is the part of a stored message the tests read.
type message struct {
	ID      string `json:"id"`
	Seq     any    `json:"seq"`
	Content string `json:"content"`
	UserID  string `json:"user_id"`
}

func (m message) seq(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(fmt.Sprint(m.Seq), 10, 64)
	if err != nil {
		t.Fatalf("seq %v: %v", m.Seq, err)
	}
	return n
}

func registerUser(t *testing.T, baseURL, name string) authResponse {
	t.Helper()
	var r authResponse
	code, body := call(t, "POST", baseURL+"/v1/auth/register", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": "correct horse battery", "display_name": name,
	}, &r)
	if code != http.StatusOK {
		t.Fatalf("register %s: %d %s", name, code, body)
	}
	return r
}

// TestWebSocketChat drives the real all-in-one over WebSocket: two users in a
// channel exchange messages, see typing and presence, and a client that
// reconnects recovers everything it missed with sync, without gaps or
// duplicates.
func TestWebSocketChat(t *testing.T) {
	s := startServer(t, t.TempDir())
	alice, bob := registerUser(t, s.URL, "alice"), registerUser(t, s.URL, "bob")

	var created struct {
		Channel struct {
			ID string `json:"id"`
		} `json:"channel"`
	}
	if code, body := call(t, "POST", s.URL+"/v1/channels", alice.AccessToken, map[string]any{
		"name": "project", "type": "group", "member_ids": []string{bob.User.ID},
	}, &created); code != http.StatusOK {
		t.Fatalf("create channel: %d %s", code, body)
	}
	ch := created.Channel.ID

	a, b := dialWS(t, s.URL, alice.AccessToken), dialWS(t, s.URL, bob.AccessToken)
	a.request("join_channel", ch, map[string]any{})
	b.request("join_channel", ch, map[string]any{})

	// Alice sends; the ack carries the stored message, bob receives it.
	ack := a.request("send_message", ch, map[string]any{"content": "hi bob", "type": "text", "client_msg_id": "c1"})
	var sent message
	if err := json.Unmarshal(ack.Data, &sent); err != nil || sent.ID == "" {
		// The ack may wrap the message.
		var wrapped struct {
			Message message `json:"message"`
		}
		if err := json.Unmarshal(ack.Data, &wrapped); err != nil || wrapped.Message.ID == "" {
			t.Fatalf("ack data %s has no stored message", ack.Data)
		}
		sent = wrapped.Message
	}
	got := b.next(func(f frame) bool { return f.Type == "message" && f.Channel == ch })
	var gm message
	if err := json.Unmarshal(got.Data, &gm); err != nil || gm.Content != "hi bob" || gm.ID != sent.ID {
		t.Fatalf("bob got %s, want alice's message %s", got.Data, sent.ID)
	}

	// Bob types and answers; alice sees both.
	b.send(frame{Type: "user_typing", Channel: ch, Data: mustJSON(t, map[string]any{})})
	if f := a.next(func(f frame) bool { return f.Type == "user_typing" }); f.UserID != bob.User.ID {
		t.Errorf("typing frame from %q, want bob", f.UserID)
	}
	b.request("send_message", ch, map[string]any{"content": "hi alice", "type": "text", "client_msg_id": "c2"})
	a.next(func(f frame) bool { return f.Type == "message" && strings.Contains(string(f.Data), "hi alice") })

	// Bob drops off; alice keeps talking; bob reconnects and syncs from the
	// last seq he saw.
	lastSeen := gm.seq(t)
	_ = b.conn.Close()
	// Alice follows the presence of her channel's members.
	off := a.next(func(f frame) bool {
		return f.Type == "user_offline" && strings.Contains(string(f.Data)+f.UserID, bob.User.ID)
	})
	if !strings.Contains(string(off.Data), "last_seen") {
		t.Errorf("user_offline frame %s lacks last_seen", off.Data)
	}
	for i := range 5 {
		a.request("send_message", ch, map[string]any{"content": fmt.Sprintf("missed %d", i), "type": "text", "client_msg_id": fmt.Sprintf("m%d", i)})
	}
	b2 := dialWS(t, s.URL, bob.AccessToken)
	b2.request("join_channel", ch, map[string]any{})
	b2.send(frame{Type: "sync", ID: "sync", Data: mustJSON(t, map[string]any{"channels": map[string]int64{ch: lastSeen}})})
	seen := map[int64]string{}
	var order []int64
	for len(seen) < 6 { // bob's own "hi alice" and the five missed ones
		f := b2.next(func(f frame) bool { return f.Type == "message" && f.Channel == ch })
		var m message
		if err := json.Unmarshal(f.Data, &m); err != nil {
			t.Fatal(err)
		}
		if _, dup := seen[m.seq(t)]; dup {
			t.Fatalf("message seq %d delivered twice", m.seq(t))
		}
		seen[m.seq(t)] = m.Content
		order = append(order, m.seq(t))
	}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Errorf("sync out of order: %v", order)
		}
	}
	if order[0] <= lastSeen {
		t.Errorf("sync replayed seq %d, at or before the last seen %d", order[0], lastSeen)
	}
}
