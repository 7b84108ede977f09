// Package gateway is Parley's edge: one HTTP server that carries the REST API
// (grpc-gateway, forwarding to the services over gRPC), the WebSocket hub at
// /v1/ws, attachment upload and download, the OpenAPI document and its
// browsing page, Prometheus metrics, and health endpoints.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/parleyhq/parley/apis"
	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/gateway/internal/admin"
	"github.com/parleyhq/parley/gateway/internal/apidocs"
	"github.com/parleyhq/parley/gateway/internal/attachments"
	"github.com/parleyhq/parley/gateway/internal/hub"
	"github.com/parleyhq/parley/gateway/internal/rest"
	"github.com/parleyhq/parley/gateway/web"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/logging"
)

// Limits bound what one WebSocket connection, user and address may do (see
// the field docs of the hub's Limits; zero values mean its defaults).
type Limits = hub.Limits

// HubStats is a snapshot of this gateway's WebSocket hub.
type HubStats = hub.Stats

// Config assembles a gateway. Zero values mean sensible local defaults.
type Config struct {
	// HTTPAddr is where the HTTP server listens (default "localhost:8080").
	HTTPAddr string
	// Listener, when set, is used instead of listening on HTTPAddr (the
	// all-in-one and tests bind it themselves to learn the port).
	Listener net.Listener
	// Services are the gRPC connections the edge forwards to.
	Services Services
	// Health provides /healthz and /readyz; the caller adds the checks of the
	// backends it owns. Nil means a health set with no checks.
	Health *health.Health

	// NATS carries realtime frames; with it and Services.Chat set, the
	// WebSocket hub serves /v1/ws. The gateway does not own the connection.
	NATS *nats.Conn
	// Verifier checks access tokens on WebSocket connections. Required with
	// NATS.
	Verifier auth.TokenVerifier
	// ServiceToken authenticates the hub's internal calls to the services.
	ServiceToken string
	// NodeID names this replica (default: hostname plus a random suffix).
	NodeID string
	// SubjectPrefix is prepended to NATS subjects; the services must agree.
	SubjectPrefix string
	// AllowedOrigins are browser origins allowed to open WebSockets besides
	// the same origin ("*": any).
	AllowedOrigins []string
	// CORSOrigins are origins allowed to call the REST API from a browser
	// ("*": any); empty means same-origin only (no CORS headers).
	CORSOrigins []string
	// Limits of the WebSocket hub.
	Limits Limits

	// UnsubscribeBackend, when set, is the notification service's HTTP
	// base URL: the gateway proxies the one-click email unsubscribe
	// endpoint (a plain HTTP form, not a gRPC method) to it.
	UnsubscribeBackend *url.URL
	// MaxBodyBytes bounds REST request bodies (default 1 MiB); uploads
	// have their own limit, MaxUploadBytes (default 25 MB).
	MaxBodyBytes, MaxUploadBytes int64
	Logger                       *slog.Logger
}

// Services are the gRPC connections to the services; a nil connection leaves
// that service's REST paths unrouted (404).
type Services struct {
	User         grpc.ClientConnInterface
	Chat         grpc.ClientConnInterface
	Presence     grpc.ClientConnInterface
	Notification grpc.ClientConnInterface
	EventBus     grpc.ClientConnInterface
}

// UnsubscribePath is the one-click unsubscribe endpoint of notification
// emails (RFC 8058), served by the notification service.
const UnsubscribePath = "/v1/notifications:unsubscribe"

// Gateway is the assembled edge server.
type Gateway struct {
	cfg     Config
	mux     *http.ServeMux
	handler http.Handler
	hub     *hub.Hub
	stats   *admin.Collector
}

