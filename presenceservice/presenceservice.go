// Package presenceservice is Parley's presence service: online, away, busy
// and offline status kept in Redis, heartbeats from gateways, the sweep of
// crashed gateway nodes, last-seen times kept in MongoDB, changes published
// on NATS, and presence streams.
//
// It is assembled here (Config, New) and run with Run; cmd/presenceservice
// and the all-in-one both use it.
package presenceservice

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/connect"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/rpc"

	"github.com/parleyhq/parley/presenceservice/internal/directory"
	"github.com/parleyhq/parley/presenceservice/internal/grpcapi"
	"github.com/parleyhq/parley/presenceservice/internal/natsfeed"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
	"github.com/parleyhq/parley/presenceservice/internal/store"
)

// Defaults of Config.
const (
	DefaultGRPCAddr    = "localhost:9084"
	DefaultMongoURI    = "mongodb://localhost:27017"
	DefaultDatabase    = "parley"
	DefaultNATSURL     = nats.DefaultURL
	DefaultRedisURL    = "redis://localhost:6379/0"
	DefaultRedisPrefix = store.DefaultPrefix
	// ServiceName is how this service names itself to others.
	ServiceName = "presenceservice"
	// connectTimeout bounds connecting to and pinging each backend.
	connectTimeout = 10 * time.Second
	// maxRecvMsgSize fits the largest valid HeartbeatRequest (100,000 ids
	// of 64 bytes, about 6.6 MB).
	maxRecvMsgSize = 8 << 20
)

// Config assembles the presence service. Zero values are sensible local
// defaults, except Verifier, which is required.
type Config struct {
	// GRPCAddr is where the gRPC server listens (default "localhost:9084");
	// GRPCListener, when set, wins (the all-in-one binds it itself).
	GRPCAddr     string
	GRPCListener net.Listener
	// HTTPAddr, when set, serves /healthz and /readyz.
	HTTPAddr string

	MongoURI string // default "mongodb://localhost:27017"
	Database string // default "parley"
	NATSURL  string // default "nats://127.0.0.1:4222"
	RedisURL string // default "redis://localhost:6379/0"

	// RedisPrefix starts every Redis key (default "parley:presence:").
	RedisPrefix string
	// SubjectPrefix starts the NATS subjects of presence changes
	// (<prefix>presence.<user id>); default none. Tests isolate with it.
	SubjectPrefix string

	// ServiceToken is the shared secret of calls between services: the
	// gateways' Connect, Disconnect and Heartbeat present it.
	ServiceToken string
	// Verifier checks users' access tokens. Required.
	Verifier auth.TokenVerifier

	// UserService and ChatService are connections to those services, for
	// GetOnlineUsers/SubscribeToPresence over friends and channel members;
	// nil makes those scopes fail with FailedPrecondition.
	UserService grpc.ClientConnInterface
	ChatService grpc.ClientConnInterface

	// HeartbeatInterval is the gateways' heartbeat interval (default 10s);
	// a gateway node silent for 1.5 intervals is swept, so its users go
	// offline within 2 intervals of its last heartbeat.
	HeartbeatInterval time.Duration
	// LastSeenRetention is how long an offline user's state stays in Redis
	// (default 7 days); MongoDB keeps last_seen beyond it.
	LastSeenRetention time.Duration
	// MaxScope bounds the friends or channel members a query may cover
	// (default 10000).
	MaxScope int
	// Clock is the time source (default time.Now); tests move it.
	Clock func() time.Time

	Logger *slog.Logger
}

// Service is the assembled presence service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	lis    net.Listener
	hlis   net.Listener
	grpc   *grpc.Server
	health *health.Health
	domain *presence.Service

	// stopping is done once Run begins to shut down; presence streams
	// end then instead of holding up the graceful stop.
	stopping context.Context
	stop     context.CancelFunc

	rdb      *redis.Client
	mongo    *mongo.Client
	nc       *nats.Conn
	ncClosed <-chan struct{}
}

