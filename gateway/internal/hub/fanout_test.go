package hub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/platform/embedded"
	"github.com/parleyhq/parley/platform/testenv"
)

// sendBackground sends n messages into channel from another goroutine,
// pausing every few so the test interleaves with them; it returns a channel
// closed when all are stored.
func sendBackground(t *testing.T, chat *fakeChat, channel string, n int, step func(i int)) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			if _, err := chat.sendAs("alice", channel, fmt.Sprintf("m%d", i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
			if step != nil {
				step(i)
			}
		}
	}()
	return done
}

// TestSyncNoGapNoDuplicate reconnects a client in the middle of a stream of
// messages: after sync it must have every message exactly once, in order.
func TestSyncNoGapNoDuplicate(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("busy", "group", "alice", "bob")
	th := fx.startHub(t, generous)

	for round := range 3 {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			fx.chat.mu.Lock()
			start := int64(len(fx.chat.channels["busy"].msgs))
			fx.chat.mu.Unlock()
			const n = 300
			bob := dial(t, th.url, "bob")
			bob.join("busy")
			// Bob reads a while, then drops while traffic continues.
			gate := make(chan struct{})
			var once sync.Once
			done := sendBackground(t, fx.chat, "busy", n, func(i int) {
				if i == n/3 {
					once.Do(func() { close(gate) })
				}
			})
			<-gate
			var last int64
			for last < start+20 {
				f := bob.expect(protocol.TypeMessage)
				last = seqOf(t, f)
			}
			_ = bob.ws.Close()

			again := dial(t, th.url, "bob")
			id := again.send(protocol.TypeSync, "", map[string]any{"channels": map[string]any{"busy": last}})
			next := last + 1
			var ack protocol.Frame
			for {
				f := again.waitFor("sync traffic", func(f protocol.Frame) bool {
					return f.ID == id || f.Type == protocol.TypeMessage
				})
				if f.ID == id {
					ack = f
					break
				}
				if got := seqOf(t, f); got != next {
					t.Fatalf("during sync: got seq %d, want %d", got, next)
				}
				next++
			}
			if ack.Type != protocol.TypeAck {
				t.Fatalf("sync answered %s %s", ack.Type, ack.Data)
			}
			var res protocol.SyncResult
			if err := json.Unmarshal(ack.Data, &res); err != nil {
				t.Fatal(err)
			}
			r := res.Channels["busy"]
			if r.Error != nil || r.Truncated || r.LastSeq != next-1 || r.Delivered != int(next-1-last) {
				t.Fatalf("sync result %+v; delivered up to %d from %d", r, next-1, last)
			}
			<-done
			again.collectMessages("busy", next, start+n)
			_ = again.ws.Close()
		})
	}
}

