package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// readModes are the two ways a hub reads connections (reader.go).
var readModes = []struct {
	name     string
	blocking bool
}{
	{name: "poller"},
	{name: "blocking reads", blocking: true},
}

// readStates returns every connection's read state.
func readStates(h *Hub) []uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []uint32
	for c := range h.conns {
		out = append(out, c.readState.Load())
	}
	return out
}

// checkReadMode fails unless every connection is read the way mode says.
func checkReadMode(t *testing.T, h *Hub, blocking bool) {
	t.Helper()
	for _, s := range readStates(h) {
		if polled := s != readUnpolled; polled == blocking {
			t.Fatalf("a connection's read state is %d, want it polled = %v", s, !blocking)
		}
	}
}

// writeWire writes raw frames to the client's socket in one write.
func (c *client) writeWire(frames ...wireFrame) {
	c.t.Helper()
	_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := c.ws.NetConn().Write(wire(frames...)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func jsonFrame(t *testing.T, f map[string]any) wireFrame {
	t.Helper()
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return text(string(b))
}

// TestReading drives the read side frame by frame in both read modes:
// frames that arrive together, fragments, control frames, and the close
// codes for clients that break the protocol.
func TestReading(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.chat.addChannel("team", "group", "alice")
			th := fx.startHub(t, generous, func(c *Config) {
				c.BlockingReads = mode.blocking
				c.Limits.MaxMessageBytes = 1024
			})

			t.Run("frames that arrive with the authenticate frame", func(t *testing.T) {
				c := dialHeader(t, th.url, http.Header{})
				c.writeWire(
					jsonFrame(t, map[string]any{"type": protocol.TypeAuthenticate, "id": "a", "data": map[string]any{"token": tokenFor("alice")}}),
					jsonFrame(t, map[string]any{"type": protocol.TypeJoinChannel, "id": "j", "channel": "team"}),
					jsonFrame(t, map[string]any{"type": protocol.TypePing, "id": "p"}),
				)
				if f := c.reply("a"); f.Type != protocol.TypeWelcome {
					t.Fatalf("authenticate answered with %s", f.Type)
				}
				if f := c.reply("j"); f.Type != protocol.TypeAck {
					t.Fatalf("join answered with %s %s", f.Type, f.Data)
				}
				if f := c.reply("p"); f.Type != protocol.TypePong {
					t.Fatalf("ping answered with %s", f.Type)
				}
				checkReadMode(t, th.Hub, mode.blocking)
			})

			t.Run("a fragmented message with a ping between its fragments", func(t *testing.T) {
				c := dial(t, th.url, "alice")
				pongs := make(chan string, 1)
				c.ws.SetPongHandler(func(s string) error {
					pongs <- s
					return nil
				})
				msg := `{"type":"ping","id":"frag"}`
				c.writeWire(wireFrame{op: opText, payload: []byte(msg[:5])})
				c.writeWire(wireFrame{fin: true, op: opPing, payload: []byte("are you there")})
				c.writeWire(wireFrame{op: opContinuation, payload: []byte(msg[5:12])})
				c.writeWire(wireFrame{fin: true, op: opContinuation, payload: []byte(msg[12:])})
				if f := c.reply("frag"); f.Type != protocol.TypePong {
					t.Fatalf("fragmented ping answered with %s", f.Type)
				}
				select {
				case s := <-pongs:
					if s != "are you there" {
						t.Fatalf("pong payload %q", s)
					}
				default:
					t.Fatal("no pong to the WebSocket ping before the reply")
				}
			})

			t.Run("a frame cut across writes", func(t *testing.T) {
				c := dial(t, th.url, "alice")
				b := jsonFrame(t, map[string]any{"type": protocol.TypePing, "id": "cut"}).bytes()
				for _, part := range [][]byte{b[:1], b[1:7], b[7:]} {
					if _, err := c.ws.NetConn().Write(part); err != nil {
						t.Fatal(err)
					}
				}
				if f := c.reply("cut"); f.Type != protocol.TypePong {
					t.Fatalf("ping answered with %s", f.Type)
				}
			})

			t.Run("the client closes", func(t *testing.T) {
				c := dial(t, th.url, "alice")
				c.writeWire(wireFrame{fin: true, op: opClose, payload: closePayload(4000, "done")})
				if code := c.expectClose(); code != 4000 {
					t.Fatalf("the server answered close 4000 with %d", code)
				}
			})

			for _, tt := range []struct {
				name  string
				frame wireFrame
				want  int
			}{
				{"unmasked frame", wireFrame{fin: true, op: opText, payload: []byte("{}"), unmasked: true}, protocol.CloseProtocolError},
				{"unknown opcode", wireFrame{fin: true, op: 0x5}, protocol.CloseProtocolError},
				{"continuation without a message", wireFrame{fin: true, op: opContinuation, payload: []byte("x")}, protocol.CloseProtocolError},
				{"close reason not UTF-8", wireFrame{fin: true, op: opClose, payload: closePayload(1000, "\xc3")}, protocol.CloseInvalidPayload},
				{"message over the limit", text(strings.Repeat("x", 2000)), protocol.CloseTooBig},
			} {
				t.Run(tt.name, func(t *testing.T) {
					c := dial(t, th.url, "alice")
					c.writeWire(tt.frame)
					if code := c.expectClose(); code != tt.want {
						t.Fatalf("close code %d, want %d", code, tt.want)
					}
				})
			}

			// Every connection above has ended: none is left to the poller.
			eventually(t, func() error {
				if n := len(readStates(th.Hub)); n != 0 {
					return fmt.Errorf("%d connections still open", n)
				}
				return nil
			})
		})
	}
}

// TestReadingClosesOnSilence: with no read deadline on the sockets, the
// ping loop drops a connection that stopped sending anything, pongs
// included, in both read modes.
func TestReadingClosesOnSilence(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			fx := newFixture(t)
			th := fx.startHub(t, func(c *Config) {
				c.BlockingReads = mode.blocking
				c.Limits.PingInterval = 50 * time.Millisecond
				c.Limits.PongWait = 200 * time.Millisecond
			})
			c := dial(t, th.url, "alice")
			// The client neither reads (so never answers a ping) nor
			// writes.
			eventually(t, func() error {
				if n := th.Stats().Connections; n != 0 {
					return fmt.Errorf("%d connections", n)
				}
				return nil
			})
			_ = c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
			for {
				if _, _, err := c.ws.ReadMessage(); err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						t.Fatalf("got a close frame (%v), want the socket dropped", err)
					}
					break
				}
			}
		})
	}
}
