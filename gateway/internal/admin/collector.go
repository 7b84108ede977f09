// Package admin gathers the statistics behind the admin dashboard: every
// gateway node publishes a small report of its live connections on NATS,
// every node aggregates the reports of all nodes, and each serves the
// aggregate at GET /v1/admin/stats to administrators.
//
// Messages per second are counted from the realtime traffic itself
// (<prefix>rt.channel.*). The subscription is a queue subscription shared by
// every node, so each message frame is counted by exactly one node and the
// cluster-wide rate is the sum of the nodes' rates: adding gateways does not
// multiply the traffic each of them receives.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parleyhq/parley/platform/auth"
)

const (
	// DefaultInterval is how often a node publishes its report.
	DefaultInterval = 5 * time.Second
	// DefaultWindow is the sliding window of the messages-per-second rate.
	DefaultWindow = 10 * time.Second
	// expireAfter reports: a node silent for this many intervals is gone.
	expireAfter = 3
	// queueGroup shares the realtime traffic between the nodes' counters.
	queueGroup = "parley-admin-stats"
	// statsSubject (after the prefix) carries the nodes' reports.
	statsSubject = "admin.gateway.stats"
	// realtimeSubject (after the prefix) is every channel's realtime frames.
	realtimeSubject = "rt.channel.*"
)

// NodeStats is what one gateway node knows about itself.
type NodeStats struct {
	NodeID      string
	Connections int
	Users       int
	Channels    int
}

