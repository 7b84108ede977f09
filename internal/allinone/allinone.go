// Package allinone assembles the whole Parley platform in one process: the
// embedded backends (FerretDB on SQLite, NATS with JetStream, miniredis) or
// real servers when their URLs are given, every service on its own loopback
// gRPC port, and the gateway's HTTP server. It is what `go run ./cmd/parley`
// runs; the services talk to each other over real gRPC, exactly as when they
// are deployed separately (docs/decisions/0005).
package allinone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/chatservice"
	"github.com/parleyhq/parley/eventbus/auditservice"
	"github.com/parleyhq/parley/gateway"
	"github.com/parleyhq/parley/notificationservice"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/embedded"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/rpc"
	"github.com/parleyhq/parley/presenceservice"
	"github.com/parleyhq/parley/userservice"
)

// Config is the all-in-one's configuration (flags and PARLEY_* env vars).
type Config struct {
	// HTTPAddr is the gateway's address (default "localhost:8080").
	HTTPAddr string
	// HTTPListener, when set, replaces HTTPAddr (tests bind port 0 themselves).
	HTTPListener net.Listener
	// DataDir keeps the embedded backends' data and the token signing key
	// across restarts.
	DataDir string
	// MongoURI, NATSURL and RedisURL replace the embedded backend with a real
	// server when set.
	MongoURI, NATSURL, RedisURL string
	// SyncEveryCommit makes the embedded FerretDB fsync every commit
	// (embedded.MongoConfig.SyncEveryCommit); by default a commit
	// survives a crash of the process, not of the machine.
	SyncEveryCommit bool
	// AdminUsers are the usernames granted the admin role.
	AdminUsers []string
	// Notifications configures the push and email providers; with none
	// configured, notifications are recorded as dry runs.
	Notifications Notifications
	Logger        *slog.Logger
	// Ready, when set, is called with the gateway's URL once it is serving.
	Ready func(url string)
}

// Notifications are the notification providers' settings.
type Notifications struct {
	FCMProjectID, FCMCredentialsFile              string
	SMTPHost                                      string
	SMTPPort                                      int
	SMTPUsername, SMTPPassword, SMTPFrom, SMTPTLS string
}

// shutdownGrace bounds how long stopping the backends may take; Ctrl-C must
// end the process within 10 s even when a backend hangs.
const shutdownGrace = 5 * time.Second

// service is what every assembled service offers the all-in-one.
type service interface {
	Run(ctx context.Context) error
}

// named pairs a service with its name for shutdown logs.
type named struct {
	name string
	service
}

