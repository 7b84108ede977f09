// Command presenceservice runs Parley's presence service on its own: gRPC
// on -grpc-addr, health on -http-addr, state in Redis, last-seen times in
// MongoDB, changes on NATS.
//
// Every flag has a PARLEY_ environment variable (flag "redis-url" is
// PARLEY_REDIS_URL); flags win over the environment.
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

	"github.com/parleyhq/parley/presenceservice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "presenceservice:", err)
		os.Exit(1)
	}
}

// errNoKeys: without a key source the service cannot verify anybody.
var errNoKeys = errors.New("set -user-service-addr or -jwks-url: access tokens need the user service's keys")

func run(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("presenceservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      presenceservice.Config
		userAddr string
		chatAddr string
		jwksURL  string
		logLevel string
	)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", presenceservice.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "health (/healthz, /readyz) listen address; empty for none")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", presenceservice.DefaultMongoURI, "MongoDB (or FerretDB) URI, for last-seen times")
	fs.StringVar(&cfg.Database, "database", presenceservice.DefaultDatabase, "MongoDB database")
	fs.StringVar(&cfg.NATSURL, "nats-url", presenceservice.DefaultNATSURL, "NATS URL, for presence changes")
	fs.StringVar(&cfg.RedisURL, "redis-url", presenceservice.DefaultRedisURL, "Redis URL, for the live presence state")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", presenceservice.DefaultRedisPrefix, "prefix of every Redis key")
	fs.StringVar(&cfg.SubjectPrefix, "subject-prefix", "", "prefix of the NATS subjects presence.<user id>")
	fs.StringVar(&cfg.ServiceToken, "service-token", "", "shared secret of calls between services (gateways' Connect, Disconnect, Heartbeat)")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "gateways' heartbeat interval (default 10s)")
	fs.DurationVar(&cfg.LastSeenRetention, "last-seen-retention", 0, "how long offline users stay in Redis (default 168h)")
	fs.StringVar(&userAddr, "user-service-addr", "", "user service gRPC address (access-token keys, friends)")
	fs.StringVar(&chatAddr, "chat-service-addr", "", "chat service gRPC address (channel members)")
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

	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			_ = c.Close() // the process is ending; nothing to do about it
		}
	}()
	dial := func(addr string) (*grpc.ClientConn, error) {
		c, err := rpc.Dial(addr, rpc.ClientConfig{Logger: log})
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		return c, nil
	}
	var keys auth.KeySource
	if userAddr != "" {
		c, err := dial(userAddr)
		if err != nil {
			return err
		}
		cfg.UserService = c
		keys = &auth.GRPCKeySource{Client: userv1.NewUserServiceClient(c)}
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
	if chatAddr != "" {
		c, err := dial(chatAddr)
		if err != nil {
			return err
		}
		cfg.ChatService = c
	}

	svc, err := presenceservice.New(ctx, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
