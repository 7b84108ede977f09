package rpc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/platform/logging"
	"github.com/parleyhq/parley/platform/rpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type userKey struct{}

// testService records what its handlers saw in their contexts. A payload
// body of "panic" makes the handler panic.
type testService struct {
	testpb.UnimplementedTestServiceServer
	healthpb.UnimplementedHealthServer

	mu        sync.Mutex
	requestID string
}

func (s *testService) seen(ctx context.Context) (user, requestID string) {
	user, _ = ctx.Value(userKey{}).(string)
	requestID = logging.RequestID(ctx)
	s.mu.Lock()
	s.requestID = requestID
	s.mu.Unlock()
	return user, requestID
}

func (s *testService) lastRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requestID
}

func (s *testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	user, id := s.seen(ctx)
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("boom: secret internals")
	}
	return &testpb.SimpleResponse{Username: user, OauthScope: id}, nil
}

func (s *testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	user, id := s.seen(stream.Context())
	if string(req.GetPayload().GetBody()) == "panic" {
		panic("boom: secret internals")
	}
	if string(req.GetPayload().GetBody()) == "hang" {
		// Headers out first, so the client knows the call is in flight.
		if err := stream.SendHeader(nil); err != nil {
			return err
		}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(user + "|" + id)}})
}

func (s *testService) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// auth accepts "bearer <user>" and puts the user into the context.
func auth(ctx context.Context, _ string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	switch {
	case len(v) == 0:
		return nil, status.Error(codes.Unauthenticated, "missing token")
	case v[0] == "plain-error":
		return nil, errors.New("db password is hunter2")
	case strings.HasPrefix(v[0], "bearer "):
		return context.WithValue(ctx, userKey{}, strings.TrimPrefix(v[0], "bearer ")), nil
	}
	return nil, status.Error(codes.Unauthenticated, "bad token")
}

type harness struct {
	svc    *testService
	logs   *syncBuffer
	conn   *grpc.ClientConn
	test   testpb.TestServiceClient
	health healthpb.HealthClient
}

func start(t *testing.T, cfg rpc.ServerConfig) *harness {
	t.Helper()
	h := &harness{svc: &testService{}, logs: &syncBuffer{}}
	if cfg.Logger == nil {
		logger, err := logging.New(h.logs, "debug")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Logger = logger
	}
	s, err := rpc.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	testpb.RegisterTestServiceServer(s, h.svc)
	healthpb.RegisterHealthServer(s, h.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.Serve(ctx, s, lis) }()
	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close conn: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	h.conn = conn
	h.test = testpb.NewTestServiceClient(conn)
	h.health = healthpb.NewHealthClient(conn)
	return h
}

func callCtx(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", token)
	}
	return ctx
}

func payload(s string) *testpb.Payload { return &testpb.Payload{Body: []byte(s)} }

// streamCall runs the server-streaming method and returns its first
// message's body and the response header.
func streamCall(ctx context.Context, c testpb.TestServiceClient, body string) (string, metadata.MD, error) {
	st, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{Payload: payload(body)})
	if err != nil {
		return "", nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		return "", nil, err
	}
	// grpc.Header only fills in when a stream ends; Header() is the
	// streaming way.
	header, err := st.Header()
	if err != nil {
		return "", nil, err
	}
	return string(resp.GetPayload().GetBody()), header, nil
}