// Run starts everything and blocks until ctx is cancelled, then stops it all.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.DataDir == "" {
		cfg.DataDir = "parley-data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	backends, err := embedded.Start(ctx, embedded.Config{
		DataDir:  dataDir,
		MongoURI: cfg.MongoURI,
		NATSURL:  cfg.NATSURL,
		RedisURL: cfg.RedisURL,
		Logger:   log,

		MongoSyncEveryCommit: cfg.SyncEveryCommit,
	})
	if err != nil {
		return fmt.Errorf("start backends: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		err = errors.Join(err, backends.Close(stopCtx))
	}()

	clients, err := connect(ctx, backends)
	if err != nil {
		return err
	}
	defer clients.close(context.WithoutCancel(ctx))
	dbs, err := chooseDatabases(ctx, clients.mongo)
	if err != nil {
		return err
	}
	if dbs.chat == sharedDatabase {
		log.Info("keeping the single shared MongoDB database of an earlier version", slog.String("database", sharedDatabase))
	}

	// Services authenticate calls between them with a shared secret; in one
	// process a fresh random one per start is enough.
	serviceToken, err := randomToken()
	if err != nil {
		return err
	}
	var (
		services []named
		conns    []*grpc.ClientConn
	)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	// listen binds a loopback gRPC listener and dials it.
	listen := func(name string) (net.Listener, *grpc.ClientConn, error) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("%s: listen: %w", name, err)
		}
		conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{Logger: log})
		if err != nil {
			_ = lis.Close()
			return nil, nil, fmt.Errorf("%s: dial: %w", name, err)
		}
		conns = append(conns, conn)
		return lis, conn, nil
	}

	userLis, userConn, err := listen("userservice")
	if err != nil {
		return err
	}
	users, err := userservice.New(ctx, userservice.Config{
		GRPCListener: userLis,
		MongoURI:     backends.MongoURI,
		Database:     dbs.users,
		NATSURL:      backends.NATSURL,
		RedisURL:     backends.RedisURL,
		ServiceToken: serviceToken,
		KeyDir:       filepath.Join(dataDir, "keys"),
		AdminUsers:   cfg.AdminUsers,
		Logger:       log, // the service adds its own "service" attribute
	})
	if err != nil {
		_ = userLis.Close()
		return err
	}
	services = append(services, named{"user", users})

	// Every other service and the gateway verify access tokens against the
	// user service's key set, fetched over gRPC.
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		JWKS:   &auth.GRPCKeySource{Client: userv1.NewUserServiceClient(userConn)},
		Logger: log,
	})
	if err != nil {
		return err
	}
	hook := auth.Hook(auth.HookConfig{Verifier: verifier, ServiceToken: serviceToken})

	auditLis, auditConn, err := listen("eventbus")
	if err != nil {
		return err
	}
	audit, err := auditservice.New(ctx, auditservice.Config{
		GRPCListener: auditLis,
		MongoURI:     backends.MongoURI,
		Database:     dbs.audit,
		NATSURL:      backends.NATSURL,
		Auth:         hook,
		RequireAdmin: func(ctx context.Context) error {
			_, err := auth.RequireRole(ctx, auth.RoleAdmin)
			return err
		},
		Logger: log, // the service adds its own "service" attribute
	})
	if err != nil {
		_ = auditLis.Close()
		return err
	}
	services = append(services, named{"eventbus", audit})

	chatLis, chatConn, err := listen("chatservice")
	if err != nil {
		return err
	}
	presenceLis, presenceConn, err := listen("presenceservice")
	if err != nil {
		return err
	}
	notifyLis, notifyConn, err := listen("notificationservice")
	if err != nil {
		return err
	}

	chat, err := chatservice.New(ctx, chatservice.Config{
		GRPCListener: chatLis,
		MongoURI:     backends.MongoURI,
		Database:     dbs.chat,
		// SQLite admits one writer at a time; see chatservice.Config.
		OneWriter: backends.MongoEmbedded(),
		// Only this process reaches the embedded FerretDB, so every
		// membership and preview change passes through the chat service's
		// caches and the cached lists and channels are exact: refreshing
		// them is wasted work.
		MemberCacheTTL:  exactCacheTTL(backends),
		ChannelCacheTTL: exactCacheTTL(backends),
		NATSURL:         backends.NATSURL,
		RedisURL:        backends.RedisURL,
		ServiceToken:    serviceToken,
		Verifier:        verifier,
		UserService:     userConn,
		Logger:          log, // the service adds its own "service" attribute
	})
	if err != nil {
		_ = chatLis.Close()
		return err
	}
	services = append(services, named{"chat", chat})

	presence, err := presenceservice.New(ctx, presenceservice.Config{
		GRPCListener: presenceLis,
		MongoURI:     backends.MongoURI,
		Database:     dbs.presence,
		NATSURL:      backends.NATSURL,
		RedisURL:     backends.RedisURL,
		ServiceToken: serviceToken,
		Verifier:     verifier,
		UserService:  userConn,
		ChatService:  chatConn,
		Logger:       log, // the service adds its own "service" attribute
	})
	if err != nil {
		_ = presenceLis.Close()
		return err
	}
	services = append(services, named{"presence", presence})

	lis := cfg.HTTPListener
	if lis == nil {
		addr := cfg.HTTPAddr
		if addr == "" {
			addr = "localhost:8080"
		}
		lis, err = net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
	}
	baseURL := "http://" + lis.Addr().String()

	unsubscribeSecret, err := persistentSecret(filepath.Join(dataDir, "keys", "unsubscribe.secret"))
	if err != nil {
		_ = lis.Close()
		return err
	}
	notifyHTTP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("notificationservice: listen: %w", err)
	}
	n := cfg.Notifications
	notify, err := notificationservice.New(ctx, notificationservice.Config{
		GRPCListener:       notifyLis,
		HTTPListener:       notifyHTTP,
		MongoURI:           backends.MongoURI,
		Database:           dbs.notifications,
		NATSURL:            backends.NATSURL,
		ChatService:        chatConn,
		PresenceService:    presenceConn,
		UserService:        userConn,
		ServiceToken:       serviceToken,
		Verifier:           verifier,
		KeyDir:             filepath.Join(dataDir, "keys"),
		BaseURL:            baseURL,
		UnsubscribeSecret:  unsubscribeSecret,
		FCMProjectID:       n.FCMProjectID,
		FCMCredentialsFile: n.FCMCredentialsFile,
		SMTPHost:           n.SMTPHost,
		SMTPPort:           n.SMTPPort,
		SMTPUsername:       n.SMTPUsername,
		SMTPPassword:       n.SMTPPassword,
		SMTPFrom:           n.SMTPFrom,
		SMTPTLS:            n.SMTPTLS,
		Logger:             log, // the service adds its own "service" attribute
	})
	if err != nil {
		_ = lis.Close()
		_ = notifyHTTP.Close()
		return err
	}
	services = append(services, named{"notification", notify})
	// The services have created their collections: index them for
	// FerretDB's _id lookups now rather than on the next sweep.
	if err := backends.IndexIDs(ctx); err != nil {
		log.Warn("index _id lookups", slog.Any("error", err))
	}

	checks := health.New(log)
	checks.Add("mongodb", health.MongoCheck(clients.mongo))
	checks.Add("nats", health.NATSCheck(clients.nats))
	checks.Add("redis", health.RedisCheck(clients.redis))

	gw, err := gateway.New(ctx, gateway.Config{
		Listener: lis,
		Health:   checks,
		Logger:   log,
		Services: gateway.Services{
			User: userConn, Chat: chatConn, Presence: presenceConn,
			Notification: notifyConn, EventBus: auditConn,
		},
		UnsubscribeBackend: &url.URL{Scheme: "http", Host: notifyHTTP.Addr().String()},
		NATS:               clients.nats,
		Verifier:           verifier,
		ServiceToken:       serviceToken,
	})
	if err != nil {
		_ = lis.Close()
		return fmt.Errorf("gateway: %w", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range services {
		g.Go(func() error {
			err := s.Run(gctx)
			log.Debug("service stopped", "service", s.name, "err", err)
			return err
		})
	}
	g.Go(func() error { checks.Run(gctx); return nil })
	g.Go(func() error { return gw.Run(gctx) })
	if cfg.Ready != nil {
		cfg.Ready(baseURL)
	}
	return g.Wait()
}

// exactCacheTTL is the TTL of the chat service's member-list and channel
// caches: long on the embedded FerretDB, which no other replica can write
// to; zero (the service's defaults: 30 s for member lists, no channel
// cache) with an external MongoDB, which other replicas may share.
func exactCacheTTL(b *embedded.Backends) time.Duration {
	if b.MongoEmbedded() {
		return time.Hour
	}
	return 0
}

// persistentSecret returns the secret stored at path, creating it on first
// use, so links signed with it (email unsubscribe) survive restarts.
func persistentSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	secret, err := randomToken()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return secret, nil
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("service token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type clients struct {
	mongo *mongo.Client
	nats  *nats.Conn
	redis *redis.Client
}

// connect opens the clients the all-in-one itself needs (health checks).
func connect(ctx context.Context, b *embedded.Backends) (*clients, error) {
	mc, err := mongo.Connect(options.Client().ApplyURI(b.MongoURI).SetTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %w", err)
	}
	nc, err := nats.Connect(b.NATSURL, nats.Name("parley-allinone"), nats.MaxReconnects(-1))
	if err != nil {
		_ = mc.Disconnect(ctx)
		return nil, fmt.Errorf("connect to NATS at %s: %w", b.NATSURL, err)
	}
	opt, err := redis.ParseURL(b.RedisURL)
	if err != nil {
		nc.Close()
		_ = mc.Disconnect(ctx)
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	return &clients{mongo: mc, nats: nc, redis: redis.NewClient(opt)}, nil
}

func (c *clients) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = c.redis.Close()
	c.nats.Close()
	_ = c.mongo.Disconnect(ctx)
}
