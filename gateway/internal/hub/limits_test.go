package hub

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/gateway/internal/hub/ratelimit"
)

func TestRateLimitsPerClass(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("team", "group", "alice", "bob")
	tests := []struct {
		name  string
		rate  func(*Limits) *ratelimit.Rate
		typ   string
		data  any
		class string
	}{
		{"messages", func(l *Limits) *ratelimit.Rate { return &l.Messages }, protocol.TypeSendMessage, map[string]any{"content": "x"}, "messages"},
		{"typing", func(l *Limits) *ratelimit.Rate { return &l.Typing }, protocol.TypeUserTyping, nil, "typing"},
		{"joins", func(l *Limits) *ratelimit.Rate { return &l.Joins }, protocol.TypeJoinChannel, nil, "joins"},
		{"other", func(l *Limits) *ratelimit.Rate { return &l.Other }, protocol.TypePing, nil, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := fx.startHub(t, generous, func(c *Config) {
				// Three per burst, refilling too slowly to matter here.
				*tt.rate(&c.Limits) = ratelimit.Rate{Every: time.Hour, Burst: 3}
				c.Limits.AbuseThreshold = -1
			})
			c := dial(t, th.url, "alice")
			if tt.typ != protocol.TypeJoinChannel {
				c.join("team")
			}
			for i := range 3 {
				id := c.send(tt.typ, "team", tt.data)
				if f := c.reply(id); f.Type == protocol.TypeError {
					t.Fatalf("frame %d within the burst refused: %s", i, f.Data)
				}
			}
			if code := c.errorCode(tt.typ, "team", tt.data); code != protocol.CodeRateLimited {
				t.Fatalf("4th frame: code %s, want rate_limited", code)
			}
			if n := th.metric(t, "parley_gateway_rate_limited_total", map[string]string{"class": tt.class}); n != 1 {
				t.Fatalf("rate_limited_total{class=%s} = %v", tt.class, n)
			}
			// Another class is unaffected.
			other := protocol.TypePing
			if tt.typ == protocol.TypePing {
				other = protocol.TypeLeaveChannel
			}
			if f := c.reply(c.send(other, "team", nil)); f.Type == protocol.TypeError {
				t.Fatalf("%s refused after %s was limited: %s", other, tt.name, f.Data)
			}
		})
	}
}

func TestTypingThrottledPerUser(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("team", "group", "alice", "bob")
	th := fx.startHub(t, generous, func(c *Config) { c.Limits.TypingThrottle = time.Hour })
	// Two connections of alice: the second's typing is coalesced with the
	// first's.
	a1, a2, bob := dial(t, th.url, "alice"), dial(t, th.url, "alice"), dial(t, th.url, "bob")
	for _, c := range []*client{a1, a2, bob} {
		c.join("team")
	}
	a1.ack(protocol.TypeUserTyping, "team", nil)
	data := a2.ack(protocol.TypeUserTyping, "team", nil)
	if !strings.Contains(string(data), `"throttled":true`) {
		t.Fatalf("second typing ack = %s, want throttled", data)
	}
	bob.expect(protocol.TypeUserTyping)
	// "Stopped typing" is never throttled.
	a2.ack(protocol.TypeUserTyping, "team", map[string]any{"typing": false})
	f := bob.expect(protocol.TypeUserTyping)
	if !strings.Contains(string(f.Data), `"typing":false`) {
		t.Fatalf("got %s, want typing false", f.Data)
	}
}

