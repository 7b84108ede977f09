package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const waitTimeout = 10 * time.Second

// eventually polls f until it returns nil, failing the test after
// waitTimeout.
func eventually(t testing.TB, f func() error) {
	t.Helper()
	testenv.CheckFor(t, waitTimeout, 10*time.Millisecond, f)
}

// fixture is one test's world: fake services on a NATS server, with a
// subject prefix of its own.
type fixture struct {
	prefix      string
	natsURL     string
	nc          *nats.Conn // the services' connection
	chat        *fakeChat
	pres        *fakePresence
	users       *fakeUsers
	chatClient  chatv1.ChatServiceClient
	presClient  presencev1.PresenceServiceClient
	usersClient userv1.UserServiceClient
	// connect opens a hub's own NATS connection.
	connect func(t testing.TB) *nats.Conn
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	env := testenv.New(t)
	fx := &fixture{prefix: testenv.Unique(t.Name()) + ".", natsURL: env.NATSURL}
	fx.connect = func(t testing.TB) *nats.Conn { return env.NATS(t) }
	fx.init(t, env.NATS(t))
	return fx
}

func (fx *fixture) init(t testing.TB, nc *nats.Conn) {
	fx.nc = nc
	fx.chat = newFakeChat(nc, fx.prefix)
	fx.pres = newFakePresence(nc, fx.prefix)
	fx.users = &fakeUsers{}
	cc := startServices(t, fx.chat, fx.pres, fx.users)
	fx.chatClient = chatv1.NewChatServiceClient(cc)
	fx.presClient = presencev1.NewPresenceServiceClient(cc)
	fx.usersClient = userv1.NewUserServiceClient(cc)
}

// testHub is a running Hub behind an httptest server.
type testHub struct {
	*Hub
	srv *httptest.Server
	url string
	reg *prometheus.Registry
	// stop drains the hub (Run returns) and closes the server; cleanup
	// calls it too.
	stop func()
}

func (fx *fixture) startHub(t testing.TB, mutate ...func(*Config)) *testHub {
	t.Helper()
	return fx.startHubOn(t, fx.connect(t), mutate...)
}

func (fx *fixture) startHubOn(t testing.TB, nc *nats.Conn, mutate ...func(*Config)) *testHub {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Chat:          fx.chatClient,
		Presence:      fx.presClient,
		Users:         fx.usersClient,
		NATS:          nc,
		Verifier:      testVerifier{},
		ServiceToken:  testServiceToken,
		SubjectPrefix: fx.prefix,
		Registry:      reg,
		Logger:        testLogger(),
		Limits: Limits{
			ReconnectCheckInterval: 20 * time.Millisecond,
			ReceiptInterval:        50 * time.Millisecond,
		},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", h)
	srv := httptest.NewServer(mux)
	th := &testHub{Hub: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws", reg: reg}
	stopped := false
	th.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
		srv.Close()
	}
	t.Cleanup(th.stop)
	return th
}

func testLogger() *slog.Logger {
	level := slog.LevelError + 1
	if os.Getenv("HUB_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// metric returns the value of a counter or gauge (summed over label sets
// matching labels), or the sample count of a histogram.
func (th *testHub) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := th.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// client is a test WebSocket client.
type client struct {
	t       testing.TB
	ws      *websocket.Conn
	welcome protocol.Frame
	nextID  int
	// seen, when set, records every frame read.
	seen *coverage
	// backlog holds frames waitFor skipped, in order: frames a test did not
	// wait for yet are not lost.
	backlog []protocol.Frame
}

// coverage records the frame types and error codes clients saw.
type coverage struct {
	mu    sync.Mutex
	types map[string]bool
	codes map[string]bool
}

func newCoverage() *coverage {
	return &coverage{types: make(map[string]bool), codes: make(map[string]bool)}
}

func (cv *coverage) record(f protocol.Frame) {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	cv.types[f.Type] = true
	if f.Type == protocol.TypeError {
		var e protocol.ErrorData
		if json.Unmarshal(f.Data, &e) == nil {
			cv.codes[e.Code] = true
		}
	}
}

func (cv *coverage) missing(want []string, codes bool) []string {
	cv.mu.Lock()
	defer cv.mu.Unlock()
	set := cv.types
	if codes {
		set = cv.codes
	}
	var out []string
	for _, w := range want {
		if !set[w] {
			out = append(out, w)
		}
	}
	return out
}

// dial connects with header authentication and waits for welcome.
func dial(t testing.TB, url, user string) *client {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tokenFor(user))
	c := dialHeader(t, url, h)
	c.welcome = c.expect(protocol.TypeWelcome)
	return c
}

// dialSlowReader connects as user with a 64 KiB receive buffer, so the
// kernel cannot absorb much on a client that does not read, and waits for
// welcome.
func dialSlowReader(t testing.TB, url, user string) *client {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = conn.(*net.TCPConn).SetReadBuffer(64 << 10)
		}
		return conn, err
	}}
	ws, _, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + tokenFor(user)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	c := &client{t: t, ws: ws}
	c.welcome = c.expect(protocol.TypeWelcome)
	return c
}

