package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/platform/embedded"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip proves every backend of env works through the Env helpers.
func roundTrip(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := ctxT(t)

	db := env.Mongo(t)
	if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "x"}}); err != nil {
		t.Fatalf("mongo insert: %v", err)
	}
	n, err := db.Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("mongo count = %d, %v; want 1", n, err)
	}

	nc := env.NATS(t)
	subj := testenv.Unique("rt") + ".x"
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatalf("nats subscribe: %v", err)
	}
	if err := nc.Publish(subj, []byte("hello")); err != nil {
		t.Fatalf("nats publish: %v", err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil || string(msg.Data) != "hello" {
		t.Fatalf("nats next = %v, %v; want hello", msg, err)
	}

	rc := env.Redis(t)
	key := testenv.Unique("k")
	if err := rc.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatalf("redis set: %v", err)
	}
	if got, err := rc.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Fatalf("redis get = %q, %v; want v", got, err)
	}
}

func TestEmbedded(t *testing.T) {
	// Clear the variables so this proves the embedded mode even in the CI
	// tier, where they name real servers.
	t.Setenv(testenv.EnvMongoURI, "")
	t.Setenv(testenv.EnvNATSURL, "")
	t.Setenv(testenv.EnvRedisURL, "")

	env := testenv.New(t)
	if env.External {
		t.Fatal("External = true without PARLEY_* variables")
	}
	for name, u := range map[string]string{"mongo": env.MongoURI, "nats": env.NATSURL, "redis": env.RedisURL} {
		if !strings.Contains(u, "127.0.0.1:") {
			t.Errorf("%s URL %q is not a local embedded server", name, u)
		}
	}
	if again := testenv.New(t); *again != *env {
		t.Errorf("second New = %+v, want the same servers %+v", again, env)
	}
	roundTrip(t, env)
}

// externalURLs returns the real servers of the CI tier when all three
// variables are set; otherwise it starts a separate set of embedded servers
// to stand in for them.
func externalURLs(t *testing.T) (mongoURI, natsURL, redisURL string) {
	mongoURI, natsURL, redisURL = os.Getenv(testenv.EnvMongoURI), os.Getenv(testenv.EnvNATSURL), os.Getenv(testenv.EnvRedisURL)
	if mongoURI != "" && natsURL != "" && redisURL != "" {
		return mongoURI, natsURL, redisURL
	}
	b, err := embedded.Start(ctxT(t), embedded.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start stand-in servers: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("stop stand-in servers: %v", err)
		}
	})
	return b.MongoURI, b.NATSURL, b.RedisURL
}

func TestExternal(t *testing.T) {
	mongoURI, natsURL, redisURL := externalURLs(t)
	t.Setenv(testenv.EnvMongoURI, mongoURI)
	t.Setenv(testenv.EnvNATSURL, natsURL)
	t.Setenv(testenv.EnvRedisURL, redisURL)

	env := testenv.New(t)
	if !env.External {
		t.Fatal("External = false with PARLEY_* variables set")
	}
	want := testenv.Env{MongoURI: mongoURI, NATSURL: natsURL, RedisURL: redisURL, External: true}
	if *env != want {
		t.Fatalf("New = %+v, want %+v", *env, want)
	}

	// A marker written with a client of our own is read through the Env.
	ctx := ctxT(t)
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("ParseURL: %v", err)
	}
	direct := redis.NewClient(opts)
	defer func() {
		if err := direct.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	key, marker := testenv.Unique("marker"), testenv.Unique("value")
	if err := direct.Set(ctx, key, marker, time.Minute).Err(); err != nil {
		t.Fatalf("set marker: %v", err)
	}
	if got, err := env.Redis(t).Get(ctx, key).Result(); err != nil || got != marker {
		t.Fatalf("marker through Env = %q, %v; want %q", got, err, marker)
	}
	if got := env.NATS(t).ConnectedUrl(); got != natsURL {
		t.Errorf("NATS connected to %s, want %s", got, natsURL)
	}
	roundTrip(t, env)
}