func TestAbuseCloses4008(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name  string
		frame string
	}{
		{"malformed frames", `{"type":`},
		{"rate-limited frames", `{"type":"ping"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := fx.startHub(t, func(c *Config) {
				c.Limits.Other = ratelimit.Rate{Every: time.Hour, Burst: 1}
				c.Limits.AbuseThreshold = 10
			})
			c := dial(t, th.url, "alice")
			for range 12 {
				if err := c.ws.WriteMessage(websocket.TextMessage, []byte(tt.frame)); err != nil {
					break // closed already
				}
			}
			if code := c.expectClose(); code != protocol.ClosePolicy {
				t.Fatalf("close code = %d, want %d", code, protocol.ClosePolicy)
			}
		})
	}
}

func TestConnectionCaps(t *testing.T) {
	fx := newFixture(t)
	t.Run("per IP, before upgrading", func(t *testing.T) {
		th := fx.startHub(t, func(c *Config) { c.Limits.MaxConnsPerIP = 2 })
		dial(t, th.url, "a")
		dial(t, th.url, "b")
		_, resp, err := websocket.DefaultDialer.Dial(th.url, http.Header{"Authorization": {"Bearer " + tokenFor("c")}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third connection: %v, %v; want HTTP 429", err, resp)
		}
		if n := th.metric(t, "parley_gateway_rate_limited_total", map[string]string{"class": "conns_ip"}); n != 1 {
			t.Fatalf("rate_limited_total{conns_ip} = %v", n)
		}
	})
	t.Run("per user, header auth: 429", func(t *testing.T) {
		th := fx.startHub(t, func(c *Config) { c.Limits.MaxConnsPerUser = 1 })
		first := dial(t, th.url, "alice")
		_, resp, err := websocket.DefaultDialer.Dial(th.url, http.Header{"Authorization": {"Bearer " + tokenFor("alice")}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second connection: %v, %v; want HTTP 429", err, resp)
		}
		// Another user is fine, and the slot frees when the first closes.
		dial(t, th.url, "bob")
		_ = first.ws.Close()
		eventually(t, func() error {
			ws, _, err := websocket.DefaultDialer.Dial(th.url, http.Header{"Authorization": {"Bearer " + tokenFor("alice")}})
			if err != nil {
				return err
			}
			return ws.Close()
		})
	})
	t.Run("per user, first-frame auth: 4008", func(t *testing.T) {
		th := fx.startHub(t, func(c *Config) { c.Limits.MaxConnsPerUser = 1 })
		dial(t, th.url, "alice")
		c := dialHeader(t, th.url, nil)
		c.sendRaw(`{"type":"authenticate","data":{"token":"` + tokenFor("alice") + `"}}`)
		if code := decodeError(t, c.expect(protocol.TypeError)).Code; code != protocol.CodeRateLimited {
			t.Fatalf("error code = %s", code)
		}
		if code := c.expectClose(); code != protocol.ClosePolicy {
			t.Fatalf("close code = %d, want %d", code, protocol.ClosePolicy)
		}
	})
}

func TestOrigin(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name    string
		allowed []string
		origin  string // "self" means the server's own origin
		ok      bool
	}{
		{"no origin (non-browser)", nil, "", true},
		{"same origin", nil, "self", true},
		{"foreign origin refused by default", nil, "https://evil.example", false},
		{"listed origin", []string{"https://app.example"}, "https://app.example", true},
		{"listed origin, case and slash", []string{"https://APP.example/"}, "https://app.example", true},
		{"unlisted origin", []string{"https://app.example"}, "https://evil.example", false},
		{"wildcard", []string{"*"}, "https://anything.example", true},
		{"garbage origin", nil, "::::", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := fx.startHub(t, func(c *Config) { c.AllowedOrigins = tt.allowed })
			h := http.Header{"Authorization": {"Bearer " + tokenFor("alice")}}
			switch tt.origin {
			case "":
			case "self":
				h.Set("Origin", th.srv.URL)
			default:
				h.Set("Origin", tt.origin)
			}
			ws, resp, err := websocket.DefaultDialer.Dial(th.url, h)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = ws.Close()
				return
			}
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %v, %v; want HTTP 403", err, resp)
			}
		})
	}
}

// TestSlowConsumer floods a channel while one client never reads: that
// client is closed with 4013 (after a slow_consumer error frame), and a
// second client in the same channel receives every message regardless.
func TestSlowConsumer(t *testing.T) {
	t0 := time.Now()
	fx := newFixture(t)
	fx.chat.addChannel("flood", "public", "alice", "fast", "slow")
	th := fx.startHub(t, generous, func(c *Config) {
		c.Limits.SendQueueSize = 16
		c.Limits.WriteWait = time.Minute // the slow client must still get its close frame
	})
	fast := dial(t, th.url, "fast")
	fast.join("flood")
	// The slow client's tiny receive buffer stops the kernel from
	// absorbing the flood on its behalf.
	slow := dialSlowReader(t, th.url, "slow")
	ws := slow.ws
	slow.join("flood")

	content := strings.Repeat("x", 3500)
	const n, batch = 3000, 10
	var got atomic.Int64
	received := make(chan error, 1)
	go func() {
		for next := int64(1); next <= n; {
			f, err := fast.read(waitTimeout)
			if err != nil {
				received <- fmt.Errorf("fast client at seq %d: %w", next, err)
				return
			}
			if f.Type != protocol.TypeMessage {
				continue
			}
			var d struct {
				Seq protocol.Int `json:"seq"`
			}
			if err := jsonUnmarshal(f.Data, &d); err != nil || int64(d.Seq) != next {
				received <- fmt.Errorf("fast client: got seq %d, want %d (%v)", d.Seq, next, err)
				return
			}
			got.Store(next)
			next++
		}
		received <- nil
	}()
	finished := false
	for i := 1; i <= n; i++ {
		if _, err := fx.chat.sendAs("alice", "flood", fmt.Sprintf("%d %s", i, content)); err != nil {
			t.Fatal(err)
		}
		if i%batch == 0 {
			// Pace the flood to what a reading client keeps up with: the
			// fast client reads everything as it comes, the slow one not
			// at all.
			deadline := time.Now().Add(waitTimeout)
			for !finished && got.Load() < int64(i) && time.Now().Before(deadline) {
				select {
				case err := <-received:
					if err != nil {
						t.Fatal(err)
					}
					finished = true
				case <-time.After(time.Millisecond):
				}
			}
		}
	}
	if !finished {
		if err := <-received; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s flood delivered", time.Since(t0))
	eventually(t, func() error {
		if th.metric(t, "parley_gateway_slow_consumer_closes_total", nil) != 1 {
			return fmt.Errorf("slow consumer not closed yet")
		}
		return nil
	})
	t.Logf("%s slow consumer closed", time.Since(t0))
	_ = ws.NetConn().(*net.TCPConn).SetReadBuffer(4 << 20)
	// Now read: what the socket held, then the error frame and 4013.
	sawError := false
	for {
		f, err := slow.read(waitTimeout)
		if err != nil {
			var ce *websocket.CloseError
			if !errorsAs(err, &ce) || ce.Code != protocol.CloseSlowConsumer {
				t.Fatalf("slow client ended with %v, want close 4013", err)
			}
			break
		}
		if f.Type == protocol.TypeError && decodeError(t, f).Code == protocol.CodeSlowConsumer {
			sawError = true
		}
	}
	t.Logf("%s slow client read to the close", time.Since(t0))
	if !sawError {
		t.Error("no slow_consumer error frame before the close")
	}
	if n := th.metric(t, "parley_gateway_closes_total", map[string]string{"code": "4013"}); n != 1 {
		t.Errorf("closes_total{4013} = %v", n)
	}
}

// TestKeepalive: the server pings; a client that answers pongs (any
// gorilla client reading) stays connected past PongWait, and one that stops
// reading is dropped after it.
func TestKeepalive(t *testing.T) {
	fx := newFixture(t)
	th := fx.startHub(t, func(c *Config) {
		c.Limits.PingInterval = 50 * time.Millisecond
		c.Limits.PongWait = 300 * time.Millisecond
	})
	alive := dial(t, th.url, "alice")
	dead := dial(t, th.url, "bob")
	var pings atomic.Int32
	alive.ws.SetPingHandler(func(data string) error {
		pings.Add(1)
		return alive.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	// alice reads (and so answers pings) in the background.
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := alive.ws.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	// bob never reads, so never answers a ping: dropped after PongWait.
	eventually(t, func() error {
		if s := th.Stats(); s.Connections != 1 {
			return fmt.Errorf("connections = %d, want 1", s.Connections)
		}
		return nil
	})
	// alice outlives several PongWaits by answering pings alone.
	eventually(t, func() error {
		if n := pings.Load(); n < 30 {
			return fmt.Errorf("%d pings so far", n)
		}
		return nil
	})
	if s := th.Stats(); s.Connections != 1 || s.Authenticated != 1 {
		t.Fatalf("stats %+v: the answering client was dropped", s)
	}
	if code := dead.expectClose(); code != 0 {
		t.Fatalf("dead client got close code %d, want the socket dropped", code)
	}
	_ = alive.ws.Close()
	<-readErr
}

// heldPresence holds every Connect until release is closed, recording the
// order in which Connects start and end.
type heldPresence struct {
	presencev1.PresenceServiceClient
	release chan struct{}
	mu      sync.Mutex
	events  []string
}

func (p *heldPresence) Connect(ctx context.Context, req *presencev1.ConnectRequest, opts ...grpc.CallOption) (*presencev1.ConnectResponse, error) {
	p.record("start " + req.GetUserId())
	defer p.record("end " + req.GetUserId())
	select {
	case <-p.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return p.PresenceServiceClient.Connect(ctx, req, opts...)
}

func (p *heldPresence) record(e string) {
	p.mu.Lock()
	p.events = append(p.events, e)
	p.mu.Unlock()
}

func (p *heldPresence) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// waitEvents waits until the log holds want.
func (p *heldPresence) waitEvents(t *testing.T, want ...string) {
	t.Helper()
	eventually(t, func() error {
		if got := p.log(); !slices.Equal(got, want) {
			return fmt.Errorf("presence calls %q, want %q", got, want)
		}
		return nil
	})
}

func TestSetupSlots(t *testing.T) {
	fx := newFixture(t)
	start := func(t *testing.T, wait time.Duration) (*testHub, *heldPresence) {
		held := &heldPresence{PresenceServiceClient: fx.presClient, release: make(chan struct{})}
		th := fx.startHub(t, func(c *Config) {
			c.Presence = held
			c.Limits.MaxSetups = 1
			c.Limits.SetupWait = wait
		})
		// alice's setup holds the only slot until release.
		dial(t, th.url, "alice")
		held.waitEvents(t, "start alice")
		return th, held
	}

	t.Run("a new connection queues for its turn", func(t *testing.T) {
		th, held := start(t, time.Minute)
		bob := make(chan *client, 1)
		go func() {
			h := http.Header{}
			h.Set("Authorization", "Bearer "+tokenFor("bob"))
			ws, _, err := websocket.DefaultDialer.Dial(th.url, h)
			if err != nil {
				t.Errorf("bob: %v", err)
				bob <- nil
				return
			}
			bob <- &client{t: t, ws: ws}
		}()
		close(held.release)
		c := <-bob
		if c == nil {
			t.FailNow()
		}
		t.Cleanup(func() { _ = c.ws.Close() })
		c.expect(protocol.TypeWelcome)
		// bob's setup started only after alice's had ended.
		held.waitEvents(t, "start alice", "end alice", "start bob", "end bob")
		if n := th.metric(t, "parley_gateway_rate_limited_total", map[string]string{"class": "setups"}); n != 0 {
			t.Fatalf("rate_limited_total{class=setups} = %v, want 0", n)
		}
	})

	t.Run("header authentication waits too long: 503", func(t *testing.T) {
		th, held := start(t, 50*time.Millisecond)
		defer close(held.release)
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tokenFor("bob"))
		ws, resp, err := websocket.DefaultDialer.Dial(th.url, h)
		if err == nil {
			_ = ws.Close()
			t.Fatal("bob connected while the only setup slot was taken")
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("bob: %v, response %+v; want 503 with Retry-After", err, resp)
		}
		if n := th.metric(t, "parley_gateway_rate_limited_total", map[string]string{"class": "setups"}); n != 1 {
			t.Fatalf("rate_limited_total{class=setups} = %v, want 1", n)
		}
	})

	t.Run("first-frame authentication waits too long: 1013", func(t *testing.T) {
		th, held := start(t, 50*time.Millisecond)
		defer close(held.release)
		c := dialHeader(t, th.url, nil)
		id := c.send(protocol.TypeAuthenticate, "", map[string]any{"token": tokenFor("bob")})
		f := c.reply(id)
		if e := decodeError(t, f); f.Type != protocol.TypeError || e.Code != protocol.CodeRateLimited {
			t.Fatalf("authenticate answered %s %s, want error rate_limited", f.Type, f.Data)
		}
		if code := c.expectClose(); code != protocol.CloseTryAgainLater {
			t.Fatalf("close code %d, want %d", code, protocol.CloseTryAgainLater)
		}
		if got := held.log(); slices.Contains(got, "start bob") {
			t.Fatalf("bob's setup ran: %q", got)
		}
	})
}

// dropLog records the users whose connections the hub disconnects from
// presence.
type dropLog struct {
	presencev1.PresenceServiceClient
	mu    sync.Mutex
	users []string
}

func (p *dropLog) Disconnect(ctx context.Context, req *presencev1.DisconnectRequest, opts ...grpc.CallOption) (*presencev1.DisconnectResponse, error) {
	p.mu.Lock()
	p.users = append(p.users, req.GetUserId())
	p.mu.Unlock()
	return p.PresenceServiceClient.Disconnect(ctx, req, opts...)
}

func (p *dropLog) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.users)
}

// TestTeardownSlots checks that a closing connection's presence disconnect
// takes a setup slot, and is skipped (and counted) when none comes within
// SetupWait.
func TestTeardownSlots(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name string
		wait time.Duration
		// slotFreed: the test frees the slot it holds while alice's
		// teardown waits; otherwise it keeps it past SetupWait.
		slotFreed bool
	}{
		{name: "a slot comes: the disconnect runs", wait: time.Minute, slotFreed: true},
		{name: "no slot in time: the disconnect is skipped", wait: 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pres := &dropLog{PresenceServiceClient: fx.presClient}
			th := fx.startHub(t, func(c *Config) {
				c.Presence = pres
				c.Limits.MaxSetups = 1
				c.Limits.SetupWait = tt.wait
			})
			alice := dial(t, th.url, "alice")
			th.setups <- struct{}{} // after alice's setup: the only slot
			_ = alice.ws.Close()
			// freeSlot frees the test's slot; a teardown that freed a slot
			// it never took would have taken it already.
			freeSlot := func() {
				select {
				case <-th.setups:
				case <-time.After(waitTimeout):
					t.Fatal("the slot the test held was freed by someone else")
				}
			}
			teardowns := func() float64 {
				return th.metric(t, "parley_gateway_rate_limited_total", map[string]string{"class": "teardowns"})
			}
			if tt.slotFreed {
				freeSlot()
				eventually(t, func() error {
					if got := pres.log(); !slices.Equal(got, []string{"alice"}) {
						return fmt.Errorf("disconnects %q, want alice's", got)
					}
					return nil
				})
				if n := teardowns(); n != 0 {
					t.Fatalf("rate_limited_total{class=teardowns} = %v, want 0", n)
				}
				return
			}
			eventually(t, func() error {
				if n := teardowns(); n != 1 {
					return fmt.Errorf("rate_limited_total{class=teardowns} = %v, want 1", n)
				}
				return nil
			})
			freeSlot()
			if got := pres.log(); len(got) != 0 {
				t.Fatalf("disconnects %q without a slot", got)
			}
		})
	}
}
