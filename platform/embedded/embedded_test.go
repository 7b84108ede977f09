package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/platform/embedded"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withMongo connects to uri, runs f and disconnects, so that FerretDB can
// close without waiting for the client.
func withMongo(t *testing.T, uri string, f func(*mongo.Collection)) {
	t.Helper()
	ctx := ctxT(t)
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() {
		if err := c.Disconnect(ctx); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	}()
	f(c.Database("embedded_test").Collection("docs"))
}

func TestMongoKeepsDataAcrossRestart(t *testing.T) {
	for _, syncEvery := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncEveryCommit=%v", syncEvery), func(t *testing.T) {
			testMongoKeepsDataAcrossRestart(t, embedded.MongoConfig{Dir: t.TempDir(), SyncEveryCommit: syncEvery})
		})
	}
}

func testMongoKeepsDataAcrossRestart(t *testing.T, cfg embedded.MongoConfig) {
	ctx := ctxT(t)

	m, err := embedded.StartMongo(ctx, cfg)
	if err != nil {
		t.Fatalf("StartMongo: %v", err)
	}
	withMongo(t, m.URI(), func(coll *mongo.Collection) {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: 42}}); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var got struct{ N int }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
			t.Fatalf("find: %v", err)
		}
		if got.N != 42 {
			t.Fatalf("n = %d, want 42", got.N)
		}
	})
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	m2, err := embedded.StartMongo(ctx, cfg)
	if err != nil {
		t.Fatalf("StartMongo again: %v", err)
	}
	defer func() {
		if err := m2.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	withMongo(t, m2.URI(), func(coll *mongo.Collection) {
		var got struct{ N int }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
			t.Fatalf("find after restart: %v", err)
		}
		if got.N != 42 {
			t.Fatalf("n after restart = %d, want 42", got.N)
		}
	})
}

func TestStartMongoWithoutDirFails(t *testing.T) {
	_, err := embedded.StartMongo(t.Context(), embedded.MongoConfig{})
	if !errors.Is(err, embedded.ErrNoDir) {
		t.Fatalf("err = %v, want ErrNoDir", err)
	}
}

// streamMsgs returns the message count of stream name on the server at url.
func streamMsgs(t *testing.T, url, name string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s, err := js.Stream(ctxT(t), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctxT(t))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestNATSKeepsStreamsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := ctxT(t)

	n, err := embedded.StartNATS(embedded.NATSConfig{Dir: dir, Port: -1})
	if err != nil {
		t.Fatalf("StartNATS: %v", err)
	}
	nc, err := nats.Connect(n.URL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "t.x", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	nc.Close()
	if got := streamMsgs(t, n.URL(), "T"); got != 3 {
		t.Fatalf("msgs = %d, want 3", got)
	}

	// Restart keeps the URL and the data.
	url := n.URL()
	if err := n.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if n.URL() != url {
		t.Fatalf("URL after Restart = %s, want %s", n.URL(), url)
	}
	if got := streamMsgs(t, n.URL(), "T"); got != 3 {
		t.Fatalf("msgs after Restart = %d, want 3", got)
	}
	n.Close()

	// A new server on the same directory finds the stream.
	n2, err := embedded.StartNATS(embedded.NATSConfig{Dir: dir})
	if err != nil {
		t.Fatalf("StartNATS again: %v", err)
	}
	defer n2.Close()
	if !n2.Server().JetStreamEnabled() {
		t.Fatal("JetStream not enabled")
	}
	if got := streamMsgs(t, n2.URL(), "T"); got != 3 {
		t.Fatalf("msgs after new start = %d, want 3", got)
	}
}

func TestRedisKeysExpireByThemselves(t *testing.T) {
	r, err := embedded.StartRedis(embedded.RedisConfig{})
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	defer r.Close()
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", r.URL(), err)
	}
	c := redis.NewClient(opts)
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("close client: %v", err)
		}
	}()
	ctx := ctxT(t)
	if err := c.Set(ctx, "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("get = %q, %v; want v", got, err)
	}
	if !r.Miniredis().Exists("k") {
		t.Fatal("key not visible through Miniredis()")
	}
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		n, err := c.Exists(ctx, "k").Result()
		if err != nil {
			return err
		}
		if n != 0 {
			return errors.New("key still exists")
		}
		return nil
	})
}

func TestStart(t *testing.T) {
	ctx := ctxT(t)
	ext, err := embedded.StartRedis(embedded.RedisConfig{})
	if err != nil {
		t.Fatalf("StartRedis: %v", err)
	}
	defer ext.Close()

	tests := []struct {
		name         string
		cfg          embedded.Config
		wantRedisURL string // "" = any embedded one
		wantErr      error
	}{
		{name: "all embedded", cfg: embedded.Config{DataDir: t.TempDir()}},
		{name: "external redis", cfg: embedded.Config{DataDir: t.TempDir(), RedisURL: ext.URL()}, wantRedisURL: ext.URL()},
		{name: "no data dir", cfg: embedded.Config{}, wantErr: embedded.ErrNoDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := embedded.Start(ctx, tt.cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer func() {
				if err := b.Close(ctx); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			if tt.wantRedisURL != "" && b.RedisURL != tt.wantRedisURL {
				t.Errorf("RedisURL = %s, want %s", b.RedisURL, tt.wantRedisURL)
			}
			// Every backend answers through its real client.
			withMongo(t, b.MongoURI, func(coll *mongo.Collection) {
				if err := coll.Database().Client().Ping(ctx, nil); err != nil {
					t.Errorf("mongo ping: %v", err)
				}
			})
			nc, err := nats.Connect(b.NATSURL)
			if err != nil {
				t.Fatalf("nats connect: %v", err)
			}
			if err := nc.FlushTimeout(5 * time.Second); err != nil {
				t.Errorf("nats flush: %v", err)
			}
			nc.Close()
			opts, err := redis.ParseURL(b.RedisURL)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			rc := redis.NewClient(opts)
			if err := rc.Ping(ctx).Err(); err != nil {
				t.Errorf("redis ping: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Errorf("redis close: %v", err)
			}
		})
	}
}

// FerretDB's constructor writes a package-level variable; StartMongo must
// be safe to call from parallel tests anyway (-race catches it otherwise).
func TestStartMongoConcurrently(t *testing.T) {
	ctx := ctxT(t)
	type result struct {
		m   *embedded.Mongo
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		dir := t.TempDir()
		go func() {
			m, err := embedded.StartMongo(ctx, embedded.MongoConfig{Dir: dir})
			results <- result{m, err}
		}()
	}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("StartMongo: %v", r.err)
		}
		withMongo(t, r.m.URI(), func(coll *mongo.Collection) {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
				t.Errorf("insert: %v", err)
			}
		})
		if err := r.m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
}
