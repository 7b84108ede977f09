package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/gateway/internal/hub/ratelimit"
)

// generous lifts the rate limits for tests that are not about them.
func generous(cfg *Config) {
	r := ratelimit.PerSecond(1000, 1000)
	cfg.Limits.Messages, cfg.Limits.Joins, cfg.Limits.Other = r, r, r
	cfg.Limits.Typing = r
	cfg.Limits.TypingThrottle = time.Millisecond
}

// TestProtocolConformance drives every client frame type through a hub
// and checks each answer, recording which server frame types and error
// codes were seen: all must be (slow_consumer has its own test).
func TestProtocolConformance(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("general", "public", "alice", "bob")
	fx.chat.addChannel("team", "group", "alice", "bob")
	fx.chat.addChannel("secret", "private", "carol")
	fx.chat.addChannel("open", "public", "carol")
	fx.users.befriend("alice", "bob")
	th := fx.startHub(t, generous)

	cov := newCoverage()
	alice := dial(t, th.url, "alice")
	alice.seen = cov
	cov.record(alice.welcome)
	bob := dial(t, th.url, "bob")
	bob.seen = cov
	alice.join("team")
	bob.join("team")

	var sent struct {
		ID  string       `json:"id"`
		Seq protocol.Int `json:"seq"`
	}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"welcome carries the session", func(t *testing.T) {
			var w protocol.WelcomeData
			if err := json.Unmarshal(alice.welcome.Data, &w); err != nil {
				t.Fatal(err)
			}
			if w.UserID != "alice" || w.SessionID == "" || w.HeartbeatIntervalMS != 25000 || w.NodeID != th.NodeID() {
				t.Fatalf("welcome = %+v", w)
			}
			if alice.welcome.UserID != "alice" || alice.welcome.Timestamp == 0 {
				t.Fatalf("welcome envelope = %+v", alice.welcome)
			}
		}},
		{"ping is answered by pong with the id", func(t *testing.T) {
			id := alice.send(protocol.TypePing, "", nil)
			if f := alice.reply(id); f.Type != protocol.TypePong {
				t.Fatalf("got %s", f.Type)
			}
		}},
		{"join_channel acks the access", func(t *testing.T) {
			var res protocol.JoinResult
			if err := json.Unmarshal(alice.ack(protocol.TypeJoinChannel, "general", nil), &res); err != nil {
				t.Fatal(err)
			}
			if res != (protocol.JoinResult{Channel: "general", ChannelType: "public", IsMember: true, CanWrite: true, Role: "member"}) {
				t.Fatalf("join result = %+v", res)
			}
		}},
		{"join_channel of a private channel is forbidden", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeJoinChannel, "secret", nil); code != protocol.CodeForbidden {
				t.Fatalf("code = %s", code)
			}
		}},
		{"join_channel of a missing channel is not_found", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeJoinChannel, "nope", nil); code != protocol.CodeNotFound {
				t.Fatalf("code = %s", code)
			}
		}},
		{"join_channel without a channel is invalid", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeJoinChannel, "", nil); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"a channel id with a NATS wildcard is invalid", func(t *testing.T) {
			for _, ch := range []string{"a.b", "*", ">", "a b"} {
				if code := alice.errorCode(protocol.TypeJoinChannel, ch, nil); code != protocol.CodeInvalidArgument {
					t.Fatalf("%q: code = %s", ch, code)
				}
			}
		}},
		{"leave_channel acks", func(t *testing.T) {
			alice.ack(protocol.TypeLeaveChannel, "general", nil)
		}},
		{"send_message acks the stored message and fans out", func(t *testing.T) {
			data := alice.ack(protocol.TypeSendMessage, "team", map[string]any{"content": "hi bob", "client_msg_id": "c1", "metadata": map[string]string{"k": "v"}})
			if err := json.Unmarshal(data, &sent); err != nil || sent.Seq != 1 || sent.ID == "" {
				t.Fatalf("ack data %s: %v", data, err)
			}
			f := bob.expect(protocol.TypeMessage)
			var m struct {
				Content  string            `json:"content"`
				UserID   string            `json:"user_id"`
				Metadata map[string]string `json:"metadata"`
			}
			if err := json.Unmarshal(f.Data, &m); err != nil || m.Content != "hi bob" || m.UserID != "alice" || m.Metadata["k"] != "v" {
				t.Fatalf("message %s: %v", f.Data, err)
			}
			if f.Channel != "team" || f.UserID != "alice" || seqOf(t, f) != 1 {
				t.Fatalf("message envelope %+v", f)
			}
		}},
		{"send_message with the same client_msg_id is idempotent", func(t *testing.T) {
			data := alice.ack(protocol.TypeSendMessage, "team", map[string]any{"content": "hi bob", "client_msg_id": "c1"})
			var again struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(data, &again); err != nil || again.ID != sent.ID {
				t.Fatalf("retry stored %s, first %s", data, sent.ID)
			}
		}},
		{"send_message without content is invalid", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeSendMessage, "team", map[string]any{"content": " "}); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"send_message with an unknown field is invalid", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeSendMessage, "team", map[string]any{"content": "x", "contnet": "y"}); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"send_message where not a member is forbidden", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeSendMessage, "open", map[string]any{"content": "x"}); code != protocol.CodeForbidden {
				t.Fatalf("code = %s", code)
			}
		}},
		{"service errors map to protocol codes", func(t *testing.T) {
			for _, tc := range []struct {
				err  error
				want string
			}{
				{status.Error(codes.Internal, "boom"), protocol.CodeInternal},
				{status.Error(codes.Unavailable, "down"), protocol.CodeInternal},
				{status.Error(codes.ResourceExhausted, "slow down"), protocol.CodeRateLimited},
				{status.Error(codes.Unauthenticated, "expired"), protocol.CodeUnauthenticated},
				{status.Error(codes.FailedPrecondition, "archived"), protocol.CodeInvalidArgument},
				{status.Error(codes.OutOfRange, "range"), protocol.CodeInvalidArgument},
				{status.Error(codes.NotFound, "gone"), protocol.CodeNotFound},
				{status.Error(codes.PermissionDenied, "no"), protocol.CodeForbidden},
			} {
				fx.chat.failNext("SendMessage", tc.err)
				id := alice.send(protocol.TypeSendMessage, "team", map[string]any{"content": "x"})
				f := alice.reply(id)
				e := decodeError(t, f)
				if f.Type != protocol.TypeError || e.Code != tc.want {
					t.Fatalf("%v: got %s %+v, want %s", tc.err, f.Type, e, tc.want)
				}
				if tc.want == protocol.CodeInternal && e.Message != "internal error" {
					t.Fatalf("internal error leaks detail: %q", e.Message)
				}
			}
		}},
		{"edit_message acks and fans out message_updated", func(t *testing.T) {
			alice.ack(protocol.TypeEditMessage, "team", map[string]any{"message_id": sent.ID, "content": "hi bob!"})
			f := bob.expect(protocol.TypeMessageUpdated)
			if f.Channel != "team" || seqOf(t, f) != 1 {
				t.Fatalf("message_updated %+v", f)
			}
		}},
		{"edit_message of another's message is forbidden", func(t *testing.T) {
			if code := bob.errorCode(protocol.TypeEditMessage, "team", map[string]any{"message_id": sent.ID, "content": "mine"}); code != protocol.CodeForbidden {
				t.Fatalf("code = %s", code)
			}
		}},
		{"delete_message of a missing message is not_found", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeDeleteMessage, "team", map[string]any{"message_id": "nope"}); code != protocol.CodeNotFound {
				t.Fatalf("code = %s", code)
			}
		}},
		{"delete_message acks and fans out message_deleted", func(t *testing.T) {
			alice.ack(protocol.TypeDeleteMessage, "team", map[string]any{"message_id": sent.ID})
			f := bob.expect(protocol.TypeMessageDeleted)
			if f.Channel != "team" {
				t.Fatalf("message_deleted %+v", f)
			}
		}},
		{"user_typing needs a joined channel", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeUserTyping, "general", nil); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"user_typing where read-only is forbidden", func(t *testing.T) {
			alice.join("open")
			if code := alice.errorCode(protocol.TypeUserTyping, "open", nil); code != protocol.CodeForbidden {
				t.Fatalf("code = %s", code)
			}
		}},
		{"user_typing reaches the others", func(t *testing.T) {
			alice.ack(protocol.TypeUserTyping, "team", nil)
			f := bob.expect(protocol.TypeUserTyping)
			var d protocol.TypingData
			if err := json.Unmarshal(f.Data, &d); err != nil || d.Typing == nil || !*d.Typing || f.UserID != "alice" || f.Channel != "team" {
				t.Fatalf("user_typing %+v: %v", f, err)
			}
		}},
		{"sync acks per channel", func(t *testing.T) {
			var res protocol.SyncResult
			if err := json.Unmarshal(alice.ack(protocol.TypeSync, "", map[string]any{"channels": map[string]any{"team": 0, "secret": 0}}), &res); err != nil {
				t.Fatal(err)
			}
			if r := res.Channels["team"]; r.Delivered != 1 || r.LastSeq != 1 || r.Error != nil {
				t.Fatalf("team: %+v", r)
			}
			if r := res.Channels["secret"]; r.Error == nil || r.Error.Code != protocol.CodeForbidden {
				t.Fatalf("secret: %+v", r)
			}
		}},
		{"sync with an invalid channel id is invalid", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeSync, "", map[string]any{"channels": map[string]any{"a.b": 0}}); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"mark_read acks and fans out a read receipt", func(t *testing.T) {
			bob.ack(protocol.TypeMarkRead, "team", map[string]any{"seq": "1"})
			f := alice.waitFor("read receipt", func(f protocol.Frame) bool {
				var r protocol.ReceiptData
				return f.Type == protocol.TypeReceipt && f.Channel == "team" && f.UserID == "bob" &&
					json.Unmarshal(f.Data, &r) == nil && r.Kind == protocol.ReceiptRead
			})
			var r protocol.ReceiptData
			if err := json.Unmarshal(f.Data, &r); err != nil || r.Kind != protocol.ReceiptRead || r.Seq != 1 {
				t.Fatalf("receipt %s: %v", f.Data, err)
			}
		}},
		{"set_status acks and friends see it", func(t *testing.T) {
			alice.ack(protocol.TypeSetStatus, "", map[string]any{"status": "away"})
			f := bob.waitFor("alice away", func(f protocol.Frame) bool {
				return f.Type == protocol.TypeUserOnline && f.UserID == "alice" && strings.Contains(string(f.Data), `"away"`)
			})
			var p protocol.PresenceData
			if err := json.Unmarshal(f.Data, &p); err != nil || p.Status != "away" || p.UserID != "alice" || len(p.LastSeen) == 0 {
				t.Fatalf("user_online %s: %v", f.Data, err)
			}
		}},
		{"set_status with a bad status is invalid", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeSetStatus, "", map[string]any{"status": "asleep"}); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"authenticate again refreshes the token", func(t *testing.T) {
			alice.ack(protocol.TypeAuthenticate, "", map[string]any{"token": tokenFor("alice")})
		}},
		{"authenticate with another user's token is forbidden", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeAuthenticate, "", map[string]any{"token": tokenFor("bob")}); code != protocol.CodeForbidden {
				t.Fatalf("code = %s", code)
			}
		}},
		{"authenticate with a bad token is unauthenticated", func(t *testing.T) {
			if code := alice.errorCode(protocol.TypeAuthenticate, "", map[string]any{"token": "garbage"}); code != protocol.CodeUnauthenticated {
				t.Fatalf("code = %s", code)
			}
		}},
		{"unknown frame type is invalid and echoes the id", func(t *testing.T) {
			if code := alice.errorCode("shout", "", nil); code != protocol.CodeInvalidArgument {
				t.Fatalf("code = %s", code)
			}
		}},
		{"data that is not an object is invalid", func(t *testing.T) {
			alice.sendRaw(`{"type":"ping","id":"arr","data":[1]}`)
			if f := alice.reply("arr"); f.Type != protocol.TypeError || decodeError(t, f).Code != protocol.CodeInvalidArgument {
				t.Fatalf("got %+v", f)
			}
		}},
		{"malformed JSON gets an error without id and the connection stays", func(t *testing.T) {
			alice.sendRaw(`{"type": "ping", "id": `)
			f := alice.expect(protocol.TypeError)
			if f.ID != "" || decodeError(t, f).Code != protocol.CodeInvalidArgument {
				t.Fatalf("got %+v", f)
			}
			id := alice.send(protocol.TypePing, "", nil)
			if f := alice.reply(id); f.Type != protocol.TypePong {
				t.Fatalf("after garbage: %s", f.Type)
			}
		}},
		{"a frame without id gets no ack", func(t *testing.T) {
			alice.sendFrame("", protocol.TypeLeaveChannel, "open", nil)
			id := alice.send(protocol.TypePing, "", nil)
			// Nothing may answer the leave before the pong answers the ping.
			for {
				f, err := alice.read(waitTimeout)
				if err != nil {
					t.Fatal(err)
				}
				if f.Type == protocol.TypeAck || f.Type == protocol.TypeError {
					t.Fatalf("frame without id answered: %+v", f)
				}
				if f.Type == protocol.TypePong {
					if f.ID != id {
						t.Fatalf("pong id %q, want %q", f.ID, id)
					}
					break
				}
			}
		}},
		{"user_joined and user_left fan out", func(t *testing.T) {
			fx.chat.addMember("team", "dave")
			f := alice.waitFor("user_joined", func(f protocol.Frame) bool { return f.Type == protocol.TypeUserJoined })
			if f.Channel != "team" {
				t.Fatalf("user_joined %+v", f)
			}
			fx.chat.removeMember("team", "dave", "alice")
			alice.waitFor("user_left", func(f protocol.Frame) bool { return f.Type == protocol.TypeUserLeft })
		}},
		{"delivered receipts in a small group", func(t *testing.T) {
			bob.ack(protocol.TypeSendMessage, "team", map[string]any{"content": "ping alice"})
			f := bob.waitFor("delivered receipt", func(f protocol.Frame) bool {
				var r protocol.ReceiptData
				return f.Type == protocol.TypeReceipt && f.UserID == "alice" &&
					json.Unmarshal(f.Data, &r) == nil && r.Kind == protocol.ReceiptDelivered && r.Seq == 2
			})
			var r protocol.ReceiptData
			if err := json.Unmarshal(f.Data, &r); err != nil || r.Kind != protocol.ReceiptDelivered || r.Seq != 2 {
				t.Fatalf("receipt %s: %v", f.Data, err)
			}
		}},
		{"a user going offline reaches friends", func(t *testing.T) {
			_ = bob.ws.Close()
			f := alice.waitFor("bob offline", func(f protocol.Frame) bool {
				return f.Type == protocol.TypeUserOffline && f.UserID == "bob"
			})
			var p protocol.PresenceData
			if err := json.Unmarshal(f.Data, &p); err != nil || p.Status != "offline" {
				t.Fatalf("user_offline %s: %v", f.Data, err)
			}
		}},
	}
	for _, tt := range tests {
		if !t.Run(tt.name, tt.run) {
			return
		}
	}
	if m := cov.missing(protocol.ServerTypes(), false); len(m) > 0 {
		t.Errorf("server frame types never seen: %v", m)
	}
	codes := slices.DeleteFunc(protocol.ErrorCodes(), func(c string) bool { return c == protocol.CodeSlowConsumer })
	if m := cov.missing(codes, true); len(m) > 0 {
		t.Errorf("error codes never seen: %v", m)
	}
	for _, typ := range protocol.ClientTypes() {
		if th.metric(t, "parley_gateway_frames_in_total", map[string]string{"type": typ}) == 0 {
			t.Errorf("frames_in_total{type=%q} = 0", typ)
		}
	}
	if th.metric(t, "parley_gateway_frames_in_total", map[string]string{"type": labelInvalid}) == 0 {
		t.Errorf("frames_in_total{type=invalid} = 0")
	}
	if th.metric(t, "parley_gateway_fanout_latency_seconds", nil) == 0 {
		t.Errorf("fanout latency never observed")
	}
}

