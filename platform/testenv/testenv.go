// Package testenv gives integration tests the backends Parley runs on:
// MongoDB, NATS (JetStream) and Redis.
//
// By default it starts the embedded servers of package embedded (FerretDB
// over SQLite, nats-server, miniredis) once per test binary, lazily, in a
// temporary directory. When PARLEY_MONGODB_URI, PARLEY_NATS_URL or
// PARLEY_REDIS_URL is set (non-empty), that backend is the real server at
// the URL instead, each independently; this is how CI runs the same tests
// against real servers.
//
// Tests that share a real server isolate themselves with Unique names
// (databases, stream names, subject and key prefixes). Env.Mongo hands out
// a fresh database per call.
//
// Use Main in TestMain so the embedded servers stop before the binary exits,
// which lets goleak-checking packages verify there are no leaks:
//
//	func TestMain(m *testing.M) {
//		code := testenv.Main(m)
//		if code == 0 {
//			if err := goleak.Find(); err != nil {
//				fmt.Fprintln(os.Stderr, err)
//				code = 1
//			}
//		}
//		os.Exit(code)
//	}
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Environment variables naming external servers; the same names the
// services read (see platform/config).
const (
	EnvMongoURI = "PARLEY_MONGODB_URI"
	EnvNATSURL  = "PARLEY_NATS_URL"
	EnvRedisURL = "PARLEY_REDIS_URL"
)

const (
	// startTimeout bounds starting the embedded servers; FerretDB and
	// JetStream both open files, which is slow on a busy CI machine.
	startTimeout = 2 * time.Minute
	// opTimeout bounds connect, ping and cleanup calls.
	opTimeout = 10 * time.Second
)

// Env names the backends a test talks to.
type Env struct {
	MongoURI string
	NATSURL  string
	RedisURL string
	// External reports that at least one backend is a real server named by
	// a PARLEY_* environment variable rather than an embedded one.
	External bool
}

// New returns the test environment. Backends named by the PARLEY_*
// environment variables are used as they are; the others are the embedded
// servers shared by the whole test binary, started on first use. A backend
// that cannot start fails the test: a missing component never skips.
func New(t testing.TB) *Env {
	t.Helper()
	e := &Env{
		MongoURI: os.Getenv(EnvMongoURI),
		NATSURL:  os.Getenv(EnvNATSURL),
		RedisURL: os.Getenv(EnvRedisURL),
	}
	e.External = e.MongoURI != "" || e.NATSURL != "" || e.RedisURL != ""
	var err error
	if e.MongoURI == "" {
		if e.MongoURI, err = embeddedMongoURI(); err != nil {
			t.Fatalf("testenv: start embedded MongoDB (FerretDB/SQLite): %v (or set %s)", err, EnvMongoURI)
		}
	}
	if e.NATSURL == "" {
		if e.NATSURL, err = embeddedNATSURL(); err != nil {
			t.Fatalf("testenv: start embedded NATS: %v (or set %s)", err, EnvNATSURL)
		}
	}
	if e.RedisURL == "" {
		if e.RedisURL, err = embeddedRedisURL(); err != nil {
			t.Fatalf("testenv: start embedded Redis (miniredis): %v (or set %s)", err, EnvRedisURL)
		}
	}
	return e
}

// Main runs the tests, then stops the embedded servers New started, and
// returns the exit code for os.Exit.
func Main(m *testing.M) int {
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := stopEmbedded(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop embedded servers: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// MongoClient returns a client connected to the MongoDB server; it is
// disconnected when the test ends.
func (e *Env) MongoClient(t testing.TB) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().
		ApplyURI(e.MongoURI).
		SetServerSelectionTimeout(opTimeout).
		SetConnectTimeout(opTimeout))
	if err != nil {
		t.Fatalf("testenv: connect to MongoDB at %s: %v", e.MongoURI, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := c.Disconnect(ctx); err != nil {
			t.Errorf("testenv: disconnect MongoDB: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatalf("testenv: ping MongoDB at %s: %v", e.MongoURI, err)
	}
	return c
}

// Mongo returns a fresh, uniquely named database on a new client; the
// database is dropped and the client disconnected when the test ends.
func (e *Env) Mongo(t testing.TB) *mongo.Database {
	t.Helper()
	c := e.MongoClient(t)
	// The test's name makes a database left behind by a killed run easy to
	// trace; lower case avoids MongoDB's case-conflict rule between names.
	db := c.Database(Unique(strings.ToLower(t.Name())))
	// Registered after MongoClient's cleanup, so it runs before the
	// disconnect (cleanups run last-in, first-out).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Errorf("testenv: drop database %s: %v", db.Name(), err)
		}
	})
	return db
}

// NATS returns a connection to the NATS server; it is drained and closed
// when the test ends.
func (e *Env) NATS(t testing.TB) *nats.Conn {
	t.Helper()
	closed := make(chan struct{})
	nc, err := nats.Connect(e.NATSURL,
		nats.Name(t.Name()),
		nats.Timeout(opTimeout),
		nats.DrainTimeout(opTimeout),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	if err != nil {
		t.Fatalf("testenv: connect to NATS at %s: %v", e.NATSURL, err)
	}
	t.Cleanup(func() {
		if err := nc.Drain(); err != nil {
			// Already closed by the test, or the server is gone: Close
			// is all that is left to do.
			nc.Close()
		}
		select {
		case <-closed:
		case <-time.After(2 * opTimeout):
			t.Errorf("testenv: NATS connection did not close after drain")
			nc.Close()
		}
	})
	return nc
}

// Redis returns a client for the Redis server; it is closed when the test
// ends.
func (e *Env) Redis(t testing.TB) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(e.RedisURL)
	if err != nil {
		t.Fatalf("testenv: parse Redis URL %q: %v", e.RedisURL, err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			t.Errorf("testenv: close Redis client: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: ping Redis at %s: %v", e.RedisURL, err)
	}
	return c
}

// maxPrefix keeps Unique names well below the shortest limit among the
// backends (63 bytes for database names on FerretDB/PostgreSQL).
const maxPrefix = 30

// Unique returns prefix followed by a random suffix, using only letters,
// digits and '_', so the result is valid as a MongoDB database name, a
// JetStream stream or consumer name, a NATS subject token and a Redis key.
// Other characters in prefix (e.g. the '/' of subtest names) become '_'.
func Unique(prefix string) string {
	var b strings.Builder
	for _, r := range prefix {
		if b.Len() >= maxPrefix {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		b.WriteString("u")
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails (Go >= 1.24)
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// CheckFor calls f every interval until it returns nil, and fails the test
// with f's last error when timeout passes first. It replaces sleeping in
// tests that wait for something asynchronous.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: condition not met within %s: %v", timeout, err)
			return // t.Fatalf returns only for fakes of testing.TB
		}
		<-tick.C // poll again at the next interval
	}
}

// logger for the embedded servers: errors only, to stderr, so a broken
// backend explains itself without burying test output in connection logs.
func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
