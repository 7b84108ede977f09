// Command userservice runs Parley's user service on its own: gRPC on
// -grpc-addr, health and the JWKS on -http-addr, accounts in MongoDB, login
// rate limits in Redis, events on NATS JetStream.
//
// Every flag has a PARLEY_ environment variable (flag "admin-users" is
// PARLEY_ADMIN_USERS); flags win over the environment. List flags take
// comma-separated values.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"

	"github.com/parleyhq/parley/userservice"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "userservice:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("userservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg                    userservice.Config
		logLevel               string
		argonMem, argonIter    uint
		argonPar               uint
		adminUsers, signingKey string
	)
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", userservice.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "", "HTTP listen address for /healthz, /readyz and "+userservice.JWKSPath+"; empty for none")
	fs.StringVar(&cfg.MongoURI, "mongodb-uri", userservice.DefaultMongoURI, "MongoDB (or FerretDB) URI")
	fs.StringVar(&cfg.Database, "database", userservice.DefaultDatabase, "MongoDB database")
	fs.StringVar(&cfg.NATSURL, "nats-url", userservice.DefaultNATSURL, "NATS URL (JetStream) for events")
	fs.StringVar(&cfg.RedisURL, "redis-url", userservice.DefaultRedisURL, "Redis URL for login rate limits")
	fs.StringVar(&cfg.RedisPrefix, "redis-prefix", userservice.DefaultRedisPrefix, "prefix of every Redis key")
	fs.StringVar(&cfg.Events.EventsStream, "events-stream", "", "JetStream stream of events (default EVENTS)")
	fs.StringVar(&cfg.Events.SubjectPrefix, "events-subject-prefix", "", "subject prefix of events (default events)")
	fs.StringVar(&cfg.Events.DLQStream, "dlq-stream", "", "JetStream dead-letter stream (default DLQ)")
	fs.StringVar(&cfg.Events.DLQSubjectPrefix, "dlq-subject-prefix", "", "subject prefix of dead letters (default dlq)")
	fs.StringVar(&cfg.ServiceToken, "service-token", "", "shared secret of calls between services")
	fs.StringVar(&cfg.Issuer, "issuer", userservice.DefaultIssuer, "access-token issuer (iss)")
	fs.StringVar(&cfg.Audience, "audience", userservice.DefaultAudience, "access-token audience (aud)")
	fs.DurationVar(&cfg.AccessTTL, "access-ttl", userservice.DefaultAccessTTL, "access-token lifetime; also how long a stolen one outlives logout")
	fs.DurationVar(&cfg.RefreshTTL, "refresh-ttl", userservice.DefaultRefreshTTL, "refresh-token lifetime")
	fs.StringVar(&adminUsers, "admin-users", "", "comma-separated usernames granted the admin role")
	fs.StringVar(&signingKey, "signing-key-files", "", "comma-separated PEM PKCS#8 Ed25519 keys; the first signs, all verify")
	fs.StringVar(&cfg.KeyDir, "key-dir", "", "directory holding a signing key generated on first start (when -signing-key-files is empty)")
	fs.IntVar(&cfg.LoginMaxFailures, "login-max-failures", 0, "failed logins per account before a lockout (default 5)")
	fs.IntVar(&cfg.LoginMaxIPFailures, "login-max-ip-failures", 0, "failed logins per client IP before a lockout (default 50)")
	fs.DurationVar(&cfg.LoginWindow, "login-window", 0, "failures further apart than this are forgotten (default 15m)")
	fs.DurationVar(&cfg.LoginBaseLockout, "login-base-lockout", 0, "first lockout, doubling per further failure (default 30s)")
	fs.DurationVar(&cfg.LoginMaxLockout, "login-max-lockout", 0, "longest lockout (default 15m)")
	fs.IntVar(&cfg.TrustedProxies, "trusted-proxies", 0, "proxies in front of the gateway that append to X-Forwarded-For")
	fs.UintVar(&argonMem, "argon2-memory-kib", 0, "argon2id memory in KiB (default 19456, OWASP)")
	fs.UintVar(&argonIter, "argon2-iterations", 0, "argon2id iterations (default 2, OWASP)")
	fs.UintVar(&argonPar, "argon2-parallelism", 0, "argon2id lanes (default 1, OWASP)")
	fs.IntVar(&cfg.MaxConcurrentHashes, "max-concurrent-hashes", 0, "password hashes computed at once (default 2 per CPU)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	if argonMem > math.MaxUint32 || argonIter > math.MaxUint32 || argonPar > math.MaxUint8 {
		return fmt.Errorf("argon2 parameter out of range")
	}
	cfg.Argon2MemoryKiB, cfg.Argon2Iterations, cfg.Argon2Parallelism = uint32(argonMem), uint32(argonIter), uint8(argonPar)
	cfg.AdminUsers = splitList(adminUsers)
	cfg.SigningKeyFiles = splitList(signingKey)
	log, err := logging.New(stderr, logLevel)
	if err != nil {
		return err
	}
	cfg.Logger = log

	svc, err := userservice.New(ctx, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