func TestAuthentication(t *testing.T) {
	fx := newFixture(t)
	th := fx.startHub(t, func(c *Config) { c.Limits.AuthTimeout = 300 * time.Millisecond })
	tests := []struct {
		name      string
		header    string // Authorization
		frames    []string
		wantClose int    // 0: expect welcome
		wantError string // error code sent before the close, if any
	}{
		{name: "header", header: "Bearer " + tokenFor("alice")},
		{name: "header, lower-case scheme", header: "bearer " + tokenFor("alice")},
		{name: "first frame", frames: []string{`{"type":"authenticate","id":"a1","data":{"token":"` + tokenFor("alice") + `"}}`}},
		{name: "bad header token", header: "Bearer nope", wantClose: protocol.CloseAuthFailed, wantError: protocol.CodeUnauthenticated},
		{name: "bad first-frame token", frames: []string{`{"type":"authenticate","data":{"token":"nope"}}`}, wantClose: protocol.CloseAuthFailed, wantError: protocol.CodeUnauthenticated},
		{name: "first frame without token", frames: []string{`{"type":"authenticate","data":{}}`}, wantClose: protocol.CloseAuthFailed, wantError: protocol.CodeUnauthenticated},
		{name: "first frame not authenticate", frames: []string{`{"type":"ping","id":"p"}`}, wantClose: protocol.CloseAuthFailed, wantError: protocol.CodeUnauthenticated},
		{name: "timeout", wantClose: protocol.CloseAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			c := dialHeader(t, th.url, h)
			for _, f := range tt.frames {
				c.sendRaw(f)
			}
			if tt.wantClose == 0 {
				w := c.expect(protocol.TypeWelcome)
				if len(tt.frames) > 0 && w.ID != "a1" {
					t.Errorf("welcome id = %q, want the authenticate frame's", w.ID)
				}
				var d protocol.WelcomeData
				if err := json.Unmarshal(w.Data, &d); err != nil || d.UserID != "alice" {
					t.Fatalf("welcome %s: %v", w.Data, err)
				}
				return
			}
			if tt.wantError != "" {
				f := c.expect(protocol.TypeError)
				if code := decodeError(t, f).Code; code != tt.wantError {
					t.Errorf("error code = %s, want %s", code, tt.wantError)
				}
			}
			if code := c.expectClose(); code != tt.wantClose {
				t.Fatalf("close code = %d, want %d", code, tt.wantClose)
			}
		})
	}
}

func TestFrameTooBig(t *testing.T) {
	fx := newFixture(t)
	th := fx.startHub(t, func(c *Config) { c.Limits.MaxMessageBytes = 1024 })
	c := dial(t, th.url, "alice")
	big := make([]byte, 2048)
	for i := range big {
		big[i] = 'x'
	}
	_ = c.ws.WriteMessage(websocket.TextMessage, big)
	if code := c.expectClose(); code != protocol.CloseTooBig {
		t.Fatalf("close code = %d, want %d", code, protocol.CloseTooBig)
	}
	eventually(t, func() error {
		if n := th.metric(t, "parley_gateway_closes_total", map[string]string{"code": "1009"}); n != 1 {
			return fmt.Errorf("closes_total{1009} = %v", n)
		}
		return nil
	})
}
