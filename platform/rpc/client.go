package rpc

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"

	"github.com/parleyhq/parley/platform/logging"
)

// roundRobin spreads calls over every address the resolver returns. With
// the default dns resolver and a headless Kubernetes Service that is every
// replica; for a single address it changes nothing.
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// ClientConfig configures Dial.
type ClientConfig struct {
	TLS    *tls.Config // nil = insecure (plaintext)
	Logger *slog.Logger
}

// Dial returns a client connection to target ("host:port" or
// "dns:///host:port" resolve through DNS; other grpc-go schemes work too).
// Like grpc.NewClient it does not connect until the first call. The
// request id of each call's context travels in the "x-request-id"
// metadata.
func Dial(target string, cfg ClientConfig) (*grpc.ClientConn, error) {
	if target == "" {
		return nil, ErrNoTarget
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(roundRobin),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			// Within the server's enforcement policy (MinTime 10 s);
			// detects dead peers behind NAT and idle-killing proxies.
			Time:                30 * time.Second,
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithChainUnaryInterceptor(unaryPropagateRequestID),
		grpc.WithChainStreamInterceptor(streamPropagateRequestID),
	)
	if err != nil {
		return nil, fmt.Errorf("rpc: dial %s: %w", target, err)
	}
	if cfg.Logger != nil {
		cfg.Logger.Debug("rpc client created", slog.String("target", target), slog.Bool("tls", cfg.TLS != nil))
	}
	return conn, nil
}

// outgoing adds the context's request id to the outgoing metadata unless
// the caller already set one.
func outgoing(ctx context.Context) context.Context {
	id := logging.RequestID(ctx)
	if id == "" {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(RequestIDHeader)) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, RequestIDHeader, id)
}

func unaryPropagateRequestID(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(outgoing(ctx), method, req, reply, cc, opts...)
}

func streamPropagateRequestID(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(outgoing(ctx), desc, cc, method, opts...)
}
