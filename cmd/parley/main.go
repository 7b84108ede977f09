// Command parley runs the whole Parley platform in one process: embedded
// backends (nothing to install), every service and the gateway, serving the
// REST API, the WebSocket endpoint and the web client on http://localhost:8080.
//
// Every flag has a PARLEY_ environment variable (flag "nats-url" is
// PARLEY_NATS_URL); flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/parleyhq/parley/internal/allinone"
	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        allinone.Config
		logLevel   string
		adminUsers string
		demo       bool
		pprofAddr  string
	)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "localhost:8080", "address of the HTTP server (REST, WebSocket, web client)")
	fs.StringVar(&cfg.DataDir, "data-dir", "parley-data", "directory for the embedded backends' data (kept across restarts)")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", "", "use this MongoDB (or FerretDB) instead of the embedded FerretDB")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "use this NATS server (JetStream enabled) instead of the embedded one")
	fs.StringVar(&cfg.RedisURL, "redis-url", "", "use this Redis instead of the embedded miniredis")
	fs.BoolVar(&cfg.SyncEveryCommit, "sync-every-commit", false,
		"make the embedded FerretDB fsync every commit: durable through a power cut, at about 1 ms per write (default: durable through a crash of this process)")
	fs.BoolVar(&demo, "demo", false, "seed demo users (alice, bob, carol), channels and history, and print their logins")
	fs.StringVar(&adminUsers, "admin-users", "", "comma-separated usernames that get the admin role")
	n := &cfg.Notifications
	fs.StringVar(&n.SMTPHost, "smtp-host", "", "SMTP server for email notifications (empty: emails are recorded as dry runs)")
	fs.IntVar(&n.SMTPPort, "smtp-port", 587, "SMTP port")
	fs.StringVar(&n.SMTPUsername, "smtp-username", "", "SMTP user (AUTH PLAIN)")
	fs.StringVar(&n.SMTPPassword, "smtp-password", "", "SMTP password")
	fs.StringVar(&n.SMTPFrom, "smtp-from", "Parley <no-reply@localhost>", "sender of notification emails")
	fs.StringVar(&n.SMTPTLS, "smtp-tls", "starttls", "SMTP TLS mode: starttls, tls or none (loopback only)")
	fs.StringVar(&n.FCMProjectID, "fcm-project-id", "", "Firebase project for FCM push (empty: push is recorded as dry runs)")
	fs.StringVar(&n.FCMCredentialsFile, "fcm-credentials-file", "", "FCM service-account key file")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&pprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (off by default)")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	for _, u := range strings.Split(adminUsers, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.AdminUsers = append(cfg.AdminUsers, strings.ToLower(u))
		}
	}
	log, err := logging.New(stderr, logLevel)
	if err != nil {
		return err
	}
	slog.SetDefault(log)
	cfg.Logger = log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if pprofAddr != "" {
		wait, err := servePprof(ctx, pprofAddr)
		if err != nil {
			return err
		}
		defer wait()
		defer cancel()
	}
	var (
		seeding sync.WaitGroup
		seedErr error
	)
	cfg.Ready = func(url string) {
		fmt.Fprintf(stdout, "\nParley is running at %s\n  web client: %s/\n  admin:      %s/admin\n  API docs:   %s/openapi/\n  health:     %s/readyz\n  data:       %s\nPress Ctrl-C to stop.\n\n", url, url, url, url, url, cfg.DataDir)
		if demo {
			// Seeding goes through the REST API like any client, so it
			// runs once the gateway serves; a failure stops the platform.
			seeding.Go(func() {
				if seedErr = allinone.SeedDemo(ctx, url, stdout); seedErr != nil {
					cancel()
				}
			})
		}
	}
	err = allinone.Run(ctx, cfg)
	cancel()
	seeding.Wait()
	if seedErr != nil && !errors.Is(seedErr, context.Canceled) {
		return fmt.Errorf("demo data: %w", seedErr)
	}
	return err
}