func TestPartlyExternal(t *testing.T) {
	_, _, redisURL := externalURLs(t)
	t.Setenv(testenv.EnvMongoURI, "")
	t.Setenv(testenv.EnvNATSURL, "")
	t.Setenv(testenv.EnvRedisURL, redisURL)

	env := testenv.New(t)
	if !env.External || env.RedisURL != redisURL {
		t.Fatalf("New = %+v, want external Redis %s", *env, redisURL)
	}
	if env.MongoURI == "" || env.NATSURL == "" {
		t.Fatalf("New = %+v, want embedded MongoDB and NATS", *env)
	}
	roundTrip(t, env)
}

func TestMongoDatabasesAreFresh(t *testing.T) {
	env := testenv.New(t)
	a, b := env.Mongo(t), env.Mongo(t)
	if a.Name() == b.Name() {
		t.Fatalf("two databases named %s", a.Name())
	}
	n, err := a.Collection("c").CountDocuments(ctxT(t), bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("fresh database count = %d, %v; want 0", n, err)
	}
}

func TestUnique(t *testing.T) {
	safe := regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	tests := []struct {
		prefix     string
		wantPrefix string
	}{
		{"stream", "stream_"},
		{"TestFoo/sub_case", "TestFoo_sub_case_"},
		{"a.b*c>d e", "a_b_c_d_e_"},
		{"", "u_"},
		{"ünïcode", "_n_code_"},
		{strings.Repeat("x", 100), strings.Repeat("x", 30) + "_"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.wantPrefix, func(t *testing.T) {
			got := testenv.Unique(tt.prefix)
			if !safe.MatchString(got) {
				t.Errorf("Unique(%q) = %q has unsafe characters", tt.prefix, got)
			}
			if !strings.HasPrefix(got, tt.wantPrefix) {
				t.Errorf("Unique(%q) = %q, want prefix %q", tt.prefix, got, tt.wantPrefix)
			}
			if len(got) > 63 {
				t.Errorf("Unique(%q) = %q is %d bytes, want <= 63", tt.prefix, got, len(got))
			}
			if seen[got] {
				t.Errorf("Unique(%q) = %q repeated", tt.prefix, got)
			}
			seen[got] = true
			if again := testenv.Unique(tt.prefix); again == got {
				t.Errorf("Unique(%q) twice = %q", tt.prefix, got)
			}
		})
	}
}

// fakeTB records Fatalf instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
}

func TestCheckFor(t *testing.T) {
	errNotYet := errors.New("not yet")
	tests := []struct {
		name      string
		okAfter   int // calls until f succeeds; -1 never
		wantFatal bool
	}{
		{name: "immediately", okAfter: 1},
		{name: "after retries", okAfter: 4},
		{name: "never", okAfter: -1, wantFatal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeTB{TB: t}
			calls := 0
			testenv.CheckFor(fake, 100*time.Millisecond, 5*time.Millisecond, func() error {
				calls++
				if tt.okAfter > 0 && calls >= tt.okAfter {
					return nil
				}
				return errNotYet
			})
			if tt.wantFatal {
				if !strings.Contains(fake.fatal, "not yet") {
					t.Fatalf("fatal = %q, want the last error", fake.fatal)
				}
				return
			}
			if fake.fatal != "" {
				t.Fatalf("unexpected fatal: %s", fake.fatal)
			}
			if calls != tt.okAfter {
				t.Fatalf("calls = %d, want %d", calls, tt.okAfter)
			}
		})
	}
}

func TestFreeAddrIsBindable(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		addr := testenv.FreeAddr(t)
		if seen[addr] {
			continue // possible, if unlikely: it was free both times
		}
		seen[addr] = true
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("FreeAddr gave %s, which cannot be bound: %v", addr, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testenv.NewClock(start)
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v", c.Now())
	}
	if got := c.Advance(time.Minute); !got.Equal(start.Add(time.Minute)) || !c.Now().Equal(got) {
		t.Fatalf("Advance = %v, Now = %v", got, c.Now())
	}
	c.Set(start)
	if !c.Now().Equal(start) {
		t.Fatalf("after Set: %v", c.Now())
	}
}