// TestSyncTruncated replays at most MaxSyncMessages and tells the client
// where to page from; live delivery continues after it.
func TestSyncTruncated(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("long", "group", "alice", "bob")
	for i := range 25 {
		if _, err := fx.chat.sendAs("alice", "long", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	th := fx.startHub(t, generous, func(c *Config) { c.Limits.MaxSyncMessages = 10 })
	bob := dial(t, th.url, "bob")
	id := bob.send(protocol.TypeSync, "", map[string]any{"channels": map[string]any{"long": 3}})
	bob.collectMessages("long", 4, 13)
	f := bob.reply(id)
	var res protocol.SyncResult
	if err := json.Unmarshal(f.Data, &res); err != nil {
		t.Fatal(err)
	}
	if r := res.Channels["long"]; !r.Truncated || r.NextAfterSeq != 13 || r.Delivered != 10 || r.LastSeq != 13 {
		t.Fatalf("sync result %+v", r)
	}
	// The client pages 14..25 over REST; live messages flow meanwhile.
	if _, err := fx.chat.sendAs("alice", "long", "live"); err != nil {
		t.Fatal(err)
	}
	if got := seqOf(t, bob.expect(protocol.TypeMessage)); got != 26 {
		t.Fatalf("live message seq %d, want 26", got)
	}
}

// TestGapInLiveStreamIsReplayed loses one realtime frame (stored, never
// published): the hub notices the gap at the next frame and replays it.
func TestGapInLiveStreamIsReplayed(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("lossy", "group", "alice", "bob")
	fx.chat.setDrop(func(seq int64) bool { return seq == 5 || seq == 9 || seq == 10 })
	th := fx.startHub(t, generous)
	bob := dial(t, th.url, "bob")
	bob.join("lossy")
	for i := range 12 {
		if _, err := fx.chat.sendAs("alice", "lossy", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.collectMessages("lossy", 1, 12)
	if n := th.metric(t, "parley_gateway_recoveries_total", nil); n < 1 {
		t.Fatalf("recoveries_total = %v", n)
	}
}

// TestNATSRestart restarts the NATS server mid-stream: messages published
// during the outage are lost by core NATS, and the hub replays them once
// reconnected, so the client sees no gap.
func TestNATSRestart(t *testing.T) {
	srv, err := embedded.StartNATS(embedded.NATSConfig{Dir: filepath.Join(t.TempDir(), "nats"), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	connect := func(t testing.TB, extra ...nats.Option) *nats.Conn {
		opts := append([]nats.Option{
			nats.MaxReconnects(-1),
			nats.ReconnectWait(20 * time.Millisecond),
			nats.ReconnectJitter(0, 0),
		}, extra...)
		nc, err := nats.Connect(srv.URL(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	fx := &fixture{prefix: testenv.Unique(t.Name()) + ".", natsURL: srv.URL()}
	fx.connect = func(t testing.TB) *nats.Conn { return connect(t) }
	// The publisher buffers nothing while disconnected: what it publishes
	// during the outage is lost, as realtime frames are.
	fx.init(t, connect(t, nats.ReconnectBufSize(-1)))
	fx.chat.addChannel("live", "group", "alice", "bob")
	th := fx.startHub(t, generous)

	bob := dial(t, th.url, "bob")
	bob.join("live")
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := fx.chat.sendAs("alice", "live", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(1, 5)
	bob.collectMessages("live", 1, 5)

	srv.Server().Shutdown()
	srv.Server().WaitForShutdown()
	eventually(t, func() error {
		if fx.nc.IsConnected() {
			return fmt.Errorf("publisher still connected")
		}
		return nil
	})
	send(6, 10) // stored, lost on the wire
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// Without any new traffic, the reconnection alone replays 6..10.
	bob.collectMessages("live", 6, 10)
	eventually(t, func() error {
		if !fx.nc.IsConnected() {
			return fmt.Errorf("publisher not reconnected")
		}
		return nil
	})
	send(11, 15)
	bob.collectMessages("live", 11, 15)
	if n := th.metric(t, "parley_gateway_recoveries_total", nil); n < 1 {
		t.Fatalf("recoveries_total = %v", n)
	}
}

// TestTwoHubs runs two gateways on one NATS: users on different gateways
// chat, see typing and presence; stopping one sends its users offline and
// they recover on the other without a gap.
func TestTwoHubs(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("room", "group", "alice", "bob")
	fx.users.befriend("alice", "bob")
	h1 := fx.startHub(t, generous)
	h2 := fx.startHub(t, generous)

	alice := dial(t, h1.url, "alice")
	alice.join("room")
	bob := dial(t, h2.url, "bob")
	bob.join("room")

	// Presence crosses: alice follows bob, who connected on the other hub.
	eventually(t, func() error {
		if fx.pres.connectionsOf("bob") != 1 {
			return fmt.Errorf("bob not connected")
		}
		return nil
	})
	bob.ack(protocol.TypeSetStatus, "", map[string]any{"status": "busy"})
	alice.waitFor("bob busy", func(f protocol.Frame) bool {
		var p protocol.PresenceData
		return f.Type == protocol.TypeUserOnline && f.UserID == "bob" && json.Unmarshal(f.Data, &p) == nil && p.Status == "busy"
	})

	// Messages and typing cross.
	alice.ack(protocol.TypeSendMessage, "room", map[string]any{"content": "hello from h1"})
	if got := seqOf(t, bob.expect(protocol.TypeMessage)); got != 1 {
		t.Fatalf("bob got seq %d", got)
	}
	bob.ack(protocol.TypeSendMessage, "room", map[string]any{"content": "hello from h2"})
	alice.collectMessages("room", 1, 2)
	bob.ack(protocol.TypeUserTyping, "room", nil)
	if f := alice.expect(protocol.TypeUserTyping); f.UserID != "bob" {
		t.Fatalf("typing from %s", f.UserID)
	}
	bob.collectMessages("room", 2, 2)

	// h2 goes away: bob is closed with 1001, goes offline, and resumes on
	// h1 with sync while alice keeps talking.
	h2.stop()
	if code := bob.expectClose(); code != protocol.CloseGoingAway {
		t.Fatalf("bob closed with %d, want 1001", code)
	}
	alice.waitFor("bob offline", func(f protocol.Frame) bool {
		return f.Type == protocol.TypeUserOffline && f.UserID == "bob"
	})
	for i := range 5 {
		alice.ack(protocol.TypeSendMessage, "room", map[string]any{"content": fmt.Sprint("while away ", i)})
	}
	bob = dial(t, h1.url, "bob")
	id := bob.send(protocol.TypeSync, "", map[string]any{"channels": map[string]any{"room": 2}})
	bob.collectMessages("room", 3, 7)
	if f := bob.reply(id); f.Type != protocol.TypeAck {
		t.Fatalf("sync: %s", f.Data)
	}
	alice.ack(protocol.TypeSendMessage, "room", map[string]any{"content": "welcome back"})
	bob.collectMessages("room", 8, 8)
}

// TestDrain closes every connection with 1001 when Run's context ends and
// refuses new ones.
func TestDrain(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("room", "group", "alice", "bob")
	th := fx.startHub(t)
	clients := []*client{dial(t, th.url, "alice"), dial(t, th.url, "bob"), dial(t, th.url, "alice")}
	clients[1].join("room")
	if s := th.Stats(); s.Connections != 3 || s.Authenticated != 3 || s.Users != 2 || s.Channels != 1 {
		t.Fatalf("stats before drain = %+v", s)
	}
	th.stop()
	for i, c := range clients {
		if code := c.expectClose(); code != protocol.CloseGoingAway {
			t.Errorf("client %d closed with %d, want 1001", i, code)
		}
	}
	if s := th.Stats(); s.Connections != 0 || s.Channels != 0 || s.PresenceSubscriptions != 0 || !s.Draining {
		t.Fatalf("stats after drain = %+v", s)
	}
	rec := httptest.NewRecorder()
	th.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/ws", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("after drain: HTTP %d, want 503", rec.Code)
	}
	if fx.pres.connectionsOf("alice")+fx.pres.connectionsOf("bob") != 0 {
		t.Fatal("presence still has connections after drain")
	}
}

// TestConnectDisconnectCycles opens and closes 1,000 connections (each
// joining a channel and following a friend) and requires the hub to be back
// to where it started: no connection, subscription or goroutine left.
func TestConnectDisconnectCycles(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("room", "group", "alice", "bob")
	fx.users.befriend("alice", "bob")
	th := fx.startHub(t, generous, func(c *Config) {
		c.Limits.MaxConnsPerIP = -1
		c.Limits.MaxConnsPerUser = -1
	})
	warm := dial(t, th.url, "bob") // keeps the channel's subscription path warm
	warm.join("room")
	baseline := runtime.NumGoroutine()
	for i := range 1000 {
		c := dial(t, th.url, "alice")
		if i%2 == 0 {
			c.join("room")
		}
		if err := c.ws.Close(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		s := th.Stats()
		// bob's connection follows alice (a friend) and the room's two
		// members.
		if s.Connections != 1 || s.Users != 1 || s.Channels != 1 || s.PresenceSubscriptions != 2 {
			return fmt.Errorf("stats %+v, want only bob's connection", s)
		}
		if n := runtime.NumGoroutine(); n > baseline+2 {
			return fmt.Errorf("%d goroutines, %d before the cycles", n, baseline)
		}
		if n := fx.pres.connectionsOf("alice"); n != 0 {
			return fmt.Errorf("presence still counts %d connections of alice", n)
		}
		return nil
	})
	if n := th.metric(t, "parley_gateway_connections", nil); n != 1 {
		t.Fatalf("connections gauge = %v", n)
	}
}

// TestPresenceHeartbeat reports every connection in batched heartbeats and
// connects again those the presence service forgot.
func TestPresenceHeartbeat(t *testing.T) {
	fx := newFixture(t)
	th := fx.startHub(t, func(c *Config) { c.Limits.HeartbeatInterval = 20 * time.Millisecond })
	c := dial(t, th.url, "alice")
	var w protocol.WelcomeData
	if err := json.Unmarshal(c.welcome.Data, &w); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if !fx.pres.connected(w.SessionID) {
			return fmt.Errorf("not connected")
		}
		return nil
	})
	fx.pres.forget(w.SessionID)
	eventually(t, func() error {
		if !fx.pres.connected(w.SessionID) {
			return fmt.Errorf("forgotten connection not connected again")
		}
		fx.pres.mu.Lock()
		defer fx.pres.mu.Unlock()
		if len(fx.pres.lastBeat) != 1 || fx.pres.lastBeat[0] != w.SessionID {
			return fmt.Errorf("last heartbeat named %v", fx.pres.lastBeat)
		}
		return nil
	})
}

// TestRemovedMemberStopsReceiving: a member removed from a private channel
// gets user_left and nothing of the channel after it.
func TestRemovedMemberStopsReceiving(t *testing.T) {
	fx := newFixture(t)
	fx.chat.addChannel("dm", "private", "alice", "bob")
	th := fx.startHub(t, generous)
	alice, bob := dial(t, th.url, "alice"), dial(t, th.url, "bob")
	alice.join("dm")
	bob.join("dm")
	fx.chat.removeMember("dm", "bob", "alice")
	bob.waitFor("user_left", func(f protocol.Frame) bool { return f.Type == protocol.TypeUserLeft })
	alice.waitFor("user_left", func(f protocol.Frame) bool { return f.Type == protocol.TypeUserLeft })
	alice.ack(protocol.TypeSendMessage, "dm", map[string]any{"content": "secret"})
	alice.expect(protocol.TypeMessage)
	// The fan-out that reached alice queued nothing for bob: he gets the
	// pong with no message of the channel before it.
	id := bob.send(protocol.TypePing, "", nil)
	for {
		f, err := bob.read(waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type == protocol.TypeMessage {
			t.Fatalf("removed member got %s", f.Data)
		}
		if f.Type == protocol.TypePong && f.ID == id {
			break
		}
	}
	if code := bob.errorCode(protocol.TypeJoinChannel, "dm", nil); code != protocol.CodeForbidden {
		t.Fatalf("rejoin: %s", code)
	}
}