// dialHeader connects without waiting for anything.
func dialHeader(t testing.TB, url string, h http.Header) *client {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	c := &client{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

func (c *client) sendRaw(s string) {
	c.t.Helper()
	_ = c.ws.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes a frame and returns its id ("" when noID).
func (c *client) send(typ, channel string, data any) string {
	c.t.Helper()
	c.nextID++
	id := fmt.Sprintf("r%d", c.nextID)
	c.sendFrame(id, typ, channel, data)
	return id
}

func (c *client) sendFrame(id, typ, channel string, data any) {
	c.t.Helper()
	f := map[string]any{"type": typ}
	if id != "" {
		f["id"] = id
	}
	if channel != "" {
		f["channel"] = channel
	}
	if data != nil {
		f["data"] = data
	}
	b, err := json.Marshal(f)
	if err != nil {
		c.t.Fatalf("marshal: %v", err)
	}
	c.sendRaw(string(b))
}

// read returns the next frame (the backlog's first, if any).
func (c *client) read(timeout time.Duration) (protocol.Frame, error) {
	if len(c.backlog) > 0 {
		f := c.backlog[0]
		c.backlog = c.backlog[1:]
		return f, nil
	}
	return c.readSocket(timeout)
}

func (c *client) readSocket(timeout time.Duration) (protocol.Frame, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		return protocol.Frame{}, err
	}
	var f protocol.Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return protocol.Frame{}, fmt.Errorf("server sent undecodable frame %q: %w", b, err)
	}
	if c.seen != nil {
		c.seen.record(f)
	}
	return f, nil
}

// waitFor returns the first frame matching ok; frames it passes over stay
// in the backlog for later waits.
func (c *client) waitFor(what string, ok func(protocol.Frame) bool) protocol.Frame {
	c.t.Helper()
	for i, f := range c.backlog {
		if ok(f) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return f
		}
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			c.t.Fatalf("no %s within %s", what, waitTimeout)
		}
		f, err := c.readSocket(left)
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(f) {
			return f
		}
		c.backlog = append(c.backlog, f)
	}
}

// expect waits for a frame of the type.
func (c *client) expect(typ string) protocol.Frame {
	c.t.Helper()
	return c.waitFor(typ, func(f protocol.Frame) bool { return f.Type == typ })
}

// reply waits for the ack, error or other answer carrying id.
func (c *client) reply(id string) protocol.Frame {
	c.t.Helper()
	return c.waitFor("reply to "+id, func(f protocol.Frame) bool { return f.ID == id })
}

// ack sends a request and requires an ack, returning its data.
func (c *client) ack(typ, channel string, data any) json.RawMessage {
	c.t.Helper()
	id := c.send(typ, channel, data)
	f := c.reply(id)
	if f.Type != protocol.TypeAck {
		c.t.Fatalf("%s: got %s %s, want ack", typ, f.Type, f.Data)
	}
	return f.Data
}

// errorCode sends a request and requires an error, returning its code.
func (c *client) errorCode(typ, channel string, data any) string {
	c.t.Helper()
	id := c.send(typ, channel, data)
	f := c.reply(id)
	if f.Type != protocol.TypeError {
		c.t.Fatalf("%s: got %s %s, want error", typ, f.Type, f.Data)
	}
	return decodeError(c.t, f).Code
}

func decodeError(t testing.TB, f protocol.Frame) protocol.ErrorData {
	t.Helper()
	var e protocol.ErrorData
	if err := json.Unmarshal(f.Data, &e); err != nil {
		t.Fatalf("error data %s: %v", f.Data, err)
	}
	return e
}

// expectClose reads until the connection closes and returns the close code
// (0 if it ended without a close frame).
func (c *client) expectClose() int {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return 0
	}
	c.t.Fatalf("connection did not close within %s", waitTimeout)
	return 0
}

// seqOf returns the seq of a message frame.
func seqOf(t testing.TB, f protocol.Frame) int64 {
	t.Helper()
	var d struct {
		Seq protocol.Int `json:"seq"`
	}
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("message data %s: %v", f.Data, err)
	}
	return int64(d.Seq)
}

// join joins a channel and requires the ack.
func (c *client) join(channel string) {
	c.t.Helper()
	c.ack(protocol.TypeJoinChannel, channel, nil)
}

// collectMessages reads message frames of a channel until it has seen seq
// `upTo`, failing on any duplicate or gap.
func (c *client) collectMessages(channel string, from, upTo int64) {
	c.t.Helper()
	next := from
	for next <= upTo {
		f := c.waitFor(fmt.Sprintf("message %d of %s", next, channel), func(f protocol.Frame) bool {
			return f.Type == protocol.TypeMessage && f.Channel == channel
		})
		if got := seqOf(c.t, f); got != next {
			c.t.Fatalf("channel %s: got seq %d, want %d (gap or duplicate)", channel, got, next)
		}
		next++
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
