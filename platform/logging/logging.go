// Package logging builds Parley's slog loggers (JSON, one object a line) and
// carries the request id through a context.Context, so every log record
// written while serving a request names it.
package logging

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// New returns a JSON logger writing to w at level ("debug", "info", "warn"
// or "error"; case-insensitive; "" is info) whose records carry the
// request id of the context they are logged with.
func New(w io.Writer, level string) (*slog.Logger, error) {
	l, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})
	return slog.New(NewContextHandler(h, nil)), nil
}

// ParseLevel parses a level name as accepted by New.
func ParseLevel(level string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: %q (want debug, info, warn or error)", ErrUnknownLevel, level)
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a new random request id: 16 bytes, hex-encoded.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b[:])
}

// ContextHandler adds request_id, and trace_id when a TraceIDFunc finds
// one, from the record's context to every record. Like any attribute added
// at Handle time, they land inside the group opened by WithGroup, if any.
type ContextHandler struct {
	next    slog.Handler
	traceID TraceIDFunc
}

// TraceIDFunc extracts a trace id from a context ("" when there is none).
// It lets the observability code plug in OpenTelemetry without this
// package depending on it.
type TraceIDFunc func(context.Context) string

// NewContextHandler wraps next; traceID may be nil.
func NewContextHandler(next slog.Handler, traceID TraceIDFunc) *ContextHandler {
	return &ContextHandler{next: next, traceID: traceID}
}

var _ slog.Handler = (*ContextHandler)(nil)

// Enabled implements slog.Handler.
func (h *ContextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *ContextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if h.traceID != nil {
			if id := h.traceID(ctx); id != "" {
				r.AddAttrs(slog.String("trace_id", id))
			}
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *ContextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &ContextHandler{next: h.next.WithAttrs(as), traceID: h.traceID}
}

// WithGroup implements slog.Handler.
func (h *ContextHandler) WithGroup(name string) slog.Handler {
	return &ContextHandler{next: h.next.WithGroup(name), traceID: h.traceID}
}
