// Package hub is the gateway's WebSocket hub: GET /v1/ws speaking protocol
// v1 (package protocol; apis/asyncapi/parley-ws.yaml).
//
// One read poller (epoll) watches every connection's socket; a batch of a
// client's frames is read when it arrives and its requests are run one at a
// time and in order (reader.go). Every connection has one write loop
// draining a bounded queue of pre-encoded frames; it runs only while the
// queue holds something (see sendQueue), so an idle connection costs no
// goroutine.
// Live traffic arrives from NATS: one subscription per channel with local
// subscribers (reference counted), whose handler never blocks: it offers
// each frame to each connection's queue and closes a connection whose queue
// is full (4013), so one slow client never slows the others. Frames are
// encoded once per fan-out, not per recipient.
//
// Message frames carry a per-channel seq. The hub keeps, per connection and
// channel, the highest seq delivered; it drops duplicates, and a gap (a NATS
// outage, a publisher that lost a frame) or a client's sync switches that
// connection's channel to buffering while the history after the high-water
// mark is replayed from the chat service, after which the buffer is flushed
// minus what the replay covered. That is what makes delivery gapless and
// duplicate-free across reconnects.
//
// Shared timers serve all connections: one pinger (in slots), one presence
// heartbeat, one housekeeping tick; nothing ticks per connection.
package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/gateway/internal/hub/ratelimit"
	"github.com/parleyhq/parley/platform/auth"
)

const (
	// pingSlots spreads the pings of one interval over this many ticks, so
	// 10,000 connections are not pinged in one burst.
	pingSlots = 10
	// closeGrace is how long the server waits for the client's close frame
	// after sending its own before it drops the socket.
	closeGrace = time.Second
	// serviceName identifies the hub in internal calls.
	serviceName = "gateway"
	// heartbeatChunk bounds the connection ids of one Heartbeat call: the
	// presence API's limit. A heartbeat must list every connection of the
	// node in one call, since the presence service drops the connections
	// a heartbeat does not list; a node beyond the limit is split into
	// calls and its connections flap (heartbeat warns).
	heartbeatChunk = 100_000
	// recoveryWorkers bound concurrent channel catch-ups after a NATS
	// reconnection.
	recoveryWorkers = 4
)

// Hub serves WebSocket connections. Create it with New, serve GET /v1/ws
// with it (it is an http.Handler) and run its background loops with Run.
type Hub struct {
	cfg      Config
	lim      Limits
	log      *slog.Logger
	now      func() time.Time
	nc       *nats.Conn
	upgrader websocket.Upgrader
	metrics  *metrics
	ipCaps   *ratelimit.Caps
	userCaps *ratelimit.Caps
	// setups holds a token per connection being set up (Limits.MaxSetups);
	// nil when unlimited.
	setups chan struct{}
	// pingFrame is the sentinel queued to ask a write loop for a ping.
	pingFrame *outFrame

	// base bounds what runs after a connection's own context ended (its
	// presence disconnect); it ends when Run has drained.
	base       context.Context
	cancelBase context.CancelFunc

	mu sync.Mutex
	// poll reads connections while Run runs; nil before and after, or
	// with Config.BlockingReads.
	poll     *readPoller
	conns    map[*conn]struct{}
	byID     map[string]*conn
	draining bool
	running  bool
	nextSlot uint32
	// active counts connections being served; Add only under mu while not
	// draining, so Run's Wait never races an Add.
	active sync.WaitGroup

	fan      *fanout
	pres     *presenceIndex
	typing   *typingThrottle
	receipts *receiptBatcher
}

// Stats is a snapshot of the hub for the admin dashboard.
type Stats struct {
	NodeID string `json:"node_id"`
	// Connections open, authenticated or not.
	Connections int `json:"connections"`
	// Authenticated connections (those that got welcome).
	Authenticated int `json:"authenticated"`
	// Users with at least one connection.
	Users int `json:"users"`
	// Channels with a NATS subscription (at least one local subscriber).
	Channels int `json:"channels"`
	// PresenceSubscriptions: users whose presence someone here follows.
	PresenceSubscriptions int  `json:"presence_subscriptions"`
	Draining              bool `json:"draining"`
}

