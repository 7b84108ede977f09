// Command notificationservice runs Parley's notification service. Every
// flag has a PARLEY_* environment variable (flag "smtp-host" is
// PARLEY_SMTP_HOST); flags win.
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
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/parleyhq/parley/notificationservice"
	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"
	"github.com/parleyhq/parley/platform/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "notificationservice:", err)
		os.Exit(1)
	}
}

// run parses args (and the environment), then runs the service until ctx
// is cancelled.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notificationservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                    notificationservice.Config
		logLevel               string
		chatAddr, presenceAddr string
		userAddr               string
	)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", notificationservice.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "HTTP address for /healthz, /readyz and the unsubscribe endpoint (empty: none)")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", notificationservice.DefaultMongoURI, "MongoDB (or FerretDB) URI")
	fs.StringVar(&cfg.Database, "mongodb-database", notificationservice.DefaultDatabase, "database name")
	fs.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server with JetStream")
	fs.StringVar(&chatAddr, "chat-addr", "localhost:9092", "chat service gRPC address")
	fs.StringVar(&presenceAddr, "presence-addr", "localhost:9093", "presence service gRPC address")
	fs.StringVar(&userAddr, "user-addr", "localhost:9091", "user service gRPC address")
	fs.StringVar(&cfg.ServiceToken, "service-token", "", "shared secret for calls between services")
	fs.StringVar(&cfg.Events.EventsStream, "events-stream", "", "event stream name (default EVENTS)")
	fs.StringVar(&cfg.Events.SubjectPrefix, "events-subject-prefix", "", "event subject prefix (default events)")
	fs.StringVar(&cfg.Events.DLQStream, "events-dlq-stream", "", "event dead-letter stream (default DLQ)")
	fs.StringVar(&cfg.Events.DLQSubjectPrefix, "events-dlq-subject-prefix", "", "event dead-letter subject prefix (default dlq)")
	fs.StringVar(&cfg.EventsDurable, "events-durable", notificationservice.DefaultEventsDurable, "durable consumer name of the event stream")
	fs.StringVar(&cfg.Jobs.Stream, "jobs-stream", "", "delivery work-queue stream (default NOTIFY_JOBS)")
	fs.StringVar(&cfg.Jobs.SubjectPrefix, "jobs-subject-prefix", "", "delivery job subject prefix (default notify.jobs)")
	fs.StringVar(&cfg.Jobs.DLQStream, "jobs-dlq-stream", "", "dead-letter stream of delivery jobs (default NOTIFY_DLQ)")
	fs.StringVar(&cfg.Jobs.DLQSubjectPrefix, "jobs-dlq-subject-prefix", "", "dead-letter subject prefix of delivery jobs (default notify.dlq)")
	fs.StringVar(&cfg.Jobs.DurablePrefix, "jobs-durable-prefix", "", "consumer name prefix of the delivery workers (default notificationservice)")
	fs.IntVar(&cfg.Jobs.MaxDeliver, "jobs-max-deliver", 0, "deliveries of a job before it is dead-lettered (default 8)")
	fs.IntVar(&cfg.Jobs.Concurrency, "jobs-concurrency", 0, "deliveries in flight per channel (default 8)")
	fs.StringVar(&cfg.FCMProjectID, "fcm-project-id", "", "Firebase project id (default: from the credentials)")
	fs.StringVar(&cfg.FCMCredentialsFile, "fcm-credentials-file", "", "Firebase service-account JSON key file")
	fs.StringVar(&cfg.FCMEndpoint, "fcm-endpoint", "", "FCM API endpoint override (emulator)")
	fs.StringVar(&cfg.VAPIDPublicKey, "vapid-public-key", "", "Web Push VAPID public key (base64url)")
	fs.StringVar(&cfg.VAPIDPrivateKey, "vapid-private-key", "", "Web Push VAPID private key (base64url)")
	fs.StringVar(&cfg.VAPIDSubject, "vapid-subject", "", "Web Push contact: email address or https URL")
	fs.StringVar(&cfg.KeyDir, "key-dir", "", "directory keeping a generated VAPID key pair (development)")
	fs.StringVar(&cfg.SMTPHost, "smtp-host", "", "SMTP server (empty: email is a dry run)")
	fs.IntVar(&cfg.SMTPPort, "smtp-port", 0, "SMTP port (default 587, 465 with tls, 25 with none)")
	fs.StringVar(&cfg.SMTPUsername, "smtp-username", "", "SMTP AUTH PLAIN user")
	fs.StringVar(&cfg.SMTPPassword, "smtp-password", "", "SMTP AUTH PLAIN password")
	fs.StringVar(&cfg.SMTPFrom, "smtp-from", "Parley <no-reply@localhost>", "email sender")
	fs.StringVar(&cfg.SMTPTLS, "smtp-tls", "starttls", "starttls, tls or none (none only for a loopback server)")
	fs.StringVar(&cfg.SMTPCAFile, "smtp-ca-file", "", "extra CA certificate (PEM) for the SMTP server")
	fs.BoolVar(&cfg.SMTPInsecureSkipVerify, "smtp-insecure-skip-verify", false, "do not verify the SMTP certificate (development only)")
	fs.StringVar(&cfg.BaseURL, "base-url", notificationservice.DefaultBaseURL, "public URL of the web app, for links in emails")
	fs.StringVar(&cfg.UnsubscribeURL, "unsubscribe-url", "", "public URL of the unsubscribe endpoint (default base-url + "+notificationservice.UnsubscribePath+")")
	fs.StringVar(&cfg.UnsubscribeMailto, "unsubscribe-mailto", "", "address for mailto: unsubscribe requests")
	fs.StringVar(&cfg.UnsubscribeSecret, "unsubscribe-secret", "", "secret signing unsubscribe links (default: derived from the service token)")
	fs.DurationVar(&cfg.DigestDelay, "digest-delay", 15*time.Minute, "email a digest to users offline this long")
	fs.DurationVar(&cfg.DigestWindow, "digest-window", 0, "at most one digest per user per window (default digest-delay)")
	fs.DurationVar(&cfg.DigestInterval, "digest-interval", notificationservice.DefaultDigestInterval, "how often the digest runs")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	log, err := logging.New(stdout, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log

	// The connections are lazy (grpc.NewClient): the peers may start later.
	for _, peer := range []struct {
		name, addr string
		conn       *grpc.ClientConnInterface
	}{
		{"chat", chatAddr, &cfg.ChatService},
		{"presence", presenceAddr, &cfg.PresenceService},
		{"user", userAddr, &cfg.UserService},
	} {
		conn, err := rpc.Dial(peer.addr, rpc.ClientConfig{Logger: log})
		if err != nil {
			return fmt.Errorf("%s service: %w", peer.name, err)
		}
		defer func() {
			if err := conn.Close(); err != nil {
				log.Warn("close connection", slog.String("peer", peer.name), slog.Any("error", err))
			}
		}()
		*peer.conn = conn
	}

	svc, err := notificationservice.New(ctx, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
