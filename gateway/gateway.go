// Package gateway is Parley's edge: one HTTP server that carries the REST API
// (grpc-gateway, forwarding to the services over gRPC), the OpenAPI document
// and its browsing page, and health endpoints. The WebSocket hub and the web
// client join it in later issues.
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

	"google.golang.org/grpc"

	"github.com/parleyhq/parley/apis"
	"github.com/parleyhq/parley/gateway/internal/apidocs"
	"github.com/parleyhq/parley/gateway/internal/rest"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/logging"
)

// Config assembles a gateway. Zero values mean sensible local defaults.
type Config struct {
	// HTTPAddr is where the HTTP server listens (default "localhost:8080").
	HTTPAddr string
	// Listener, when set, is used instead of listening on HTTPAddr (the
	// all-in-one and tests bind it themselves to learn the port).
	Listener net.Listener
	// Services are the gRPC connections the REST edge forwards to.
	Services Services
	// Health provides /healthz and /readyz; the caller adds the checks of the
	// backends it owns. Nil means a health set with no checks.
	Health *health.Health
	// UnsubscribeBackend, when set, is the notification service's HTTP
	// base URL: the gateway proxies the one-click email unsubscribe
	// endpoint (a plain HTTP form, not a gRPC method) to it.
	UnsubscribeBackend *url.URL
	// MaxBodyBytes bounds REST request bodies (default 1 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
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
	handler http.Handler
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
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", cfg.Health.Live())
	mux.Handle("GET /readyz", cfg.Health.Ready())
	docs := apidocs.Handler(apis.OpenAPIDocument())
	mux.Handle("/openapi", docs)
	mux.Handle("/openapi/", docs)
	mux.Handle("/v1/", rest.Handler(restMux, cfg.MaxBodyBytes))
	mux.Handle("/.well-known/", rest.Handler(restMux, cfg.MaxBodyBytes))
	if cfg.UnsubscribeBackend != nil {
		proxy := httputil.NewSingleHostReverseProxy(cfg.UnsubscribeBackend)
		mux.Handle(UnsubscribePath, http.MaxBytesHandler(proxy, 64<<10))
	}
	return &Gateway{cfg: cfg, handler: withRequestID(mux)}, nil
}

// Handler is the gateway's HTTP handler (for tests and embedding).
func (g *Gateway) Handler() http.Handler { return g.handler }

// Run serves HTTP until ctx is done, then drains: readiness turns 503 first so
// load balancers stop sending traffic, then in-flight requests finish.
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
	if err := httpserver.Serve(ctx, srv, lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("gateway: serve: %w", err)
	}
	return nil
}

// withRequestID gives every request an id (the client's X-Request-Id when it
// sent a sane one), echoes it in the response and forwards it to the services.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 {
			id = logging.NewRequestID()
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}