func TestPanicBecomesInternal(t *testing.T) {
	h := start(t, rpc.ServerConfig{})
	tests := []struct {
		name string
		call func(ctx context.Context, body string) error
	}{
		{"unary", func(ctx context.Context, body string) error {
			_, err := h.test.UnaryCall(ctx, &testpb.SimpleRequest{Payload: payload(body)})
			return err
		}},
		{"stream", func(ctx context.Context, body string) error {
			_, _, err := streamCall(ctx, h.test, body)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(callCtx(t, ""), "panic")
			if status.Code(err) != codes.Internal {
				t.Fatalf("code = %v (%v), want Internal", status.Code(err), err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("panic value leaked to the client: %v", err)
			}
			// The server is still serving.
			if err := tt.call(callCtx(t, ""), "ok"); err != nil {
				t.Fatalf("call after panic: %v", err)
			}
		})
	}
	logs := h.logs.String()
	if !strings.Contains(logs, `"msg":"rpc panic"`) || !strings.Contains(logs, "secret internals") || !strings.Contains(logs, "goroutine") {
		t.Errorf("panic with stack not logged: %s", logs)
	}
}

func TestAuth(t *testing.T) {
	h := start(t, rpc.ServerConfig{Auth: auth})
	tests := []struct {
		name     string
		token    string
		wantCode codes.Code
		wantMsg  string // substring of the status message
		wantUser string
	}{
		{name: "no token", wantCode: codes.Unauthenticated, wantMsg: "missing token"},
		{name: "bad token", token: "xyz", wantCode: codes.Unauthenticated, wantMsg: "bad token"},
		{name: "non-status error is hidden", token: "plain-error", wantCode: codes.Unauthenticated, wantMsg: "unauthenticated"},
		{name: "hook context reaches handler", token: "bearer alice", wantCode: codes.OK, wantUser: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/unary", func(t *testing.T) {
			resp, err := h.test.UnaryCall(callCtx(t, tt.token), &testpb.SimpleRequest{})
			st := status.Convert(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(st.Message(), "hunter2") {
				t.Errorf("hook error text leaked: %q", st.Message())
			}
			if err == nil && resp.GetUsername() != tt.wantUser {
				t.Errorf("handler saw user %q, want %q", resp.GetUsername(), tt.wantUser)
			}
		})
		t.Run(tt.name+"/stream", func(t *testing.T) {
			body, _, err := streamCall(callCtx(t, tt.token), h.test, "")
			st := status.Convert(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("status = %v %q, want %v containing %q", st.Code(), st.Message(), tt.wantCode, tt.wantMsg)
			}
			if err == nil && !strings.HasPrefix(body, tt.wantUser+"|") {
				t.Errorf("handler saw %q, want user %q", body, tt.wantUser)
			}
		})
	}
	t.Run("health needs no credentials", func(t *testing.T) {
		resp, err := h.health.Check(callCtx(t, ""), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("Check = %v, %v; want SERVING", resp, err)
		}
	})
}

func TestRequestID(t *testing.T) {
	h := start(t, rpc.ServerConfig{})
	generated := regexp.MustCompile(`^[0-9a-f]{32}$`)
	tests := []struct {
		name   string
		ctx    func(context.Context) context.Context
		wantID string // "" = a generated one
	}{
		{name: "from context", ctx: func(ctx context.Context) context.Context { return logging.WithRequestID(ctx, "req-123") }, wantID: "req-123"},
		{name: "explicit metadata wins", ctx: func(ctx context.Context) context.Context {
			ctx = metadata.AppendToOutgoingContext(ctx, rpc.RequestIDHeader, "md-1")
			return logging.WithRequestID(ctx, "ctx-1")
		}, wantID: "md-1"},
		{name: "none", ctx: func(ctx context.Context) context.Context { return ctx }},
		{name: "unsafe id replaced", ctx: func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, rpc.RequestIDHeader, `x"} {"evil`)
		}},
	}
	for _, tt := range tests {
		check := func(t *testing.T, serverSaw string, header metadata.MD) {
			t.Helper()
			if tt.wantID != "" && serverSaw != tt.wantID {
				t.Errorf("server saw request id %q, want %q", serverSaw, tt.wantID)
			}
			if tt.wantID == "" && !generated.MatchString(serverSaw) {
				t.Errorf("server saw request id %q, want a generated one", serverSaw)
			}
			if got := header.Get(rpc.RequestIDHeader); len(got) != 1 || got[0] != serverSaw {
				t.Errorf("response header %s = %v, want [%s]", rpc.RequestIDHeader, got, serverSaw)
			}
		}
		t.Run(tt.name+"/unary", func(t *testing.T) {
			var header metadata.MD
			resp, err := h.test.UnaryCall(tt.ctx(callCtx(t, "")), &testpb.SimpleRequest{}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			check(t, resp.GetOauthScope(), header)
		})
		t.Run(tt.name+"/stream", func(t *testing.T) {
			_, header, err := streamCall(tt.ctx(callCtx(t, "")), h.test, "")
			if err != nil {
				t.Fatal(err)
			}
			check(t, h.svc.lastRequestID(), header)
		})
	}
	// The request id reaches the server's call log.
	if !strings.Contains(h.logs.String(), `"request_id":"req-123"`) {
		t.Errorf("request id not in logs: %s", h.logs.String())
	}
}

func TestCallLogging(t *testing.T) {
	h := start(t, rpc.ServerConfig{Auth: auth})
	if _, err := h.test.UnaryCall(callCtx(t, "bearer bob"), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.test.UnaryCall(callCtx(t, ""), &testpb.SimpleRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v, want Unauthenticated", err)
	}
	logs := h.logs.String()
	for _, want := range []string{
		`"level":"DEBUG","msg":"rpc","method":"/grpc.testing.TestService/UnaryCall","code":"OK","duration":`,
		`"level":"WARN","msg":"rpc","method":"/grpc.testing.TestService/UnaryCall","code":"Unauthenticated"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

func TestServeStopsGracefullyThenHard(t *testing.T) {
	s, err := rpc.NewServer(rpc.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	svc := &testService{}
	testpb.RegisterTestServiceServer(s, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.ServeWithGrace(ctx, s, lis, 200*time.Millisecond) }()

	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	// A stream that never ends on its own holds GracefulStop up.
	st, err := testpb.NewTestServiceClient(conn).StreamingOutputCall(callCtx(t, ""), &testpb.StreamingOutputCallRequest{Payload: payload("hang")})
	if err != nil {
		t.Fatal(err)
	}
	// Headers arrive once the handler runs, so the stream is in flight.
	if _, err := st.Header(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
		t.Fatalf("hung stream ended with %v, want Unavailable or Canceled", err)
	}
}

func TestServeReportsListenerFailure(t *testing.T) {
	s, err := rpc.NewServer(rpc.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rpc.Serve(t.Context(), s, lis); err == nil {
		t.Fatal("Serve on a closed listener = nil, want an error")
	}
}

func TestDialEmptyTarget(t *testing.T) {
	if _, err := rpc.Dial("", rpc.ClientConfig{Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, rpc.ErrNoTarget) {
		t.Fatalf("err = %v, want ErrNoTarget", err)
	}
}
