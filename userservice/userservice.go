// Package userservice is Parley's user service: accounts, JWT
// authentication (Ed25519 access tokens, rotating refresh tokens), profiles,
// friends and user search, served over gRPC.
//
// It is assembled here (Config, New) and run with Run; cmd/userservice and
// the all-in-one both use it.
package userservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/connect"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/rpc"

	"github.com/parleyhq/parley/userservice/internal/events"
	"github.com/parleyhq/parley/userservice/internal/grpcapi"
	"github.com/parleyhq/parley/userservice/internal/password"
	"github.com/parleyhq/parley/userservice/internal/ratelimit"
	"github.com/parleyhq/parley/userservice/internal/store"
	"github.com/parleyhq/parley/userservice/internal/token"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// Defaults of Config.
const (
	DefaultGRPCAddr    = "localhost:9081"
	DefaultMongoURI    = "mongodb://localhost:27017"
	DefaultDatabase    = "parley"
	DefaultNATSURL     = nats.DefaultURL
	DefaultRedisURL    = "redis://localhost:6379/0"
	DefaultRedisPrefix = ratelimit.DefaultPrefix
	DefaultIssuer      = auth.DefaultIssuer
	DefaultAudience    = auth.DefaultAudience
	DefaultAccessTTL   = users.DefaultAccessTTL
	DefaultRefreshTTL  = users.DefaultRefreshTTL
	// DefaultOutboxInterval is how often stored but unpublished events
	// are looked for.
	DefaultOutboxInterval = 10 * time.Second
	// DefaultPurgeInterval is how often expired refresh tokens are
	// deleted.
	DefaultPurgeInterval = time.Hour
	// JWKSPath is where the HTTP server (and the gateway) serve the key set.
	JWKSPath = "/.well-known/jwks.json"
	// ServiceName is how this service names itself.
	ServiceName = "userservice"
	// connectTimeout bounds connecting to and pinging each backend, and
	// creating indexes and streams.
	connectTimeout = 10 * time.Second
	// opTimeout is the MongoDB driver's timeout for operations whose
	// context has no deadline (a gRPC call without one, the background
	// jobs).
	opTimeout = 10 * time.Second
	// outboxMinAge keeps the relay away from events whose inline publish
	// may still be under way.
	outboxMinAge = 30 * time.Second
	outboxBatch  = 100
)

// Config assembles the user service. Zero values are sensible local
// defaults.
type Config struct {
	// GRPCAddr is where the gRPC server listens (default "localhost:9081");
	// GRPCListener, when set, wins (the all-in-one binds it itself).
	GRPCAddr     string
	GRPCListener net.Listener
	// HTTPAddr, when set, serves /healthz, /readyz and
	// /.well-known/jwks.json; HTTPListener, when set, wins.
	HTTPAddr     string
	HTTPListener net.Listener

	MongoURI string // default "mongodb://localhost:27017"
	Database string // default "parley"
	NATSURL  string // default "nats://127.0.0.1:4222"
	RedisURL string // default "redis://localhost:6379/0"

	// RedisPrefix starts every Redis key (default "parley:user:").
	RedisPrefix string
	// Events names the JetStream streams and subject prefixes events go
	// to (zero value: the production names "EVENTS", "events", ...).
	Events eventbus.Names

	// ServiceToken is the shared secret other services present to call
	// as a service (BatchGetUsers, GetProfile of anyone).
	ServiceToken string

	// Issuer and Audience of the access tokens (default "parley" each).
	Issuer, Audience string
	// AccessTTL (default 15m) is also how long a stolen access token stays
	// usable after logout. RefreshTTL defaults to 720h (30 days).
	AccessTTL, RefreshTTL time.Duration
	// AdminUsers are the usernames granted the admin role.
	AdminUsers []string

	// SigningKeyFiles are PEM (PKCS#8) Ed25519 private keys: the first
	// signs, all verify, which is how keys are rotated. When empty, KeyDir
	// holds a key generated on first start; when both are empty, a key is
	// generated in memory and tokens do not survive a restart.
	SigningKeyFiles []string
	KeyDir          string

	// Login rate limiting: lockout after LoginMaxFailures failures per
	// account (default 5) or LoginMaxIPFailures per client IP (default 50)
	// within LoginWindow (15m); lockouts start at LoginBaseLockout (30s)
	// and double per further failure up to LoginMaxLockout (15m).
	LoginMaxFailures, LoginMaxIPFailures           int
	LoginWindow, LoginBaseLockout, LoginMaxLockout time.Duration
	// TrustedProxies is how many proxies in front of the gateway append to
	// X-Forwarded-For (default 0).
	TrustedProxies int

	// Argon2 cost; zero values mean the OWASP parameters (19 MiB, 2
	// iterations, 1 lane). Tests lower them to run fast.
	Argon2MemoryKiB   uint32
	Argon2Iterations  uint32
	Argon2Parallelism uint8
	// MaxConcurrentHashes bounds the password hashes computed at once,
	// and so their memory (default 2 per CPU).
	MaxConcurrentHashes int

	// OutboxInterval is how often unpublished events are republished
	// (default 10s); PurgeInterval how often expired refresh tokens are
	// deleted (default 1h).
	OutboxInterval, PurgeInterval time.Duration

	// Clock is the time source (default time.Now); tests move it.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Service is the assembled user service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	lis      net.Listener
	hlis     net.Listener
	grpc     *grpc.Server
	health   *health.Health
	domain   *users.Service
	keys     *token.Keyring
	verifier *auth.Verifier

	rdb      *redis.Client
	mongo    *mongo.Client
	nc       *nats.Conn
	ncClosed <-chan struct{}
}