// New validates cfg and builds a hub; it serves connections at once and
// needs Run for pings, heartbeats, presence and NATS recovery.
func New(cfg Config) (*Hub, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = remoteIP
	}
	h := &Hub{
		cfg:       cfg,
		lim:       cfg.Limits.withDefaults(),
		log:       cfg.Logger.With(slog.String("component", "hub"), slog.String("node_id", cfg.NodeID)),
		now:       cfg.Now,
		nc:        cfg.NATS,
		metrics:   newMetrics(),
		pingFrame: &outFrame{ping: true},
		conns:     make(map[*conn]struct{}),
		byID:      make(map[string]*conn),
	}
	h.ipCaps = ratelimit.NewCaps(h.lim.MaxConnsPerIP)
	h.userCaps = ratelimit.NewCaps(h.lim.MaxConnsPerUser)
	if h.lim.MaxSetups > 0 {
		h.setups = make(chan struct{}, h.lim.MaxSetups)
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: h.lim.WriteWait,
		// The hub reads frames itself (reader.go), so gorilla's read
		// buffer is never used: the smallest bufio allows. The hub
		// frames its data frames itself (wsText) and writes them to the
		// socket; gorilla writes only control frames, which need no write
		// buffer. The pool stays so that gorilla gives no connection a
		// write buffer of its own at the upgrade.
		ReadBufferSize:  16,
		WriteBufferSize: 1024,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     h.checkOrigin,
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := reg.Register(h.metrics); err != nil {
		return nil, fmt.Errorf("%w: register metrics: %w", ErrConfig, err)
	}
	h.base, h.cancelBase = context.WithCancel(context.Background())
	h.fan = newFanout(h)
	h.pres = newPresenceIndex(h)
	h.typing = newTypingThrottle()
	h.receipts = newReceiptBatcher()
	return h, nil
}

// Metrics returns the hub's collector; it is already registered on
// Config.Registry (or a private registry when that is nil).
func (h *Hub) Metrics() prometheus.Collector { return h.metrics }

// NodeID returns the node id reported to the presence service.
func (h *Hub) NodeID() string { return h.cfg.NodeID }

// Stats returns a snapshot of the hub.
func (h *Hub) Stats() Stats {
	s := Stats{NodeID: h.cfg.NodeID}
	h.mu.Lock()
	s.Connections = len(h.conns)
	for c := range h.conns {
		if c.authed.Load() {
			s.Authenticated++
		}
	}
	s.Draining = h.draining
	h.mu.Unlock()
	s.Users = h.userCaps.Keys()
	s.Channels = h.fan.count()
	s.PresenceSubscriptions = h.pres.count()
	return s
}

// ServeHTTP upgrades GET /v1/ws to a WebSocket connection and serves it
// until it closes. Caps are checked before the upgrade, so a refused client
// gets a plain HTTP 429 (or 503 while draining, or when no setup slot came
// in time).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h.isDraining() {
		http.Error(w, "server draining", http.StatusServiceUnavailable)
		return
	}
	ip := h.cfg.ClientIP(r)
	if !h.ipCaps.Acquire(ip) {
		h.metrics.rateLimited.WithLabelValues("conns_ip").Inc()
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	// From here the slot is the connection's to release (finish), or
	// released below when there is no connection.
	var pre *preAuth
	if token, ok := bearerToken(r.Header.Get("Authorization")); ok {
		// The whole setup runs on this goroutine, before and after the
		// upgrade (serve), so it waits for its turn before answering the
		// upgrade: a client in the queue holds only its request.
		if !h.enterSlot(r.Context(), setupsClass) {
			h.ipCaps.Release(ip)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "server busy, retry", http.StatusServiceUnavailable)
			return
		}
		defer h.leaveSlot()
		pre = &preAuth{token: token}
		ctx, cancel := context.WithTimeout(r.Context(), h.lim.CallTimeout)
		pre.principal, pre.err = h.cfg.Verifier.Verify(ctx, token)
		cancel()
		if pre.err == nil {
			if !h.userCaps.Acquire(pre.principal.UserID) {
				h.ipCaps.Release(ip)
				h.metrics.rateLimited.WithLabelValues("conns_user").Inc()
				http.Error(w, "too many connections for this user", http.StatusTooManyRequests)
				return
			}
			pre.capHeld = true
		}
	}
	release := func() {
		h.ipCaps.Release(ip)
		if pre != nil && pre.capHeld {
			h.userCaps.Release(pre.principal.UserID)
		}
	}
	ws, err := h.upgrader.Upgrade(lazyDeadlineWriter{ResponseWriter: w, writeWait: h.lim.WriteWait}, r, nil)
	if err != nil {
		// The upgrader has answered with an HTTP error.
		release()
		h.log.Debug("websocket upgrade failed", slog.String("ip", ip), slog.Any("error", err))
		return
	}
	c := newConn(h, ws, ip)
	if !h.register(c) {
		release()
		msg := websocket.FormatCloseMessage(protocol.CloseGoingAway, "server draining")
		_ = ws.WriteControl(websocket.CloseMessage, msg, h.now().Add(h.lim.WriteWait))
		_ = ws.Close()
		return
	}
	c.serve(pre)
}

