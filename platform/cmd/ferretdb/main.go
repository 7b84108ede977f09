// Command ferretdb runs FerretDB v1 (a MongoDB wire-protocol server) on
// PostgreSQL or SQLite, for CI and local setups that have no MongoDB.
// FerretDB's own cmd/ferretdb panics when installed from the Go module (it
// expects a version file its release build generates), so this wraps the
// embeddable package instead.
//
// Flags (each also read from PARLEY_<FLAG>, e.g. PARLEY_POSTGRESQL_URL):
//
//	--listen-addr     TCP address to serve on (127.0.0.1:27017)
//	--handler         postgresql or sqlite (postgresql)
//	--postgresql-url  database FerretDB stores in; it must exist
//	--sqlite-url      file:<dir>/ for the sqlite handler; dir is created
//	--log-level       debug, info, warn or error (info)
//
// It logs the mongodb:// URI it serves and runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"

	"github.com/parleyhq/parley/platform/config"
	"github.com/parleyhq/parley/platform/logging"
)

// errBadHandler is returned for a --handler other than postgresql or sqlite.
var errBadHandler = errors.New("handler must be postgresql or sqlite")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ferretdb:", err)
		}
		os.Exit(2)
	}
}

// run serves until ctx is done. ready, when not nil, receives the URI once
// FerretDB listens (tests use it to learn a random port).
func run(ctx context.Context, args []string, stderr io.Writer, ready func(uri string)) error {
	fs := flag.NewFlagSet("ferretdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listenAddr := fs.String("listen-addr", "127.0.0.1:27017", "TCP address to serve the MongoDB wire protocol on")
	handler := fs.String("handler", "postgresql", "storage backend: postgresql or sqlite")
	pgURL := fs.String("postgresql-url", "postgres://postgres@127.0.0.1:5432/ferretdb", "PostgreSQL database for the postgresql handler (must exist)")
	sqliteURL := fs.String("sqlite-url", "file:ferretdb-data/", "directory URL for the sqlite handler (file:<dir>/)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := config.Parse(fs, args); err != nil {
		return err
	}
	logger, err := logging.New(stderr, *logLevel)
	if err != nil {
		return err
	}

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listenAddr},
		Logger:   logger.With(slog.String("component", "ferretdb")),
		Handler:  *handler,
	}
	switch *handler {
	case "postgresql":
		cfg.PostgreSQLURL = *pgURL
	case "sqlite":
		if err := makeSQLiteDir(*sqliteURL); err != nil {
			return err
		}
		cfg.SQLiteURL = *sqliteURL
	default:
		return fmt.Errorf("%w, got %q", errBadHandler, *handler)
	}
	fdb, err := ferretdb.New(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	uri := fdb.MongoDBURI()
	logger.Info("serving", slog.String("uri", uri), slog.String("handler", *handler))
	if ready != nil {
		ready(uri)
	}
	if err := fdb.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// makeSQLiteDir creates the directory a file:<dir>/ URL names, which
// FerretDB requires to exist.
func makeSQLiteDir(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("sqlite url: %w", err)
	}
	dir := u.Path
	if dir == "" {
		dir = u.Opaque
	}
	if u.Scheme != "file" || dir == "" {
		return fmt.Errorf("sqlite url %q: want file:<dir>/", raw)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("sqlite dir: %w", err)
	}
	return nil
}
