// Package auditservice assembles the event-bus service: it consumes every
// durable event (events.>) into the append-only MongoDB audit log, and
// serves EventBusService over gRPC (list and get events, list, retry and
// discard dead letters) for administrators.
//
// Why this package and not eventbus/eventbus.go: the module's root package
// "eventbus" is the event library that every service imports, so the
// service assembly (Config, New, Run — what DESIGN calls <svc>.go) lives
// here, next to it, and pulls MongoDB and gRPC only into the binaries that
// run the service. cmd/eventbus and the all-in-one use it; the business
// rules are in internal/audit, the MongoDB adapter in internal/store and the
// gRPC handlers in internal/grpcapi.
package auditservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/eventbus/internal/audit"
	"github.com/parleyhq/parley/eventbus/internal/grpcapi"
	"github.com/parleyhq/parley/eventbus/internal/store"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/rpc"
)

// Defaults.
const (
	DefaultGRPCAddr = ":9094"
	DefaultDatabase = "parley"
	DefaultDurable  = "audit"
	// ServiceName names this service in its log lines.
	ServiceName = "eventbus"
	// connectTimeout bounds connecting to MongoDB and NATS in New.
	connectTimeout = 30 * time.Second
)

// Config configures the service. Zero values mean the defaults.
type Config struct {
	// GRPCAddr is where EventBusService listens (default ":9094");
	// GRPCListener, when set, is used instead (the all-in-one binds its
	// listeners itself).
	GRPCAddr     string
	GRPCListener net.Listener
	// HTTPAddr, when set, serves /healthz and /readyz; HTTPListener wins
	// over it.
	HTTPAddr     string
	HTTPListener net.Listener

	MongoURI string // required
	Database string // default "parley"
	NATSURL  string // default nats://127.0.0.1:4222

	// Stream settings passed to eventbus.EnsureStreams (replicas 1 in
	// development, 3 in production).
	Names           eventbus.Names
	StreamReplicas  int
	MaxAge          time.Duration
	MaxBytes        int64
	DuplicateWindow time.Duration

	// Durable is the audit consumer's name (default "audit").
	Durable string
	// Consumer tuning; zero values are the library defaults, except
	// MaxDeliver (default 10: a database outage should not dead-letter
	// the audit trail quickly) and PullWait.
	MaxDeliver int
	AckWait    time.Duration
	Backoff    []time.Duration
	PullWait   time.Duration

	// Auth authenticates every call (rpc.ServerConfig.Auth); RequireAdmin
	// then admits administrators only. A nil RequireAdmin lets every
	// authenticated caller in and is logged as a warning at startup: the
	// admin role arrives with the user service.
	Auth         rpc.AuthFunc
	RequireAdmin func(ctx context.Context) error

	Logger *slog.Logger
}

// Service is the running event-bus service.
type Service struct {
	cfg      Config
	logger   *slog.Logger
	mongo    *mongo.Client
	nc       *nats.Conn
	ncClosed chan struct{} // closed by the connection's closed handler
	consumer *eventbus.Consumer
	grpc     *grpc.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	health   *health.Health
	store    *store.EventStore

	closeOnce sync.Once
	closeErr  error
}

