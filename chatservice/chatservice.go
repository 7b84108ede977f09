// Package chatservice is Parley's chat service: channels, membership,
// messages with per-channel sequence numbers, history (with a bounded
// recent-history cache in Redis), search and attachments (GridFS), stored in
// MongoDB and announced on NATS (durable events on JetStream, realtime
// frames on core NATS).
//
// It is assembled here (Config, New) and run with Run; cmd/chatservice and
// the all-in-one both use it. See README.md for the storage layout, the
// permission rules and the outbox.
package chatservice

import (
	"context"
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

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/connect"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/rpc"

	"github.com/parleyhq/parley/chatservice/internal/cache"
	"github.com/parleyhq/parley/chatservice/internal/channelcache"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/events"
	"github.com/parleyhq/parley/chatservice/internal/grpcapi"
	"github.com/parleyhq/parley/chatservice/internal/rostercache"
	"github.com/parleyhq/parley/chatservice/internal/store"
	"github.com/parleyhq/parley/chatservice/internal/users"
)

// Defaults of Config.
const (
	DefaultGRPCAddr    = "localhost:9082"
	DefaultMongoURI    = "mongodb://localhost:27017"
	DefaultDatabase    = "parley"
	DefaultNATSURL     = nats.DefaultURL
	DefaultRedisURL    = "redis://localhost:6379/0"
	DefaultRedisPrefix = "parley:"
	// DefaultRelayInterval is how often the outbox relay looks for
	// events to republish.
	DefaultRelayInterval = time.Second
	// DefaultPublishTimeout bounds one durable publish on the request path;
	// after it the request returns and the relay takes over.
	DefaultPublishTimeout = 3 * time.Second
	// ServiceName is how this service names itself to others and in events.
	ServiceName = "chatservice"
	// connectTimeout bounds connecting to and pinging each backend, and
	// creating indexes and streams.
	connectTimeout = 30 * time.Second
	// opTimeout bounds every MongoDB operation (client-side timeout). It is
	// generous because on FerretDB v1 a query that is not by _id scans the
	// whole collection (history beyond the cache, search, cache fills).
	opTimeout = time.Minute
)

// Config assembles the chat service. Zero values are sensible local
// defaults, except Verifier, which is required. Every name a test must
// isolate on a shared server (database, Redis prefix, NATS subject prefix,
// stream names) is here.
type Config struct {
	// GRPCAddr is where the gRPC server listens (default "localhost:9082");
	// GRPCListener, when set, wins (the all-in-one binds it itself).
	GRPCAddr     string
	GRPCListener net.Listener
	// HTTPAddr, when set, serves /healthz and /readyz.
	HTTPAddr string

	MongoURI string // default "mongodb://localhost:27017"
	Database string // default "parley"
	NATSURL  string // default "nats://127.0.0.1:4222"
	RedisURL string // default "redis://localhost:6379/0"

	// RedisPrefix starts every Redis key (default "parley:"); the history
	// cache uses <prefix>chat:history:{<channel id>}.
	RedisPrefix string
	// DisableCache reads history from MongoDB only (RedisURL is ignored).
	DisableCache bool
	// CacheSize is how many newest messages per channel the history cache
	// keeps (default 500, at least 200); CacheTTL expires idle channels
	// (default 24h).
	CacheSize int
	CacheTTL  time.Duration
	// MemberCacheTTL bounds how long a channel's member list is served from
	// memory without a reload (default 30s): how far ListMembers may lag
	// a join or leave made through another replica. Authorisation uses
	// the cached lists only with OneWriter.
	MemberCacheTTL time.Duration
	// ChannelCacheTTL, when positive, serves channel documents from memory
	// for that long (package channelcache): every send reads its channel.
	// Channels only change in their preview, so authorisation is not
	// affected, but a preview written through another replica shows late
	// in GetChannel. Off by default; the all-in-one, the only writer of
	// its database, turns it on.
	ChannelCacheTTL time.Duration
	// OneWriter queues this service's MongoDB writes one at a time in the
	// process. Set it on a database that admits one writer at a time, the
	// embedded FerretDB over SQLite (the all-in-one does); elsewhere it
	// only costs throughput. It also declares this service its database's
	// only writer, which no other replica or process writes to: the seq
	// counters are then kept in memory and reserved in blocks (most sends
	// write none), and the member-list cache is exact, so membership
	// checks and read positions are answered from it
	// (rostercache.Config.Exact). And the last writes of a send (the
	// channel's preview, the sender's read position, the deletion of the
	// outbox entry) are written behind, together, every WriteBehind
	// (default store.DefaultWriteBehind, 1s); the outbox entry covers them
	// until they are stored.
	OneWriter   bool
	WriteBehind time.Duration

	// Events names the JetStream streams and the durable subject prefix
	// (zero value: EVENTS, events.<type>, DLQ). New creates the streams.
	Events eventbus.Names
	// RealtimePrefix is prepended to realtime subjects
	// (<prefix>rt.channel.<id>); default none.
	RealtimePrefix string
	// PublishTimeout bounds a durable publish on the request path (default
	// 3s); a publish that fails is left to the outbox relay.
	PublishTimeout time.Duration
	// OutboxDelay is how old an outbox entry must be before the relay
	// republishes it (default 5s); RelayInterval is how often it looks
	// (default 1s).
	OutboxDelay   time.Duration
	RelayInterval time.Duration

	// MaxAttachmentSize in bytes (default 25 MB); AllowedContentTypes are
	// the sniffed attachment types accepted (default: common images, PDF,
	// plain text, zip, audio, video; see README.md).
	MaxAttachmentSize   int64
	AllowedContentTypes []string

	// ServiceToken is the shared secret of calls between services (the
	// gateway's CheckAccess, the notification service's ListMembers) and
	// of this service's calls to the user service.
	ServiceToken string
	// Verifier checks users' access tokens. Required.
	Verifier auth.TokenVerifier
	// UserService is a connection to the user service, to check that the
	// users added to channels exist; nil accepts any well-formed id (a
	// warning is logged).
	UserService grpc.ClientConnInterface

	Logger *slog.Logger

	// wrapEvents lets tests inside this package wrap the event publisher
	// (to make publishing fail); users replaces the user service with an
	// in-test directory.
	wrapEvents func(chat.EventPublisher) chat.EventPublisher
	users      chat.UserDirectory
}