// enterSlot waits for a setup slot (Limits.MaxSetups), for a setup or a
// teardown, until ctx ends or Limits.SetupWait passes; leaveSlot frees it.
// It reports false, and counts the refusal under class, when no slot came.
func (h *Hub) enterSlot(ctx context.Context, class string) bool {
	if h.setups == nil {
		return true
	}
	select {
	case h.setups <- struct{}{}:
		return true
	default:
	}
	wait := time.NewTimer(h.lim.SetupWait)
	defer wait.Stop()
	select {
	case h.setups <- struct{}{}:
		return true
	case <-wait.C:
	case <-ctx.Done():
	}
	h.metrics.rateLimited.WithLabelValues(class).Inc()
	return false
}

// leaveSlot frees the slot enterSlot took.
func (h *Hub) leaveSlot() {
	if h.setups != nil {
		<-h.setups
	}
}

// preAuth is the outcome of header authentication, done before upgrading.
type preAuth struct {
	token     string
	principal auth.Principal
	err       error
	capHeld   bool
}

func bearerToken(h string) (string, bool) {
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	t := strings.TrimSpace(h[len(prefix):])
	return t, t != ""
}

// checkOrigin allows requests without Origin (non-browser clients), the
// same origin, and the configured origins.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range h.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	h.log.Debug("websocket origin refused", slog.String("origin", origin), slog.String("host", r.Host))
	return false
}

func (h *Hub) isDraining() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.draining
}

// register adds a connection unless the hub is draining.
func (h *Hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return false
	}
	c.slot = h.nextSlot % pingSlots
	h.nextSlot++
	h.conns[c] = struct{}{}
	h.byID[c.id] = c
	h.active.Add(1)
	h.metrics.connections.Inc()
	return true
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	delete(h.byID, c.id)
	h.mu.Unlock()
	h.metrics.connections.Dec()
}

// Run runs the hub's background loops (pings, presence heartbeats and
// changes, delivered receipts, NATS recovery) until ctx is done, then
// drains: every connection is closed with 1001 and Run returns once all
// have ended (dropping those still open after Limits.DrainTimeout).
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	if h.running {
		h.mu.Unlock()
		return ErrRunning
	}
	h.running = true
	h.mu.Unlock()
	h.startPoller()

	loops, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){
		h.pingLoop,
		h.heartbeatLoop,
		h.housekeepingLoop,
		h.reconnectWatchLoop,
		h.pres.run,
	} {
		wg.Go(func() { loop(loops) })
	}
	for range recoveryWorkers {
		wg.Go(func() { h.fan.recoveryWorker(loops) })
	}
	h.log.InfoContext(ctx, "websocket hub running")

	<-ctx.Done()
	h.drain()
	h.stopPoller()
	stopLoops()
	wg.Wait()
	h.fan.closeAll()
	h.pres.closeAll()
	h.cancelBase()
	h.log.Info("websocket hub drained")
	return nil
}

// startPoller starts the read poller, unless reads block or there is none
// on this system; connections served before it read on goroutines of
// their own.
func (h *Hub) startPoller() {
	if h.cfg.BlockingReads {
		return
	}
	p, err := newReadPoller(h.log)
	if err != nil {
		h.log.Info("every connection is read by a goroutine of its own", slog.Any("reason", err))
		return
	}
	go p.run()
	h.mu.Lock()
	h.poll = p
	h.mu.Unlock()
}