// New connects to Redis, MongoDB and NATS (each with a deadline), binds
// the listeners and builds the gRPC server. Call Run to serve.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg = withDefaults(cfg)
	if cfg.Verifier == nil {
		return nil, ErrNoVerifier
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	s.stopping, s.stop = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			// Nothing served yet: the listeners New bound are closed
			// here, the caller's one is left to the caller.
			if s.lis != nil && cfg.GRPCListener == nil {
				_ = s.lis.Close() // unused socket; nothing to report
			}
			if s.hlis != nil {
				_ = s.hlis.Close()
			}
			s.close(context.WithoutCancel(ctx))
		}
	}()

	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	publisher, err := eventbus.NewPublisher(s.nc, eventbus.PublisherConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("presenceservice: event publisher: %w", err)
	}
	dcfg := presence.Config{
		State: store.NewRedisState(s.rdb, store.RedisConfig{
			Prefix:      cfg.RedisPrefix,
			Retention:   cfg.LastSeenRetention,
			NodeTimeout: cfg.HeartbeatInterval * 3 / 2,
		}),
		Durable:           store.NewMongoStore(s.mongo.Database(cfg.Database), 0),
		Publisher:         natsfeed.NewPublisher(publisher, cfg.SubjectPrefix),
		Feed:              natsfeed.NewFeed(s.nc, natsfeed.FeedConfig{Prefix: cfg.SubjectPrefix, Logger: cfg.Logger}),
		HeartbeatInterval: cfg.HeartbeatInterval,
		MaxScope:          cfg.MaxScope,
		Clock:             cfg.Clock,
		Logger:            cfg.Logger,
	}
	if cfg.UserService != nil {
		dcfg.Friends = directory.NewFriends(cfg.UserService)
	}
	if cfg.ChatService != nil {
		dcfg.Members = directory.NewMembers(cfg.ChatService)
	}
	if s.domain, err = presence.New(dcfg); err != nil {
		return nil, fmt.Errorf("presenceservice: %w", err)
	}

	s.health = health.New(cfg.Logger)
	s.health.Add("redis", health.RedisCheck(s.rdb))
	s.health.Add("mongodb", health.MongoCheck(s.mongo))
	s.health.Add("nats", health.NATSCheck(s.nc))
	if s.grpc, err = rpc.NewServer(rpc.ServerConfig{
		Logger: cfg.Logger,
		Auth:   auth.Hook(auth.HookConfig{Verifier: cfg.Verifier, ServiceToken: cfg.ServiceToken}),
		// A heartbeat may list 100,000 connection ids of up to 64 bytes:
		// more than gRPC's default 4 MiB.
		Options: []grpc.ServerOption{grpc.MaxRecvMsgSize(maxRecvMsgSize)},
	}); err != nil {
		return nil, fmt.Errorf("presenceservice: grpc server: %w", err)
	}
	grpcapi.New(s.domain, s.stopping, cfg.Logger).Register(s.grpc)
	s.health.RegisterGRPC(s.grpc)

	if s.lis = cfg.GRPCListener; s.lis == nil {
		if s.lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("presenceservice: listen on %s: %w", cfg.GRPCAddr, err)
		}
	}
	if cfg.HTTPAddr != "" {
		if s.hlis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("presenceservice: listen on %s: %w", cfg.HTTPAddr, err)
		}
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.MongoURI == "" {
		cfg.MongoURI = DefaultMongoURI
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.NATSURL == "" {
		cfg.NATSURL = DefaultNATSURL
	}
	if cfg.RedisURL == "" {
		cfg.RedisURL = DefaultRedisURL
	}
	if cfg.RedisPrefix == "" {
		cfg.RedisPrefix = DefaultRedisPrefix
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = presence.DefaultHeartbeatInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With(slog.String("service", ServiceName))
	return cfg
}

// connect opens the three backends, each bounded by connectTimeout.
func (s *Service) connect(ctx context.Context) error {
	var err error
	if s.rdb, err = connect.Redis(ctx, s.cfg.RedisURL, connectTimeout); err != nil {
		return fmt.Errorf("presenceservice: %w", err)
	}
	if s.mongo, err = connect.Mongo(ctx, s.cfg.MongoURI, ServiceName, connectTimeout, 0); err != nil {
		return fmt.Errorf("presenceservice: %w", err)
	}
	// The error handler connect.NATS installs reports, among others, a
	// presence stream too slow to keep up (its subscription then ends the
	// stream).
	if s.nc, s.ncClosed, err = connect.NATS(s.cfg.NATSURL, ServiceName, connectTimeout, s.log); err != nil {
		return fmt.Errorf("presenceservice: %w", err)
	}
	return nil
}

// Run serves gRPC (and health over HTTP when configured) and sweeps silent
// gateway nodes until ctx is done; then it stops gracefully and closes the
// backends. It returns nil after a shutdown caused by ctx.
func (s *Service) Run(ctx context.Context) error {
	defer s.close(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rpc.Serve(gctx, s.grpc, s.lis) })
	g.Go(func() error { return s.domain.RunSweeper(gctx) })
	g.Go(func() error {
		s.health.Run(gctx)
		return nil
	})
	if s.hlis != nil {
		mux := http.NewServeMux()
		mux.Handle("/healthz", s.health.Live())
		mux.Handle("/readyz", s.health.Ready())
		srv := httpserver.New(mux)
		g.Go(func() error { return httpserver.Serve(gctx, srv, s.hlis) })
	}
	g.Go(func() error {
		<-gctx.Done()
		// Fail readiness, so that load balancers stop sending work while
		// running calls finish, and end the presence streams, which would
		// otherwise last until the grace period cuts them off.
		s.health.SetDraining()
		s.stop()
		return nil
	})
	s.log.InfoContext(ctx, "presence service serving", slog.String("grpc_addr", s.lis.Addr().String()))
	return g.Wait()
}

// close releases the backends New opened; used after Run and when New
// fails.
func (s *Service) close(ctx context.Context) {
	s.stop()
	if s.nc != nil {
		// Drain lets the presence streams' subscriptions finish what they
		// received; it completes asynchronously, so wait for it.
		if err := s.nc.Drain(); err != nil {
			s.nc.Close()
		}
		select {
		case <-s.ncClosed:
		case <-time.After(connectTimeout):
			s.nc.Close()
		}
	}
	if s.rdb != nil {
		if err := s.rdb.Close(); err != nil {
			s.log.WarnContext(ctx, "presenceservice: close redis", slog.Any("error", err))
		}
	}
	if s.mongo != nil {
		dctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		if err := s.mongo.Disconnect(dctx); err != nil {
			s.log.WarnContext(ctx, "presenceservice: close mongodb", slog.Any("error", err))
		}
	}
}