// channelStore puts the caches in front of the store: the member-list
// cache right on it, since it looks for the store's bulk load
// (AllMembers), which another decorator in between would hide; the
// channel cache, when on, in front of both.
func channelStore(st *store.Store, cfg Config) chat.ChannelStore {
	var channels chat.ChannelStore = rostercache.New(st, rostercache.Config{TTL: cfg.MemberCacheTTL, Exact: cfg.OneWriter})
	if cfg.ChannelCacheTTL > 0 {
		channels = channelcache.New(channels, channelcache.Config{TTL: cfg.ChannelCacheTTL})
	}
	return channels
}

// Service is the assembled chat service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	lis    net.Listener
	hlis   net.Listener
	grpc   *grpc.Server
	health *health.Health
	domain *chat.Service
	store  *store.Store

	mongo    *mongo.Client
	nc       *nats.Conn
	ncClosed <-chan struct{}
	rdb      *redis.Client
}

// New connects to MongoDB, NATS and Redis (each with a deadline), creates
// the indexes and the event streams, binds the listeners and builds the
// gRPC server. Call Run to serve.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg = withDefaults(cfg)
	if cfg.Verifier == nil {
		return nil, ErrNoVerifier
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			// Nothing served yet: close what New opened; the caller's
			// listener is left to the caller.
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

	sctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var storeOpts []store.Option
	if cfg.OneWriter {
		storeOpts = append(storeOpts, store.OneWriter(), store.WriteBehind(cfg.WriteBehind, cfg.Logger))
	}
	s.store = store.New(s.mongo.Database(cfg.Database), storeOpts...)
	if err := s.store.EnsureIndexes(sctx); err != nil {
		return nil, fmt.Errorf("chatservice: %w", err)
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("chatservice: jetstream: %w", err)
	}
	if err := eventbus.EnsureStreams(sctx, js, eventbus.StreamConfig{Names: cfg.Events}); err != nil {
		return nil, fmt.Errorf("chatservice: %w", err)
	}
	bus, err := eventbus.NewPublisher(s.nc, eventbus.PublisherConfig{
		Names:   cfg.Events,
		Timeout: cfg.PublishTimeout,
		// One attempt on the request path: a failure leaves the event in
		// the outbox, and the relay's retries replace the library's.
		Retries: -1,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("chatservice: event publisher: %w", err)
	}
	var publisher chat.EventPublisher = events.New(bus, events.Config{Source: ServiceName, RealtimePrefix: cfg.RealtimePrefix})
	if cfg.wrapEvents != nil {
		publisher = cfg.wrapEvents(publisher)
	}
	dcfg := chat.Config{
		Channels:            channelStore(s.store, cfg),
		Messages:            s.store,
		Outbox:              s.store,
		Attachments:         s.store,
		Events:              publisher,
		Logger:              cfg.Logger,
		CacheSize:           cfg.CacheSize,
		MaxAttachmentSize:   cfg.MaxAttachmentSize,
		AllowedContentTypes: cfg.AllowedContentTypes,
		OutboxDelay:         cfg.OutboxDelay,
	}
	if s.rdb != nil {
		dcfg.Cache = cache.New(s.rdb, cache.Config{Prefix: cfg.RedisPrefix, Size: cfg.CacheSize, TTL: cfg.CacheTTL})
	}
	switch {
	case cfg.users != nil:
		dcfg.Users = cfg.users
	case cfg.UserService != nil:
		dcfg.Users = users.New(cfg.UserService, ServiceName, cfg.ServiceToken)
	default:
		cfg.Logger.Warn("chatservice: no user service configured; member ids are not verified")
	}
	if s.domain, err = chat.NewService(dcfg); err != nil {
		return nil, fmt.Errorf("chatservice: %w", err)
	}

	s.health = health.New(cfg.Logger)
	s.health.Add("mongodb", health.MongoCheck(s.mongo))
	s.health.Add("nats", health.NATSCheck(s.nc))
	if s.grpc, err = rpc.NewServer(rpc.ServerConfig{
		Logger: cfg.Logger,
		Auth:   auth.Hook(auth.HookConfig{Verifier: cfg.Verifier, ServiceToken: cfg.ServiceToken}),
	}); err != nil {
		return nil, fmt.Errorf("chatservice: grpc server: %w", err)
	}
	grpcapi.New(s.domain, cfg.Logger).Register(s.grpc)
	s.health.RegisterGRPC(s.grpc)

	if s.lis = cfg.GRPCListener; s.lis == nil {
		if s.lis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return nil, fmt.Errorf("chatservice: listen on %s: %w", cfg.GRPCAddr, err)
		}
	}
	if cfg.HTTPAddr != "" {
		if s.hlis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("chatservice: listen on %s: %w", cfg.HTTPAddr, err)
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
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.RelayInterval <= 0 {
		cfg.RelayInterval = DefaultRelayInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With(slog.String("service", ServiceName))
	return cfg
}

// connect opens the backends, each bounded by connectTimeout.
func (s *Service) connect(ctx context.Context) error {
	var err error
	if s.mongo, err = connect.Mongo(ctx, s.cfg.MongoURI, ServiceName, connectTimeout, opTimeout); err != nil {
		return fmt.Errorf("chatservice: %w", err)
	}
	if s.nc, s.ncClosed, err = connect.NATS(s.cfg.NATSURL, ServiceName, connectTimeout, s.log); err != nil {
		return fmt.Errorf("chatservice: %w", err)
	}
	if s.cfg.DisableCache {
		return nil
	}
	if s.rdb, err = connect.Redis(ctx, s.cfg.RedisURL, connectTimeout); err != nil {
		if s.rdb == nil {
			return fmt.Errorf("chatservice: %w", err) // a bad URL
		}
		// The cache is an accelerator: reads fall back to MongoDB while
		// Redis is away, so a missing Redis does not stop the service.
		s.log.Warn("chatservice: redis unreachable; history is read from MongoDB until it is back", slog.Any("error", err))
	}
	return nil
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Service) GRPCAddr() net.Addr { return s.lis.Addr() }

// HTTPAddr is the address of the health endpoints, nil without HTTPAddr.
func (s *Service) HTTPAddr() net.Addr {
	if s.hlis == nil {
		return nil
	}
	return s.hlis.Addr()
}

// Run serves gRPC (and health over HTTP when configured) and runs the
// outbox relay until ctx is done; then it stops gracefully and closes the
// backends. It returns nil after a shutdown caused by ctx.
func (s *Service) Run(ctx context.Context) error {
	defer s.close(context.WithoutCancel(ctx))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rpc.Serve(gctx, s.grpc, s.lis) })
	g.Go(func() error { return s.domain.RunRelay(gctx, s.cfg.RelayInterval) })
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
		s.health.SetDraining() // load balancers stop sending work while calls finish
		return nil
	})
	s.log.InfoContext(ctx, "chat service serving", slog.String("grpc_addr", s.lis.Addr().String()))
	return g.Wait()
}

// close releases the backends; used after Run and when New fails.
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
		if err := s.rdb.Close(); err != nil {
			s.log.WarnContext(ctx, "chatservice: close redis", slog.Any("error", err))
		}
	}
	if s.mongo != nil {
		dctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		if s.store != nil {
			if err := s.store.Close(dctx); err != nil {
				s.log.WarnContext(ctx, "chatservice: write queued previews, read positions and outbox deletions", slog.Any("error", err))
			}
		}
		if err := s.mongo.Disconnect(dctx); err != nil {
			s.log.WarnContext(ctx, "chatservice: close mongodb", slog.Any("error", err))
		}
	}
}
