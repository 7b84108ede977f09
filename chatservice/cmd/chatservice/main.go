// Command chatservice runs Parley's chat service on its own: gRPC on
// -grpc-addr, health on -http-addr, data in MongoDB, recent history in
// Redis, events on NATS JetStream.
//
// Every flag has a PARLEY_ environment variable (flag "mongodb-uri" is
// PARLEY_MONGODB_URI); flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"
	"github.com/parleyhq/parley/platform/rpc"

	"github.com/parleyhq/parley/chatservice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chatservice:", err)
		os.Exit(1)
	}
}

// errNoKeys: without a key source the service cannot verify anybody.
var errNoKeys = errors.New("set -user-service-addr or -jwks-url: access tokens need the user service's keys")

func run(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("chatservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      chatservice.Config
		userAddr string
		jwksURL  string
		logLevel string
	)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", chatservice.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "health (/healthz, /readyz) listen address; empty for none")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", chatservice.DefaultMongoURI, "MongoDB (or FerretDB) URI")
	fs.StringVar(&cfg.Database, "database", chatservice.DefaultDatabase, "MongoDB database")
	fs.StringVar(&cfg.NATSURL, "nats-url", chatservice.DefaultNATSURL, "NATS URL (JetStream enabled)")
	fs.StringVar(&cfg.RedisURL, "redis-url", chatservice.DefaultRedisURL, "Redis URL, for the recent-history cache")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", chatservice.DefaultRedisPrefix, "prefix of every Redis key")
	fs.BoolVar(&cfg.DisableCache, "disable-cache", false, "read history from MongoDB only")
	fs.IntVar(&cfg.CacheSize, "cache-size", 0, "newest messages per channel kept in the history cache (default 500, at least 200)")
	fs.DurationVar(&cfg.CacheTTL, "cache-ttl", 0, "idle channels leave the history cache after this (default 24h)")
	fs.DurationVar(&cfg.MemberCacheTTL, "member-cache-ttl", 0, "member lists are reloaded after this; the lag behind other replicas' joins and leaves (default 30s)")
	fs.StringVar(&cfg.Events.EventsStream, "events-stream", "", "JetStream event stream (default EVENTS)")
	fs.StringVar(&cfg.Events.SubjectPrefix, "events-subject-prefix", "", "durable event subject prefix (default events)")
	fs.StringVar(&cfg.Events.DLQStream, "dlq-stream", "", "JetStream dead-letter stream (default DLQ)")
	fs.StringVar(&cfg.Events.DLQSubjectPrefix, "dlq-subject-prefix", "", "dead-letter subject prefix (default dlq)")
	fs.StringVar(&cfg.RealtimePrefix, "realtime-prefix", "", "prefix of the realtime subjects rt.channel.<id>")
	fs.DurationVar(&cfg.PublishTimeout, "publish-timeout", 0, "bound of a durable publish on the request path (default 3s)")
	fs.DurationVar(&cfg.OutboxDelay, "outbox-delay", 0, "age before the outbox relay republishes an event (default 5s)")
	fs.DurationVar(&cfg.RelayInterval, "relay-interval", 0, "how often the outbox relay looks (default 1s)")
	fs.Int64Var(&cfg.MaxAttachmentSize, "max-attachment-size", 0, "attachment size limit in bytes (default 25 MB)")
	fs.StringVar(&cfg.ServiceToken, "service-token", "", "shared secret of calls between services")
	fs.StringVar(&userAddr, "user-service-addr", "", "user service gRPC address (access-token keys, member checks)")
	fs.StringVar(&jwksURL, "jwks-url", "", "JWKS URL for access-token keys, instead of asking the user service")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	log, err := logging.New(stderr, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log

	var keys auth.KeySource
	if userAddr != "" {
		conn, err := rpc.Dial(userAddr, rpc.ClientConfig{Logger: log})
		if err != nil {
			return err
		}
		defer func(c *grpc.ClientConn) {
			_ = c.Close() // the process is ending; nothing to do about it
		}(conn)
		cfg.UserService = conn
		keys = &auth.GRPCKeySource{Client: userv1.NewUserServiceClient(conn)}
	}
	if jwksURL != "" {
		keys = &auth.HTTPKeySource{URL: jwksURL}
	}
	if keys == nil {
		return errNoKeys
	}
	if cfg.Verifier, err = auth.NewVerifier(auth.VerifierConfig{JWKS: keys, Logger: log}); err != nil {
		return err
	}

	svc, err := chatservice.New(ctx, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