// New connects to MongoDB, Redis and NATS (each with a deadline), creates
// the indexes and event streams, loads or creates the signing keys, binds
// the listeners and builds the gRPC server. Call Run to serve.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg = withDefaults(cfg)
	s := &Service{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			if s.lis != nil && cfg.GRPCListener == nil {
				_ = s.lis.Close() // never served; nothing to report
			}
			if s.hlis != nil && cfg.HTTPListener == nil {
				_ = s.hlis.Close()
			}
			s.close(context.WithoutCancel(ctx))
		}
	}()

	if s.keys, err = loadKeys(cfg); err != nil {
		return nil, err
	}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	st := store.New(s.mongo.Database(cfg.Database))
	if err := st.EnsureIndexes(sctx); err != nil {
		return nil, fmt.Errorf("userservice: %w", err)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("userservice: jetstream: %w", err)
	}
	if err := eventbus.EnsureStreams(sctx, js, eventbus.StreamConfig{Names: cfg.Events}); err != nil {
		return nil, fmt.Errorf("userservice: %w", err)
	}
	bus, err := eventbus.NewPublisher(s.nc, eventbus.PublisherConfig{Names: cfg.Events, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("userservice: event publisher: %w", err)
	}
	hasher, err := password.NewHasher(password.Params{
		Memory: cfg.Argon2MemoryKiB, Iterations: cfg.Argon2Iterations, Parallelism: cfg.Argon2Parallelism,
		SaltLen: password.OWASP().SaltLen, KeyLen: password.OWASP().KeyLen,
	}, cfg.MaxConcurrentHashes)
	if err != nil {
		return nil, fmt.Errorf("userservice: %w", err)
	}
	s.domain, err = users.New(ctx, users.Deps{
		Users: st, Sessions: st, Friends: st, Outbox: st,
		Events: events.NewPublisher(bus),
		Hasher: hasher,
		Tokens: token.NewIssuer(s.keys, token.IssuerConfig{Issuer: cfg.Issuer, Audience: cfg.Audience, TTL: cfg.AccessTTL}),
		Limiter: ratelimit.New(s.rdb, ratelimit.Config{
			Prefix: cfg.RedisPrefix, MaxFailures: cfg.LoginMaxFailures, MaxIPFailures: cfg.LoginMaxIPFailures,
			Window: cfg.LoginWindow, BaseLockout: cfg.LoginBaseLockout, MaxLockout: cfg.LoginMaxLockout, Clock: cfg.Clock,
		}),
	}, users.Config{
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, AdminUsers: cfg.AdminUsers,
		Clock: cfg.Clock, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("userservice: %w", err)
	}

	// The service verifies its own tokens with the keys it holds: no
	// network, no cache to go stale.
	if s.verifier, err = auth.NewVerifier(auth.VerifierConfig{
		Issuer: cfg.Issuer, Audience: cfg.Audience, JWKS: auth.StaticKeys(s.keys.JWKS()), Clock: cfg.Clock, Logger: cfg.Logger,
	}); err != nil {
		return nil, fmt.Errorf("userservice: %w", err)
	}
	s.health = health.New(cfg.Logger)
	s.health.Add("mongodb", health.MongoCheck(s.mongo))
	s.health.Add("redis", health.RedisCheck(s.rdb))
	s.health.Add("nats", health.NATSCheck(s.nc))
	if s.grpc, err = rpc.NewServer(rpc.ServerConfig{
		Logger: cfg.Logger,
		Auth: auth.Hook(auth.HookConfig{
			Verifier: s.verifier, Public: grpcapi.PublicMethods(), ServiceToken: cfg.ServiceToken,
		}),
	}); err != nil {
		return nil, fmt.Errorf("userservice: grpc server: %w", err)
	}
	userv1.RegisterUserServiceServer(s.grpc, grpcapi.New(s.domain, s.keys.JWKS(), grpcapi.Config{
		TrustedProxies: cfg.TrustedProxies, Logger: cfg.Logger,
	}))
	s.health.RegisterGRPC(s.grpc)

	if s.lis = cfg.GRPCListener; s.lis == nil {
		if s.lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("userservice: listen on %s: %w", cfg.GRPCAddr, err)
		}
	}
	if s.hlis = cfg.HTTPListener; s.hlis == nil && cfg.HTTPAddr != "" {
		if s.hlis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("userservice: listen on %s: %w", cfg.HTTPAddr, err)
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
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	owasp := password.OWASP()
	if cfg.Argon2MemoryKiB == 0 {
		cfg.Argon2MemoryKiB = owasp.Memory
	}
	if cfg.Argon2Iterations == 0 {
		cfg.Argon2Iterations = owasp.Iterations
	}
	if cfg.Argon2Parallelism == 0 {
		cfg.Argon2Parallelism = owasp.Parallelism
	}
	if cfg.OutboxInterval <= 0 {
		cfg.OutboxInterval = DefaultOutboxInterval
	}
	if cfg.PurgeInterval <= 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
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

// loadKeys picks the signing keys: files, else a key directory, else a
// key in memory (with a warning: tokens die with the process).
func loadKeys(cfg Config) (*token.Keyring, error) {
	var (
		ring *token.Keyring
		err  error
	)
	switch {
	case len(cfg.SigningKeyFiles) > 0:
		ring, err = token.LoadKeyFiles(cfg.SigningKeyFiles)
	case cfg.KeyDir != "":
		ring, err = token.LoadOrCreateKeyDir(cfg.KeyDir)
	default:
		cfg.Logger.Warn("userservice: no signing key configured; using a temporary one (tokens will not survive a restart)")
		ring, err = token.GenerateKeyring()
	}
	if err != nil {
		return nil, fmt.Errorf("userservice: signing keys: %w", err)
	}
	return ring, nil
}

// connect opens the three backends, each bounded by connectTimeout.
func (s *Service) connect(ctx context.Context) error {
	var err error
	if s.rdb, err = connect.Redis(ctx, s.cfg.RedisURL, connectTimeout); err != nil {
		return fmt.Errorf("userservice: %w", err)
	}
	if s.mongo, err = connect.Mongo(ctx, s.cfg.MongoURI, ServiceName, connectTimeout, opTimeout); err != nil {
		return fmt.Errorf("userservice: %w", err)
	}
	if s.nc, s.ncClosed, err = connect.NATS(s.cfg.NATSURL, ServiceName, connectTimeout, s.log); err != nil {
		return fmt.Errorf("userservice: %w", err)
	}
	return nil
}

// Run serves gRPC (and HTTP when configured), republishes pending events
// and purges expired refresh tokens until ctx is done; then it stops
// gracefully and closes the backends. It returns nil after a shutdown
// caused by ctx.
func (s *Service) Run(ctx context.Context) error {
	defer s.close(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rpc.Serve(gctx, s.grpc, s.lis) })
	g.Go(func() error {
		s.health.Run(gctx)
		return nil
	})
	g.Go(func() error {
		every(gctx, s.cfg.OutboxInterval, func(ctx context.Context) {
			n, err := s.domain.RelayPending(ctx, outboxMinAge, outboxBatch)
			if err != nil {
				s.log.WarnContext(ctx, "userservice: outbox relay", slog.Any("error", err))
			}
			if n > 0 {
				s.log.InfoContext(ctx, "userservice: republished pending events", slog.Int("count", n))
			}
		})
		return nil
	})
	g.Go(func() error {
		every(gctx, s.cfg.PurgeInterval, func(ctx context.Context) {
			if n, err := s.domain.PurgeExpiredSessions(ctx); err != nil {
				s.log.WarnContext(ctx, "userservice: purge expired sessions", slog.Any("error", err))
			} else if n > 0 {
				s.log.InfoContext(ctx, "userservice: purged expired refresh tokens", slog.Int64("count", n))
			}
		})
		return nil
	})
	if s.hlis != nil {
		srv := httpserver.New(s.httpHandler())
		g.Go(func() error { return httpserver.Serve(gctx, srv, s.hlis) })
	}
	g.Go(func() error {
		<-gctx.Done()
		// Fail readiness so load balancers stop sending work while the
		// running calls finish.
		s.health.SetDraining()
		return nil
	})
	s.log.InfoContext(ctx, "user service serving", slog.String("grpc_addr", s.lis.Addr().String()),
		slog.String("signing_key", s.keys.SigningKeyID()))
	return g.Wait()
}

// httpHandler serves the probes and the key set.
func (s *Service) httpHandler() http.Handler {
	jwks, _ := json.Marshal(auth.JWKSet{Keys: s.keys.JWKS()}) // plain strings: cannot fail
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.health.Live())
	mux.Handle("GET /readyz", s.health.Ready())
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(jwks) // a failed write means the client left
	})
	return mux
}

// every runs f now and then every interval until ctx is done; each run
// gets a deadline of one interval (at most opTimeout*6).
func every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, min(interval, 6*opTimeout))
		f(rctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close releases the backends New opened; used after Run and when New
// fails.
func (s *Service) close(ctx context.Context) {
	if s.nc != nil {
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
		if err := s.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			s.log.WarnContext(ctx, "userservice: close redis", slog.Any("error", err))
		}
	}
	if s.mongo != nil {
		dctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		if err := s.mongo.Disconnect(dctx); err != nil {
			s.log.WarnContext(ctx, "userservice: close mongodb", slog.Any("error", err))
		}
	}
}
