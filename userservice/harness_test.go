package userservice_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/userservice"
	"github.com/parleyhq/parley/userservice/internal/token"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// clock is the service's settable time source.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// harness is one user service on the test backends, with a gRPC client and
// the gateway's REST mux in front of it.
type harness struct {
	client   userv1.UserServiceClient
	rest     *httptest.Server
	httpAddr string
	db       *mongo.Database
	js       jetstream.JetStream
	names    eventbus.Names
	clock    *clock
	// signer is the service's signing key, so tests can forge tokens
	// with any claims.
	signer ed25519.PrivateKey
	kid    string
	cfg    userservice.Config
}

type option func(*userservice.Config)

// cheapHashing keeps registrations fast; TestDefaultsAreOWASP pins the
// production cost.
func cheapHashing(c *userservice.Config) {
	c.Argon2MemoryKiB, c.Argon2Iterations, c.Argon2Parallelism = 64, 1, 1
}

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	env := testenv.New(t)
	h := &harness{db: env.Mongo(t), clock: &clock{}}
	h.clock.ns.Store(time.Now().UnixNano())
	nc := env.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h.js = js
	h.names = eventbus.Names{
		EventsStream:     testenv.Unique("EV"),
		SubjectPrefix:    testenv.Unique("ev"),
		DLQStream:        testenv.Unique("DLQ"),
		DLQSubjectPrefix: testenv.Unique("dlq"),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{h.names.EventsStream, h.names.DLQStream} {
			if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	})

	_, h.signer, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.kid = auth.KeyID(h.signer.Public().(ed25519.PublicKey))
	pemBytes, err := token.MarshalPrivateKeyPEM(h.signer)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	h.cfg = userservice.Config{
		MongoURI:        env.MongoURI,
		Database:        h.db.Name(),
		NATSURL:         env.NATSURL,
		RedisURL:        env.RedisURL,
		RedisPrefix:     testenv.Unique("us") + ":",
		Events:          h.names,
		ServiceToken:    "test-service-token",
		AdminUsers:      []string{"root"},
		SigningKeyFiles: []string{keyFile},
		Clock:           h.clock.Now,
	}
	cheapHashing(&h.cfg)
	for _, o := range opts {
		o(&h.cfg)
	}
	rdb := env.Redis(t)
	t.Cleanup(func() {
		// Registered before start's cleanups, so it runs after the
		// service has stopped writing.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, h.cfg.RedisPrefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete Redis keys: %v", err)
		}
	})
	h.start(t)
	return h
}

// start runs the service with h.cfg until the test ends.
func (h *harness) start(t testing.TB) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := h.cfg
	cfg.GRPCListener, cfg.HTTPListener = lis, hlis
	h.httpAddr = hlis.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := userservice.New(ctx, cfg)
	if err != nil {
		_ = lis.Close()
		_ = hlis.Close()
		t.Fatalf("userservice.New: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context was canceled")
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	h.client = userv1.NewUserServiceClient(conn)

	// The gateway's REST mux, built the way gateway/internal/rest does.
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
	}))
	if err := userv1.RegisterUserServiceHandlerClient(context.Background(), mux, h.client); err != nil {
		t.Fatal(err)
	}
	h.rest = httptest.NewServer(mux)
	t.Cleanup(h.rest.Close)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func bearer(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// register signs a user up over gRPC.
func (h *harness) register(t testing.TB, username string) *userv1.RegisterResponse {
	t.Helper()
	resp, err := h.client.Register(ctxT(t), &userv1.RegisterRequest{
		Username: username, Email: username + "@example.com", Password: "password-" + username, DisplayName: "User " + username,
	})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	return resp
}

// do sends a REST request and returns the status and the decoded body.
func (h *harness) do(t testing.TB, method, path, tok string, body any) (int, map[string]any, string) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewReader([]byte(b))
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, h.rest.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := h.rest.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out, string(raw)
}

// testenvRedisKeys lists the Redis keys under prefix.
func testenvRedisKeys(t testing.TB, prefix string) ([]string, error) {
	t.Helper()
	return testenv.New(t).Redis(t).Keys(ctxT(t), prefix+"*").Result()
}
