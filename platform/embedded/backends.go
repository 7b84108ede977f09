package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
)

// Config configures Start.
type Config struct {
	// DataDir holds <DataDir>/mongo and <DataDir>/nats; required unless
	// both MongoURI and NATSURL are set.
	DataDir string
	// MongoURI, NATSURL and RedisURL, when set, name external servers:
	// that backend is not started and the URL is passed through.
	MongoURI, NATSURL, RedisURL string
	// Logger for the embedded servers; nil discards their logs.
	Logger *slog.Logger
	// MongoSyncEveryCommit: see MongoConfig.SyncEveryCommit.
	MongoSyncEveryCommit bool
}

// Backends holds the URLs of the three backends, embedded or external.
type Backends struct {
	MongoURI string
	NATSURL  string
	RedisURL string

	mongo   *Mongo                        // nil when MongoDB is external
	closers []func(context.Context) error // in start order
}

// IndexIDs runs the embedded FerretDB's _id index fix-up now (see
// Mongo.IndexIDs); with an external MongoDB it does nothing.
func (b *Backends) IndexIDs(ctx context.Context) error {
	if b.mongo == nil {
		return nil
	}
	return b.mongo.IndexIDs(ctx)
}

// MongoEmbedded reports whether MongoURI is the embedded FerretDB: a
// server only this process uses, which keeps each database in one SQLite
// file.
func (b *Backends) MongoEmbedded() bool { return b.mongo != nil }

// Start starts the embedded backends that cfg does not name as external.
// On error, whatever was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Backends, err error) {
	b := &Backends{MongoURI: cfg.MongoURI, NATSURL: cfg.NATSURL, RedisURL: cfg.RedisURL}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close(context.WithoutCancel(ctx)))
		}
	}()
	if (cfg.MongoURI == "" || cfg.NATSURL == "") && cfg.DataDir == "" {
		return nil, fmt.Errorf("start backends: %w", ErrNoDir)
	}
	if b.MongoURI == "" {
		m, err := StartMongo(ctx, MongoConfig{
			Dir: filepath.Join(cfg.DataDir, "mongo"), Logger: cfg.Logger, SyncEveryCommit: cfg.MongoSyncEveryCommit,
		})
		if err != nil {
			return nil, err
		}
		b.MongoURI = m.URI()
		b.mongo = m
		b.closers = append(b.closers, m.Close)
	}
	if b.NATSURL == "" {
		n, err := StartNATS(NATSConfig{Dir: filepath.Join(cfg.DataDir, "nats"), Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		b.NATSURL = n.URL()
		b.closers = append(b.closers, func(context.Context) error { n.Close(); return nil })
	}
	if b.RedisURL == "" {
		r, err := StartRedis(RedisConfig{Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		b.RedisURL = r.URL()
		b.closers = append(b.closers, func(context.Context) error { r.Close(); return nil })
	}
	return b, nil
}

// Close stops the embedded backends in reverse start order. It is safe to
// call more than once.
func (b *Backends) Close(ctx context.Context) error {
	var errs []error
	for i := len(b.closers) - 1; i >= 0; i-- {
		if err := b.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	b.closers = nil
	return errors.Join(errs...)
}