// stopPoller stops the read poller once every connection has ended.
func (h *Hub) stopPoller() {
	h.mu.Lock()
	p := h.poll
	h.poll = nil
	h.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// poller returns the read poller, nil when there is none.
func (h *Hub) poller() *readPoller {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.poll
}

// drain closes every connection with 1001 and waits for them to end.
func (h *Hub) drain() {
	h.mu.Lock()
	h.draining = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	h.log.Info("websocket hub draining", slog.Int("connections", len(conns)))
	for _, c := range conns {
		c.closeWith(protocol.CloseGoingAway, "server draining")
	}
	done := make(chan struct{})
	go func() {
		h.active.Wait()
		close(done)
	}()
	timer := time.NewTimer(h.lim.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	h.mu.Lock()
	left := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		left = append(left, c)
	}
	h.mu.Unlock()
	h.log.Warn("websocket hub: dropping connections that did not close in time", slog.Int("connections", len(left)))
	for _, c := range left {
		c.dropSocket()
	}
	<-done
}

// pingLoop asks every connection for a ping once per PingInterval, a slot
// of them per tick, and drops connections silent for PongWait (no frame, no
// pong): with no read deadline on the sockets, this is what ends a
// connection whose client vanished without closing.
func (h *Hub) pingLoop(ctx context.Context) {
	t := time.NewTicker(h.lim.PingInterval / pingSlots)
	defer t.Stop()
	var slot uint32
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		slot = (slot + 1) % pingSlots
		silentSince := h.now().Add(-h.lim.PongWait).UnixNano()
		h.mu.Lock()
		for c := range h.conns {
			if c.lastRead.Load() < silentSince {
				c.closeWith(closeSilent, "")
				continue
			}
			if c.slot == slot {
				// A full queue means the connection is failing anyway;
				// the ping is not worth closing it over.
				c.enqueue(h.pingFrame)
			}
		}
		h.mu.Unlock()
	}
}

// housekeepingLoop publishes coalesced delivered receipts and forgets old
// typing throttles.
func (h *Hub) housekeepingLoop(ctx context.Context) {
	t := time.NewTicker(h.lim.ReceiptInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.receipts.flush(h.publishReceipt)
			return
		case <-t.C:
		}
		h.receipts.flush(h.publishReceipt)
		h.typing.sweep(h.now(), h.lim.TypingThrottle)
	}
}

// reconnectWatchLoop notices NATS reconnections by the client's counter:
// core NATS loses what was published during the outage, so every channel
// with local subscribers is caught up from history. Polling the counter
// leaves the connection's callbacks to its owner.
func (h *Hub) reconnectWatchLoop(ctx context.Context) {
	t := time.NewTicker(h.lim.ReconnectCheckInterval)
	defer t.Stop()
	last := h.nc.Stats().Reconnects
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := h.nc.Stats().Reconnects
		if n == last || !h.nc.IsConnected() {
			continue
		}
		last = n
		h.log.Info("nats reconnected: catching up every channel", slog.Uint64("reconnects", n))
		// The subscriptions were re-sent on reconnect; a flush makes sure
		// the server has them before history is read, as for a join.
		fctx, cancel := context.WithTimeout(ctx, h.lim.CallTimeout)
		if err := h.nc.FlushWithContext(fctx); err != nil {
			h.log.Warn("nats flush after reconnect", slog.Any("error", err))
		}
		cancel()
		h.fan.recoverAll()
	}
}

// serviceCtx returns a context for an internal call made as the gateway.
func (h *Hub) serviceCtx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := h.callCtx(parent)
	return auth.OutgoingAsService(ctx, serviceName, h.cfg.ServiceToken), cancel
}

// userCtx returns a context for a call made on a user's behalf.
func (h *Hub) userCtx(parent context.Context, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := h.callCtx(parent)
	return auth.OutgoingAsUser(ctx, token), cancel
}

// callCtx returns a context that ends after CallTimeout or with parent.
// A connection's context is not made a parent: the context package asks a
// parent for its Done channel, which the connection would then keep for
// the rest of its life (96 bytes, about 0.25 KiB of RSS per idle
// connection). The call's context is stopped by the connection's
// AfterFunc instead, which it drops once the call ends.
func (h *Hub) callCtx(parent context.Context) (context.Context, context.CancelFunc) {
	cc, ok := parent.(*connCtx)
	if !ok {
		return context.WithTimeout(parent, h.lim.CallTimeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.lim.CallTimeout)
	if cc.Err() != nil {
		cancel()
		return ctx, cancel
	}
	stop := cc.AfterFunc(cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// publish sends a frame on NATS; core NATS buffers, so this does not block
// on the network.
func (h *Hub) publish(subject string, data []byte) {
	if err := h.nc.Publish(subject, data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		h.log.Warn("nats publish", slog.String("subject", subject), slog.Any("error", err))
	}
}

func (h *Hub) channelSubject(channelID string) string {
	return h.cfg.SubjectPrefix + "rt.channel." + channelID
}

func (h *Hub) presenceSubject(userID string) string {
	return h.cfg.SubjectPrefix + "presence." + userID
}