// New builds the gateway's routes. It does not listen until Run.
func New(ctx context.Context, cfg Config) (*Gateway, error) {
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "localhost:8080"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Health == nil {
		cfg.Health = health.New(cfg.Logger)
	}
	restMux, err := rest.NewMux(ctx, rest.Conns(cfg.Services))
	if err != nil {
		return nil, err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	g := &Gateway{cfg: cfg, mux: http.NewServeMux()}
	mux := g.mux
	mux.Handle("GET /healthz", cfg.Health.Live())
	mux.Handle("GET /readyz", cfg.Health.Ready())
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	docs := apidocs.Handler(apis.OpenAPIDocument())
	mux.Handle("/openapi", docs)
	mux.Handle("/openapi/", docs)
	api := g.cors(rest.Handler(restMux, cfg.MaxBodyBytes))
	mux.Handle("/v1/", api)
	mux.Handle("/.well-known/", api)
	if cfg.UnsubscribeBackend != nil {
		proxy := httputil.NewSingleHostReverseProxy(cfg.UnsubscribeBackend)
		mux.Handle(UnsubscribePath, http.MaxBytesHandler(proxy, 64<<10))
	}
	if cfg.Services.Chat != nil {
		chat := chatv1.NewChatServiceClient(cfg.Services.Chat)
		attachments.New(attachments.Config{Chat: chat, MaxBytes: cfg.MaxUploadBytes, REST: api, Logger: cfg.Logger}).Register(mux)
		if cfg.NATS != nil {
			hcfg := hub.Config{
				Chat:           chat,
				NATS:           cfg.NATS,
				Verifier:       cfg.Verifier,
				ServiceToken:   cfg.ServiceToken,
				NodeID:         cfg.NodeID,
				SubjectPrefix:  cfg.SubjectPrefix,
				AllowedOrigins: cfg.AllowedOrigins,
				Registry:       registry,
				Logger:         cfg.Logger,
				Limits:         cfg.Limits,
			}
			if cfg.Services.Presence != nil {
				hcfg.Presence = presencev1.NewPresenceServiceClient(cfg.Services.Presence)
			}
			if cfg.Services.User != nil {
				hcfg.Users = userv1.NewUserServiceClient(cfg.Services.User)
			}
			if g.hub, err = hub.New(hcfg); err != nil {
				return nil, fmt.Errorf("gateway: websocket hub: %w", err)
			}
			mux.Handle("/v1/ws", g.hub)
			h := g.hub
			g.stats, err = admin.NewCollector(admin.CollectorConfig{
				NATS: cfg.NATS, SubjectPrefix: cfg.SubjectPrefix, NodeID: h.NodeID(),
				Local: func() admin.NodeStats {
					s := h.Stats()
					return admin.NodeStats{NodeID: s.NodeID, Connections: s.Connections, Users: s.Users, Channels: s.Channels}
				},
				Logger: cfg.Logger,
			})
			if err != nil {
				return nil, fmt.Errorf("gateway: admin stats: %w", err)
			}
			mux.Handle("GET /v1/admin/stats", g.stats.Handler(cfg.Verifier))
		}
	}
	// The web client and the admin dashboard; API paths stay with their
	// more specific routes (the web handler 404s them).
	mux.Handle("/", web.Handler())
	g.handler = withRequestID(mux)
	return g, nil
}

// Handler is the gateway's HTTP handler (for tests and embedding).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Handle mounts h on the gateway's routes (the web client, the admin
// dashboard); more specific patterns win over the API's.
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// Stats returns the WebSocket hub's snapshot (zero without a hub).
func (g *Gateway) Stats() HubStats {
	if g.hub == nil {
		return HubStats{}
	}
	return g.hub.Stats()
}

// Run serves HTTP until ctx is done, then drains: readiness turns 503 first so
// load balancers stop sending traffic, WebSocket clients are told to
// reconnect elsewhere (1001), then in-flight requests finish.
func (g *Gateway) Run(ctx context.Context) error {
	lis := g.cfg.Listener
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", g.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("gateway: listen on %s: %w", g.cfg.HTTPAddr, err)
		}
	}
	g.cfg.Logger.InfoContext(ctx, "gateway listening", "addr", lis.Addr().String())
	srv := httpserver.New(g.handler)
	stopDrain := context.AfterFunc(ctx, g.cfg.Health.SetDraining)
	defer stopDrain()
	eg, ectx := errgroup.WithContext(ctx)
	if g.hub != nil {
		eg.Go(func() error { return g.hub.Run(ectx) })
	}
	if g.stats != nil {
		eg.Go(func() error { return g.stats.Run(ectx) })
	}
	eg.Go(func() error {
		if err := httpserver.Serve(ectx, srv, lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("gateway: serve: %w", err)
		}
		return nil
	})
	return eg.Wait()
}

// cors answers browser preflights and adds CORS headers for the configured
// origins; with none configured the API stays same-origin only.
func (g *Gateway) cors(next http.Handler) http.Handler {
	origins := g.cfg.CORSOrigins
	if len(origins) == 0 {
		return next
	}
	any := slices.Contains(origins, "*")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (any || slices.Contains(origins, origin)) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "X-Request-Id")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// withRequestID gives every request an id (the client's X-Request-Id when it
// sent a sane one), echoes it in the response and forwards it to the services.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 || strings.ContainsAny(id, "\r\n") {
			id = logging.NewRequestID()
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}
