package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	middleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	pvinterceptor "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/platform/logging"
)

// RequestIDHeader is the metadata key carrying the request id, in both
// directions.
const RequestIDHeader = "x-request-id"

// ShutdownGrace bounds how long Serve waits for running calls after its
// context is done before it cuts them off.
const ShutdownGrace = 10 * time.Second

// healthServicePrefix names the standard health service, which Kubernetes
// and load balancers call without credentials.
const healthServicePrefix = "/grpc.health.v1.Health/"

// AuthFunc authenticates a call. It returns the context the handler sees
// (e.g. carrying the user) or an error, which should be a status error
// such as codes.Unauthenticated; any other error is sent as
// Unauthenticated without its text.
type AuthFunc func(ctx context.Context, fullMethod string) (context.Context, error)

// ServerConfig configures NewServer. The zero value is a plaintext server
// without authentication that logs nowhere.
type ServerConfig struct {
	Logger  *slog.Logger
	TLS     *tls.Config // nil = plaintext
	Auth    AuthFunc    // nil = no authentication
	Options []grpc.ServerOption
}

// NewServer returns a gRPC server with Parley's interceptor chains (see the
// package documentation) and keepalive policy. Register services on it and
// run it with Serve.
func NewServer(cfg ServerConfig) (*grpc.Server, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("rpc: create validator: %w", err)
	}
	rec := recovery.WithRecoveryHandlerContext(recoverPanic(logger))
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			unaryRequestID,
			recovery.UnaryServerInterceptor(rec),
			unaryLogging(logger),
			unaryAuth(cfg.Auth, logger),
			unaryBadRequest,
			pvinterceptor.UnaryServerInterceptor(validator),
		),
		grpc.ChainStreamInterceptor(
			streamRequestID,
			recovery.StreamServerInterceptor(rec),
			streamLogging(logger),
			streamAuth(cfg.Auth, logger),
			streamBadRequest,
			pvinterceptor.StreamServerInterceptor(validator),
		),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			// Clients (Dial) ping every 30 s; allow some slack, and pings
			// on idle connections so they survive between bursts.
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
			// Recycling connections makes clients re-resolve DNS, so new
			// replicas behind a headless Service get traffic. Without a
			// grace period running streams are left to finish.
			MaxConnectionAge: 5 * time.Minute,
		}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	opts = append(opts, cfg.Options...)
	return grpc.NewServer(opts...), nil
}

// Serve serves s on lis until ctx is done, then stops gracefully, giving
// running calls ShutdownGrace to finish. It returns nil after a shutdown
// caused by ctx, or the error that made serving fail.
func Serve(ctx context.Context, s *grpc.Server, lis net.Listener) error {
	return ServeWithGrace(ctx, s, lis, ShutdownGrace)
}

// ServeWithGrace is Serve with a chosen grace period.
func ServeWithGrace(ctx context.Context, s *grpc.Server, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(lis) }()
	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("rpc: serve %s: %w", lis.Addr(), err)
		}
		return nil
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		s.GracefulStop()
		close(stopped)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		s.Stop() // GracefulStop returns once Stop has closed everything
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("rpc: serve %s: %w", lis.Addr(), err)
	}
	return nil
}

// requestID returns the caller's request id when it looks like one, or a
// new id: the id ends up in logs, so arbitrary client bytes are not
// trusted.
func requestID(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if ids := md.Get(RequestIDHeader); len(ids) > 0 && validRequestID(ids[0]) {
		return ids[0]
	}
	return logging.NewRequestID()
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)
		if !ok {
			return false
		}
	}
	return true
}

func unaryRequestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id := requestID(ctx)
	// SetHeader only fails after headers were sent, which cannot have
	// happened before the handler ran.
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	return handler(logging.WithRequestID(ctx, id), req)
}

func streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	id := requestID(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(RequestIDHeader, id))
	w := middleware.WrapServerStream(ss)
	w.WrappedContext = logging.WithRequestID(ss.Context(), id)
	return handler(srv, w)
}

// recoverPanic logs a handler panic with its stack and hides it from the
// client.
func recoverPanic(logger *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, p any) error {
		method, _ := grpc.Method(ctx)
		logger.ErrorContext(ctx, "rpc panic",
			slog.String("method", method),
			slog.String("code", codes.Internal.String()),
			slog.Any("panic", p),
			slog.String("stack", string(debug.Stack())))
		return status.Error(codes.Internal, "internal error")
	}
}

// SlowCall is the duration from which a successful call is logged at
// INFO; quicker ones are logged at DEBUG.
const SlowCall = time.Second

// logLevel says how loud a finished call is: server faults are errors,
// caller faults warnings, slow successes info. Other successes are debug:
// a busy server makes thousands a second (every message sent is a call),
// and writing each line costs more than the call's other bookkeeping.
// Metrics count them; --log-level debug shows them.
func logLevel(method string, code codes.Code, took time.Duration) slog.Level {
	switch code {
	case codes.OK:
		if took >= SlowCall && !strings.HasPrefix(method, healthServicePrefix) {
			return slog.LevelInfo
		}
		return slog.LevelDebug
	case codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unauthenticated, codes.ResourceExhausted,
		codes.FailedPrecondition, codes.Aborted, codes.OutOfRange:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	took := time.Since(start)
	level := logLevel(method, code, took)
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", took),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	logger.LogAttrs(ctx, level, "rpc", attrs...)
}

func unaryLogging(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, info.FullMethod, start, err)
		return resp, err
	}
}

func streamLogging(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, info.FullMethod, start, err)
		return err
	}
}

// authenticate runs the hook, making sure what reaches the client is a
// status error.
func authenticate(ctx context.Context, auth AuthFunc, logger *slog.Logger, method string) (context.Context, error) {
	if auth == nil || strings.HasPrefix(method, healthServicePrefix) {
		return ctx, nil
	}
	newCtx, err := auth(ctx, method)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			logger.WarnContext(ctx, "auth hook returned a non-status error", slog.String("method", method), slog.Any("error", err))
			return nil, status.Error(codes.Unauthenticated, "unauthenticated")
		}
		return nil, err
	}
	if newCtx == nil {
		newCtx = ctx
	}
	return newCtx, nil
}

func unaryAuth(auth AuthFunc, logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := authenticate(ctx, auth, logger, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func streamAuth(auth AuthFunc, logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := authenticate(ss.Context(), auth, logger, info.FullMethod)
		if err != nil {
			return err
		}
		w := middleware.WrapServerStream(ss)
		w.WrappedContext = ctx
		return handler(srv, w)
	}
}
