// Package httpserver runs Parley's HTTP servers (REST, WebSocket, probes,
// metrics) with timeouts that protect against slow clients without
// cutting off long-lived WebSocket and streaming responses, and with a
// bounded graceful shutdown.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

const (
	// ShutdownGrace bounds how long Serve waits for in-flight requests
	// after its context is done.
	ShutdownGrace = 10 * time.Second

	// ReadHeaderTimeout stops clients that open connections and send
	// headers slowly (Slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds request headers.
	MaxHeaderBytes = 1 << 20
)

// New returns a server for handler with Parley's timeouts. It sets no
// ReadTimeout or WriteTimeout: both count from the start of the request
// and would kill WebSocket connections and streamed responses; handlers
// that read bodies bound them with http.MaxBytesReader and
// http.ResponseController deadlines instead.
func New(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves srv on lis until ctx is done, then shuts down gracefully
// within ShutdownGrace. It returns nil after a shutdown caused by ctx, or
// the error that made serving fail. Hijacked connections (WebSockets) are
// not waited for: close them with srv.RegisterOnShutdown.
func Serve(ctx context.Context, srv *http.Server, lis net.Listener) error {
	return ServeWithGrace(ctx, srv, lis, ShutdownGrace)
}

// ServeWithGrace is Serve with a chosen grace period.
func ServeWithGrace(ctx context.Context, srv *http.Server, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("httpserver: serve %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	// A fresh context: ctx is already done, and the grace period is the
	// point of shutting down gracefully.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	var shutdownErr error
	if err := srv.Shutdown(sctx); err != nil {
		// Grace expired with requests still running: cut them off.
		shutdownErr = fmt.Errorf("httpserver: shutdown %s: %w", lis.Addr(), err)
		if cerr := srv.Close(); cerr != nil {
			shutdownErr = errors.Join(shutdownErr, cerr)
		}
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(shutdownErr, fmt.Errorf("httpserver: serve %s: %w", lis.Addr(), err))
	}
	return shutdownErr
}