// New connects to MongoDB and NATS, provisions the streams, indexes and the
// audit consumer, and binds the listeners. Run starts the work; Close
// releases everything if Run is never called.
func New(ctx context.Context, cfg Config) (s *Service, err error) {
	if cfg.MongoURI == "" {
		return nil, errors.New("auditservice: MongoURI is required")
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.NATSURL == "" {
		cfg.NATSURL = nats.DefaultURL
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.Durable == "" {
		cfg.Durable = DefaultDurable
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With(slog.String("service", ServiceName))
	s = &Service{cfg: cfg, logger: cfg.Logger}
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()

	if s.mongo, err = mongo.Connect(options.Client().ApplyURI(cfg.MongoURI).SetAppName("eventbus").
		SetServerSelectionTimeout(connectTimeout).SetConnectTimeout(10 * time.Second)); err != nil {
		return s, fmt.Errorf("auditservice: connect to MongoDB: %w", err)
	}
	if err = s.mongo.Ping(cctx, nil); err != nil {
		return s, fmt.Errorf("auditservice: ping MongoDB: %w", err)
	}
	s.store = store.New(s.mongo.Database(cfg.Database))
	if err = s.store.EnsureIndexes(cctx); err != nil {
		return s, err
	}

	s.ncClosed = make(chan struct{})
	if s.nc, err = nats.Connect(cfg.NATSURL, nats.Name("eventbus"), nats.Timeout(10*time.Second),
		nats.MaxReconnects(-1), nats.DrainTimeout(10*time.Second),
		nats.ClosedHandler(func(*nats.Conn) { close(s.ncClosed) })); err != nil {
		return s, fmt.Errorf("auditservice: connect to NATS: %w", err)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return s, fmt.Errorf("auditservice: jetstream: %w", err)
	}
	if err = eventbus.EnsureStreams(cctx, js, eventbus.StreamConfig{
		Names: cfg.Names, Replicas: cfg.StreamReplicas, MaxAge: cfg.MaxAge, MaxBytes: cfg.MaxBytes,
		DuplicateWindow: cfg.DuplicateWindow,
	}); err != nil {
		return s, err
	}
	dlq, err := eventbus.NewDeadLetterQueue(s.nc, cfg.Names)
	if err != nil {
		return s, err
	}
	log := audit.New(s.store, dlq, cfg.Logger)
	if s.consumer, err = eventbus.NewConsumer(cctx, s.nc, eventbus.ConsumerConfig{
		Names:        cfg.Names,
		Durable:      cfg.Durable,
		BatchHandler: log.Record,
		MaxDeliver:   cfg.MaxDeliver,
		AckWait:      cfg.AckWait,
		Backoff:      cfg.Backoff,
		PullWait:     cfg.PullWait,
		Logger:       cfg.Logger,
	}); err != nil {
		return s, err
	}

	if cfg.RequireAdmin == nil {
		cfg.Logger.Warn("auditservice: no admin check configured: every caller that passes Auth may read the audit log and manage dead letters")
	}
	if s.grpc, err = rpc.NewServer(rpc.ServerConfig{Logger: cfg.Logger, Auth: cfg.Auth}); err != nil {
		return s, err
	}
	grpcapi.New(log, cfg.RequireAdmin, cfg.Logger).Register(s.grpc)
	s.health = health.New(cfg.Logger)
	s.health.Add("mongodb", health.MongoCheck(s.mongo))
	s.health.Add("nats", health.NATSCheck(s.nc))
	s.health.RegisterGRPC(s.grpc)

	if s.grpcLis = cfg.GRPCListener; s.grpcLis == nil {
		if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return s, fmt.Errorf("auditservice: listen on %s: %w", cfg.GRPCAddr, err)
		}
	}
	s.httpLis = cfg.HTTPListener
	if s.httpLis == nil && cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return s, fmt.Errorf("auditservice: listen on %s: %w", cfg.HTTPAddr, err)
		}
	}
	if s.httpLis != nil {
		mux := http.NewServeMux()
		mux.Handle("/healthz", s.health.Live())
		mux.Handle("/readyz", s.health.Ready())
		s.http = httpserver.New(mux)
	}
	return s, nil
}

// GRPCAddr is the address EventBusService listens on.
func (s *Service) GRPCAddr() net.Addr { return s.grpcLis.Addr() }

// HTTPAddr is the health endpoint's address, or nil when there is none.
func (s *Service) HTTPAddr() net.Addr {
	if s.httpLis == nil {
		return nil
	}
	return s.httpLis.Addr()
}

// Run consumes events and serves the API until ctx is done or a part fails,
// then shuts everything down gracefully (readiness fails first, the
// consumer finishes the batches in flight) and releases the connections.
func (s *Service) Run(ctx context.Context) error {
	defer func() { _ = s.Close() }()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		s.health.Run(gctx)
		return nil
	})
	g.Go(func() error {
		if err := s.consumer.Run(gctx); err != nil {
			return fmt.Errorf("auditservice: audit consumer: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.health.SetDraining()
		return nil
	})
	g.Go(func() error { return rpc.Serve(gctx, s.grpc, s.grpcLis) })
	if s.http != nil {
		g.Go(func() error { return httpserver.Serve(gctx, s.http, s.httpLis) })
	}
	s.logger.Info("auditservice: running", slog.String("grpc_addr", s.grpcLis.Addr().String()),
		slog.String("consumer", s.cfg.Durable))
	err := g.Wait()
	s.logger.Info("auditservice: stopped", slog.Any("error", err))
	return err
}

// Close releases the connections and listeners. Run calls it; call it
// yourself only when Run is never called. It is idempotent.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.grpcLis != nil {
			// Serve closes it when it ran; closing twice only reports
			// net.ErrClosed, which is not a problem.
			if err := s.grpcLis.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if s.httpLis != nil {
			if err := s.httpLis.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		if s.nc != nil {
			// Drain delivers what is buffered and closes asynchronously;
			// wait for it so no connection goroutine outlives Close.
			if err := s.nc.Drain(); err != nil {
				s.nc.Close()
			}
			select {
			case <-s.ncClosed:
			case <-time.After(15 * time.Second):
				s.nc.Close()
				errs = append(errs, errors.New("auditservice: NATS connection did not drain in time"))
			}
		}
		if s.mongo != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.mongo.Disconnect(ctx); err != nil {
				errs = append(errs, fmt.Errorf("auditservice: disconnect MongoDB: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
