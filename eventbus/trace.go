package eventbus

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
)

// W3C Trace Context header names, lower case as the spec writes them. NATS
// headers are case-sensitive, so both sides must agree on the spelling.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// The trace context is carried as plain strings rather than OpenTelemetry
// types so the library does not depend on a tracing SDK. When the platform
// adopts OpenTelemetry, its propagator plugs in at InjectTrace/ExtractTrace:
// the header names and formats are the W3C ones it uses.
type traceKey struct{}

type traceContext struct {
	parent string
	state  string
}

// validTraceParent checks the W3C traceparent format:
// version(2 hex)-traceid(32 hex)-parentid(16 hex)-flags(2 hex), lower case.
// An all-zero trace or parent id is invalid per the spec.
func validTraceParent(tp string) bool {
	parts := strings.Split(tp, "-")
	if len(parts) != 4 {
		return false
	}
	for i, n := range []int{2, 32, 16, 2} {
		p := parts[i]
		if len(p) != n {
			return false
		}
		for _, r := range p {
			if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
				return false
			}
		}
	}
	zero := func(s string) bool { return strings.Trim(s, "0") == "" }
	return !zero(parts[1]) && !zero(parts[2]) && parts[0] != "ff"
}

// WithTraceParent returns a context carrying a W3C traceparent (and,
// optionally, tracestate). Publishes made with the context carry them in NATS
// headers. An invalid traceparent is ignored.
func WithTraceParent(ctx context.Context, traceparent string, tracestate ...string) context.Context {
	if !validTraceParent(traceparent) {
		return ctx
	}
	tc := traceContext{parent: traceparent}
	if len(tracestate) > 0 {
		tc.state = tracestate[0]
	}
	return context.WithValue(ctx, traceKey{}, tc)
}

// TraceParent returns the traceparent carried by ctx, or "".
func TraceParent(ctx context.Context) string {
	tc, _ := ctx.Value(traceKey{}).(traceContext)
	return tc.parent
}

// TraceState returns the tracestate carried by ctx, or "".
func TraceState(ctx context.Context) string {
	tc, _ := ctx.Value(traceKey{}).(traceContext)
	return tc.state
}

// InjectTrace copies the trace context of ctx, if any, into h.
func InjectTrace(ctx context.Context, h nats.Header) {
	tc, ok := ctx.Value(traceKey{}).(traceContext)
	if !ok || h == nil {
		return
	}
	h.Set(HeaderTraceParent, tc.parent)
	if tc.state != "" {
		h.Set(HeaderTraceState, tc.state)
	}
}

// ExtractTrace returns ctx carrying the trace context found in h, if any.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	tp := h.Get(HeaderTraceParent)
	if tp == "" {
		return ctx
	}
	return WithTraceParent(ctx, tp, h.Get(HeaderTraceState))
}
