package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/parleyhq/parley/platform/embedded"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/rpc"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func get(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	return rec.Code, rep
}

func TestReadyAndLive(t *testing.T) {
	errDown := errors.New("down")
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name       string
		checks     map[string]health.Check
		draining   bool
		wantCode   int
		wantStatus string
		wantChecks map[string]string // substrings
	}{
		{name: "no checks", wantCode: 200, wantStatus: "ok", wantChecks: map[string]string{}},
		{
			name:     "all ok",
			checks:   map[string]health.Check{"a": func(context.Context) error { return nil }, "b": func(context.Context) error { return nil }},
			wantCode: 200, wantStatus: "ok", wantChecks: map[string]string{"a": "ok", "b": "ok"},
		},
		{
			name:     "one failing",
			checks:   map[string]health.Check{"a": func(context.Context) error { return nil }, "b": func(context.Context) error { return errDown }},
			wantCode: 503, wantStatus: "unavailable", wantChecks: map[string]string{"a": "ok", "b": "down"},
		},
		{
			name:     "panicking check",
			checks:   map[string]health.Check{"p": func(context.Context) error { panic("oops") }},
			wantCode: 503, wantStatus: "unavailable", wantChecks: map[string]string{"p": "panicked: oops"},
		},
		{
			name: "check ignoring its deadline",
			checks: map[string]health.Check{"slow": func(ctx context.Context) error {
				<-release // only when the test ends, long after the deadline
				return nil
			}},
			wantCode: 503, wantStatus: "unavailable", wantChecks: map[string]string{"slow": "no answer within"},
		},
		{
			name:     "draining",
			checks:   map[string]health.Check{"a": func(context.Context) error { return nil }},
			draining: true, wantCode: 503, wantStatus: "draining", wantChecks: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := health.New(nil)
			for n, c := range tt.checks {
				h.Add(n, c)
			}
			if tt.draining {
				h.SetDraining()
			}
			code, rep := get(t, h.Ready())
			if code != tt.wantCode || rep.Status != tt.wantStatus {
				t.Fatalf("readyz = %d %+v, want %d %s", code, rep, tt.wantCode, tt.wantStatus)
			}
			if len(rep.Checks) != len(tt.wantChecks) {
				t.Fatalf("checks = %v, want %v", rep.Checks, tt.wantChecks)
			}
			for n, want := range tt.wantChecks {
				if !strings.Contains(rep.Checks[n], want) {
					t.Errorf("check %s = %q, want %q", n, rep.Checks[n], want)
				}
			}
			// Liveness ignores the checks.
			if code, rep := get(t, h.Live()); code != 200 || rep.Status != "ok" {
				t.Errorf("healthz = %d %+v, want 200 ok", code, rep)
			}
		})
	}
}

// backends are embedded servers this test may stop.
type backends struct {
	mongo *embedded.Mongo
	nats  *embedded.NATS
	redis *embedded.Redis
}

func startBackends(t *testing.T) (*backends, *health.Health) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	b := &backends{}
	var err error
	if b.mongo, err = embedded.StartMongo(ctx, embedded.MongoConfig{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.mongo.Close(context.Background()); err != nil {
			t.Errorf("close mongo: %v", err)
		}
	})
	if b.nats, err = embedded.StartNATS(embedded.NATSConfig{Port: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.nats.Close)
	if b.redis, err = embedded.StartRedis(embedded.RedisConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.redis.Close)

	mc, err := mongo.Connect(options.Client().ApplyURI(b.mongo.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Disconnect before FerretDB closes (cleanups run in reverse), so
		// its close does not wait for us.
		if err := mc.Disconnect(context.Background()); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	nc, err := nats.Connect(b.nats.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	opts, err := redis.ParseURL(b.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	t.Cleanup(func() { _ = rc.Close() })

	h := health.New(nil)
	h.Add("mongodb", health.MongoCheck(mc))
	h.Add("nats", health.NATSCheck(nc))
	h.Add("redis", health.RedisCheck(rc))
	return b, h
}

func TestStoppedBackendMakesReadyFail(t *testing.T) {
	tests := []struct {
		name    string
		failing string
		stop    func(*backends)
	}{
		{"mongodb", "mongodb", func(b *backends) { _ = b.mongo.Close(context.Background()) }},
		{"nats", "nats", func(b *backends) { b.nats.Close() }},
		{"redis", "redis", func(b *backends) { b.redis.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, h := startBackends(t)
			code, rep := get(t, h.Ready())
			want := map[string]string{"mongodb": "ok", "nats": "ok", "redis": "ok"}
			if code != 200 || rep.Status != "ok" || len(rep.Checks) != 3 {
				t.Fatalf("readyz = %d %+v, want 200 with %v", code, rep, want)
			}
			tt.stop(b)
			testenv.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
				code, rep := get(t, h.Ready())
				if code != http.StatusServiceUnavailable || rep.Checks[tt.failing] == "ok" {
					return errors.New("still ready")
				}
				for n, v := range rep.Checks {
					if n != tt.failing && v != "ok" {
						t.Fatalf("check %s failed too: %s", n, v)
					}
				}
				return nil
			})
		})
	}
}

func TestGRPCHealthFollowsChecks(t *testing.T) {
	b, h := startBackends(t)
	h.SetInterval(20 * time.Millisecond)

	s, err := rpc.NewServer(rpc.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h.RegisterGRPC(s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	serveDone, runDone := make(chan error, 1), make(chan struct{})
	go func() { serveDone <- rpc.Serve(ctx, s, lis) }()
	go func() { h.Run(ctx); close(runDone) }()
	t.Cleanup(func() {
		cancel()
		<-runDone
		if err := <-serveDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := healthpb.NewHealthClient(conn)

	callCtx, callCancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer callCancel()
	resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING", resp, err)
	}
	watch, err := client.Watch(callCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			r, err := watch.Recv()
			if err != nil {
				t.Fatalf("Watch waiting for %v: %v", want, err)
			}
			if r.GetStatus() == want {
				return
			}
		}
	}
	waitFor(healthpb.HealthCheckResponse_SERVING)

	// Run notices the outage by itself.
	b.redis.Close()
	waitFor(healthpb.HealthCheckResponse_NOT_SERVING)
	resp, err = client.Check(callCtx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Check = %v, %v; want NOT_SERVING", resp, err)
	}
}

func TestDrainingFlipsGRPC(t *testing.T) {
	h := health.New(nil)
	s := grpc.NewServer()
	h.RegisterGRPC(s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.Serve(ctx, s, lis) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := healthpb.NewHealthClient(conn)
	callCtx, callCancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer callCancel()

	for _, tc := range []struct {
		drain bool
		want  healthpb.HealthCheckResponse_ServingStatus
	}{
		{false, healthpb.HealthCheckResponse_SERVING},
		{true, healthpb.HealthCheckResponse_NOT_SERVING},
	} {
		if tc.drain {
			h.SetDraining()
		}
		resp, err := client.Check(callCtx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != tc.want {
			t.Fatalf("draining=%v: Check = %v, %v; want %v", tc.drain, resp, err, tc.want)
		}
	}
}
