package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// MongoConfig configures StartMongo.
type MongoConfig struct {
	// Dir holds the SQLite files, one per database; created if missing.
	Dir string
	// Addr is the TCP listen address; default "127.0.0.1:0" (random port).
	Addr string
	// Logger receives FerretDB's errors; nil discards them.
	Logger *slog.Logger
	// SyncEveryCommit makes SQLite fsync its log at every commit
	// (synchronous=FULL). By default (synchronous=NORMAL, in WAL mode) a
	// commit survives the process crashing, and the last commits before
	// an operating-system crash or a power cut may be lost: the trade
	// MongoDB makes by default (journal flushed every 100 ms) and the
	// embedded NATS makes too. It costs a fsync per write: about 1 ms of
	// every write's latency here, and every write waits for the one
	// before (decision 0008).
	SyncEveryCommit bool
}

// ferretdbNewMu serialises ferretdb.New, which writes a package-level
// variable of FerretDB's (version.Get().Package): parallel tests that each
// start a FerretDB would otherwise race. It is the only way to guard
// another package's global, hence a variable here.
var ferretdbNewMu sync.Mutex

// Mongo is an embedded FerretDB speaking the MongoDB wire protocol.
type Mongo struct {
	uri     string
	dir     string
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{} // closed when the Run goroutine returns
	indexed chan struct{} // closed when the index loop returns
	once    sync.Once
}

// StartMongo starts FerretDB with the SQLite handler on cfg.Dir. ctx bounds
// the start only; the server runs until Close.
func StartMongo(ctx context.Context, cfg MongoConfig) (*Mongo, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("start mongo: %w", ErrNoDir)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start mongo: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("start mongo: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("start mongo: %w", err)
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	logger := componentLogger(cfg.Logger, "ferretdb")
	// FerretDB logs every connection at info and every error reply (a
	// duplicate key, the driver's unsupported endSessions on disconnect)
	// as a multi-line warning; only its errors are news to us.
	logger = slog.New(minLevelHandler{Handler: logger.Handler(), min: slog.LevelError})

	sqliteURL := sqliteURL(dir, cfg.SyncEveryCommit)
	ferretdbNewMu.Lock()
	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	ferretdbNewMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start mongo on %s: %w", dir, err)
	}

	// ferretdb.New already listens, so the URI (with the real port when
	// port 0 was asked for) is known before Run; its doc comment is stale.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mongo{
		uri: withPoolLimit(fdb.MongoDBURI()), dir: dir, log: logger, cancel: cancel,
		done: make(chan struct{}), indexed: make(chan struct{}),
	}
	go func() {
		defer close(m.done)
		if err := fdb.Run(runCtx); err != nil {
			logger.Error("ferretdb stopped", slog.Any("error", err))
		}
	}()
	go m.indexLoop(runCtx)
	return m, nil
}

// indexLoop adds the _id lookup index (see idindex.go) to collections as
// FerretDB creates them, until ctx ends.
func (m *Mongo) indexLoop(ctx context.Context) {
	defer close(m.indexed)
	t := time.NewTicker(idIndexInterval)
	defer t.Stop()
	for {
		if err := m.IndexIDs(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("index _id lookups", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// IndexIDs adds the _id lookup index to every collection that lacks it
// now, rather than within the next couple of seconds. The all-in-one calls
// it once its services have created their collections.
func (m *Mongo) IndexIDs(ctx context.Context) error {
	if _, err := indexIDs(ctx, m.dir); err != nil {
		return fmt.Errorf("mongo: %w", err)
	}
	return nil
}

// sqliteURL is FerretDB's SQLite URL for the files in dir. FerretDB
// insists on a trailing slash (the URL names a directory), and adds its
// own pragmas (busy timeout, WAL) to ours; the driver runs them on every
// connection it opens.
//
// temp_store(memory) is for the statement journals: FerretDB runs every
// write in a transaction, so each statement keeps a journal of the pages
// it changes. With temporary files allowed, SQLite grows that journal in
// memory in 64 KiB chunks, and modernc's allocator maps and unmaps a fresh
// 1 MiB region for every one, two system calls per statement; kept in
// memory, the journal grows in 1 KiB chunks from the allocator's slots.
func sqliteURL(dir string, syncEveryCommit bool) string {
	sync := "NORMAL"
	if syncEveryCommit {
		sync = "FULL"
	}
	q := url.Values{"_pragma": {"synchronous(" + sync + ")", "temp_store(memory)"}}
	return (&url.URL{Scheme: "file", Path: dir + "/", RawQuery: q.Encode()}).String()
}

// mongoPoolSize caps each client's connections to the embedded FerretDB.
// FerretDB runs every operation on its own SQLite connection, and SQLite
// has one writer at a time: writers that find the database locked sleep
// in SQLite's busy handler (1 ms, 2 ms, 5 ms, ... up to 100 ms), so a
// hundred concurrent writes left the CPU idle while they slept. Fewer
// connections queue in the driver instead, which wakes the next one as
// soon as one finishes.
const mongoPoolSize = 4

// withPoolLimit adds mongoPoolSize to FerretDB's URI.
func withPoolLimit(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri // FerretDB's own URI; it parses
	}
	q := u.Query()
	q.Set("maxPoolSize", strconv.Itoa(mongoPoolSize))
	u.RawQuery = q.Encode()
	return u.String()
}

// URI returns a mongodb:// URI for mongo-driver/v2.
func (m *Mongo) URI() string { return m.uri }

// Close stops FerretDB and waits until its files are closed, or until ctx
// is done. FerretDB gives still-connected clients up to 3 s to hang up, so
// disconnect clients first for a fast Close.
func (m *Mongo) Close(ctx context.Context) error {
	m.once.Do(m.cancel)
	for _, done := range []chan struct{}{m.indexed, m.done} {
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("close mongo: %w", ctx.Err())
		}
	}
	return nil
}