// CollectorConfig configures a Collector. Zero values mean defaults.
type CollectorConfig struct {
	// NATS carries the reports and the realtime traffic. Required.
	NATS *nats.Conn
	// SubjectPrefix is prepended to every subject, as the hub's is.
	SubjectPrefix string
	// NodeID names this gateway node. Required.
	NodeID string
	// Local returns this node's current numbers (a closure over the hub's
	// Stats). Required.
	Local func() NodeStats
	// Interval between reports (default 5 s).
	Interval time.Duration
	// Window of the messages-per-second rate (default 10 s).
	Window time.Duration
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats is the cluster-wide aggregate served to the dashboard.
type Stats struct {
	Nodes       []NodeReport `json:"nodes"`
	Connections int          `json:"connections"`
	// OnlineUsers sums the users connected to each node; a user connected
	// to two nodes counts twice (the presence service has the exact set).
	OnlineUsers int `json:"online_users"`
	// Channels sums the channels each node subscribes to for its clients.
	Channels          int     `json:"channels"`
	MessagesPerSecond float64 `json:"messages_per_second"`
}

// NodeReport is one node's latest report.
type NodeReport struct {
	NodeID            string    `json:"node_id"`
	Connections       int       `json:"connections"`
	Users             int       `json:"users"`
	Channels          int       `json:"channels"`
	MessagesPerSecond float64   `json:"messages_per_second"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// Collector publishes this node's report and aggregates every node's.
type Collector struct {
	cfg CollectorConfig
	log *slog.Logger

	mu    sync.Mutex
	nodes map[string]NodeReport
	// buckets count message frames per second of the sliding window,
	// indexed by unix second modulo len(buckets).
	buckets []bucket
}

type bucket struct {
	second int64
	count  int
}

// NewCollector validates cfg and builds a collector; Run starts it.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	switch {
	case cfg.NATS == nil:
		return nil, fmt.Errorf("%w: NATS is required", ErrConfig)
	case cfg.NodeID == "":
		return nil, fmt.Errorf("%w: NodeID is required", ErrConfig)
	case cfg.Local == nil:
		return nil, fmt.Errorf("%w: Local is required", ErrConfig)
	case strings.ContainsAny(cfg.SubjectPrefix, "*> \t\r\n"):
		return nil, fmt.Errorf("%w: SubjectPrefix %q contains a wildcard or space", ErrConfig, cfg.SubjectPrefix)
	case cfg.Interval < 0 || cfg.Window < 0:
		return nil, fmt.Errorf("%w: negative Interval or Window", ErrConfig)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Window < time.Second {
		cfg.Window = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seconds := int(cfg.Window / time.Second)
	return &Collector{
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("component", "admin-stats")),
		nodes:   make(map[string]NodeReport),
		buckets: make([]bucket, seconds),
	}, nil
}

// Run publishes this node's report every Interval and aggregates the
// others' until ctx is done.
func (c *Collector) Run(ctx context.Context) error {
	nc := c.cfg.NATS
	reports, err := nc.Subscribe(c.cfg.SubjectPrefix+statsSubject, c.onReport)
	if err != nil {
		return fmt.Errorf("admin: subscribe to reports: %w", err)
	}
	defer func() { _ = reports.Unsubscribe() }()
	traffic, err := nc.QueueSubscribe(c.cfg.SubjectPrefix+realtimeSubject, queueGroup, c.onRealtime)
	if err != nil {
		return fmt.Errorf("admin: subscribe to realtime traffic: %w", err)
	}
	defer func() { _ = traffic.Unsubscribe() }()

	ticker := time.NewTicker(c.cfg.Interval)
	defer ticker.Stop()
	c.publish(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			c.publish(ctx)
		}
	}
}

// publish sends this node's report and records it locally too, so a node
// sees itself even while NATS is reconnecting.
func (c *Collector) publish(ctx context.Context) {
	local := c.cfg.Local()
	r := NodeReport{
		NodeID:            c.cfg.NodeID,
		Connections:       local.Connections,
		Users:             local.Users,
		Channels:          local.Channels,
		MessagesPerSecond: c.localRate(),
		UpdatedAt:         c.cfg.Now().UTC(),
	}
	c.mu.Lock()
	c.nodes[r.NodeID] = r
	c.mu.Unlock()
	b, err := json.Marshal(r)
	if err != nil {
		c.log.ErrorContext(ctx, "encode stats report", slog.Any("error", err))
		return
	}
	// Publish only buffers; a lost report is replaced by the next one.
	if err := c.cfg.NATS.Publish(c.cfg.SubjectPrefix+statsSubject, b); err != nil {
		c.log.WarnContext(ctx, "publish stats report", slog.Any("error", err))
	}
}

func (c *Collector) onReport(m *nats.Msg) {
	var r NodeReport
	if err := json.Unmarshal(m.Data, &r); err != nil || r.NodeID == "" {
		c.log.Debug("undecodable stats report", slog.Any("error", err))
		return
	}
	// The receive time, not the sender's clock, decides expiry: node clocks
	// may disagree.
	r.UpdatedAt = c.cfg.Now().UTC()
	c.mu.Lock()
	c.nodes[r.NodeID] = r
	c.mu.Unlock()
}

// onRealtime counts message frames; typing, presence and receipts share
// the subjects but are not messages.
func (c *Collector) onRealtime(m *nats.Msg) {
	var hdr struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(m.Data, &hdr); err != nil || hdr.Type != "message" {
		return
	}
	sec := c.cfg.Now().Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &c.buckets[int(sec%int64(len(c.buckets)))]
	if b.second != sec {
		*b = bucket{second: sec}
	}
	b.count++
}

// localRate is this node's share of the message rate over the window.
func (c *Collector) localRate() float64 {
	now := c.cfg.Now().Unix()
	n := int64(len(c.buckets))
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, b := range c.buckets {
		if b.second > now-n && b.second <= now {
			total += b.count
		}
	}
	return float64(total) / float64(n)
}

// Snapshot aggregates the latest report of every live node.
func (c *Collector) Snapshot() Stats {
	now := c.cfg.Now()
	stale := time.Duration(expireAfter) * c.cfg.Interval
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Nodes: []NodeReport{}}
	for id, r := range c.nodes {
		if now.Sub(r.UpdatedAt) > stale {
			delete(c.nodes, id)
			continue
		}
		s.Nodes = append(s.Nodes, r)
		s.Connections += r.Connections
		s.OnlineUsers += r.Users
		s.Channels += r.Channels
		s.MessagesPerSecond += r.MessagesPerSecond
	}
	slices.SortFunc(s.Nodes, func(a, b NodeReport) int { return strings.Compare(a.NodeID, b.NodeID) })
	return s
}

// Handler serves GET /v1/admin/stats to bearer tokens holding the admin
// role: 401 without a valid token, 403 without the role.
func (c *Collector) Handler(v auth.TokenVerifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, 12, "method not allowed")
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, 16, "missing bearer token")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		p, err := v.Verify(ctx, strings.TrimSpace(token))
		switch {
		case errors.Is(err, auth.ErrKeysUnavailable):
			writeError(w, http.StatusServiceUnavailable, 14, "token verification unavailable")
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, 16, "invalid token")
			return
		case !p.HasRole(auth.RoleAdmin):
			writeError(w, http.StatusForbidden, 7, "admin role required")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(c.Snapshot()); err != nil {
			c.log.DebugContext(r.Context(), "write stats", slog.Any("error", err))
		}
	})
}

// writeError answers in the REST API's error shape (google.rpc.Status as
// grpc-gateway writes it), so clients handle both alike.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
}
