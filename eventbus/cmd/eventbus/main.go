// Command eventbus runs the event-bus service: the audit log of every
// durable event and the dead-letter administration API (gRPC). Every flag
// can also be set with its PARLEY_* environment variable (flag "mongodb-uri"
// is PARLEY_MONGODB_URI); flags win.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/eventbus/auditservice"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

// options are the command's flags.
type options struct {
	logLevel     string
	jwksURL      string
	serviceToken string
	cfg          auditservice.Config
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("eventbus", flag.ContinueOnError)
	fs.StringVar(&o.cfg.GRPCAddr, "grpc-addr", auditservice.DefaultGRPCAddr, "gRPC listen address of EventBusService")
	fs.StringVar(&o.cfg.HTTPAddr, "http-addr", ":8094", "HTTP listen address of /healthz and /readyz (empty: none)")
	fs.StringVar(&o.cfg.MongoURI, "mongodb-uri", "mongodb://localhost:27017", "MongoDB URI of the audit log")
	fs.StringVar(&o.cfg.Database, "mongodb-database", auditservice.DefaultDatabase, "MongoDB database")
	fs.StringVar(&o.cfg.NATSURL, "nats-url", "nats://localhost:4222", "NATS server URL (JetStream enabled)")
	fs.IntVar(&o.cfg.StreamReplicas, "stream-replicas", 1, "replicas of the EVENTS and DLQ streams (3 in a production cluster)")
	fs.DurationVar(&o.cfg.MaxAge, "events-max-age", eventbus.DefaultMaxAge, "age limit of the EVENTS stream")
	fs.Int64Var(&o.cfg.MaxBytes, "events-max-bytes", eventbus.DefaultMaxBytes, "size limit of the EVENTS stream in bytes")
	fs.DurationVar(&o.cfg.DuplicateWindow, "events-duplicate-window", eventbus.DefaultDuplicateWindow, "how long event ids are remembered to drop duplicate publishes")
	fs.StringVar(&o.cfg.Names.EventsStream, "events-stream", eventbus.DefaultEventsStream, "name of the durable event stream")
	fs.StringVar(&o.cfg.Names.SubjectPrefix, "events-subject-prefix", eventbus.DefaultSubjectPrefix, "subject prefix of durable events (<prefix>.<type>)")
	fs.StringVar(&o.cfg.Names.DLQStream, "dlq-stream", eventbus.DefaultDLQStream, "name of the dead-letter stream")
	fs.StringVar(&o.cfg.Names.DLQSubjectPrefix, "dlq-subject-prefix", eventbus.DefaultDLQSubjectPrefix, "subject prefix of dead letters")
	fs.StringVar(&o.cfg.Durable, "consumer", auditservice.DefaultDurable, "durable name of the audit consumer")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.jwksURL, "jwks-url", "", "JWKS URL of the user service; when set, callers need an access token with the admin role")
	fs.StringVar(&o.serviceToken, "service-token", "", "shared token other Parley services authenticate with")
	if err := config.Parse(fs, args); err != nil {
		return o, err
	}
	return o, nil
}

func run(ctx context.Context, args []string) int {
	o, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintln(os.Stderr, err)
		return exitUsage
	}
	log, err := logging.New(os.Stderr, o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitUsage
	}
	if err := serve(ctx, log, o); err != nil {
		log.Error("eventbus failed", slog.Any("error", err))
		return exitFailed
	}
	return exitOK
}

// serve wires authentication and runs the service until ctx ends.
func serve(ctx context.Context, log *slog.Logger, o options) error {
	cfg := o.cfg
	cfg.Logger = log
	if o.jwksURL != "" {
		verifier, err := auth.NewVerifier(auth.VerifierConfig{
			JWKS:   &auth.HTTPKeySource{URL: o.jwksURL, Timeout: 5 * time.Second},
			Logger: log,
		})
		if err != nil {
			return err
		}
		cfg.Auth = auth.Hook(auth.HookConfig{Verifier: verifier, ServiceToken: o.serviceToken})
		cfg.RequireAdmin = func(ctx context.Context) error {
			_, err := auth.RequireRole(ctx, auth.RoleAdmin)
			return err
		}
	}
	svc, err := auditservice.New(ctx, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
