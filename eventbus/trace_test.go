package eventbus

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestTraceContext(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name       string
		parent     string
		state      []string
		wantParent string
		wantState  string
	}{
		{name: "valid", parent: valid, wantParent: valid},
		{name: "valid with state", parent: valid, state: []string{"congo=t61rcWkgMzE"}, wantParent: valid, wantState: "congo=t61rcWkgMzE"},
		{name: "upper case", parent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"},
		{name: "zero trace id", parent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
		{name: "zero parent id", parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"},
		{name: "version ff", parent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{name: "short", parent: "00-4bf92f-00f067aa0ba902b7-01"},
		{name: "garbage", parent: "hello"},
		{name: "empty", parent: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := WithTraceParent(context.Background(), tt.parent, tt.state...)
			if got := TraceParent(ctx); got != tt.wantParent {
				t.Errorf("TraceParent = %q, want %q", got, tt.wantParent)
			}
			if got := TraceState(ctx); got != tt.wantState {
				t.Errorf("TraceState = %q, want %q", got, tt.wantState)
			}

			// Round trip through NATS headers.
			h := nats.Header{}
			InjectTrace(ctx, h)
			if got := h.Get(HeaderTraceParent); got != tt.wantParent {
				t.Errorf("header traceparent = %q, want %q", got, tt.wantParent)
			}
			back := ExtractTrace(context.Background(), h)
			if got := TraceParent(back); got != tt.wantParent {
				t.Errorf("extracted traceparent = %q, want %q", got, tt.wantParent)
			}
			if got := TraceState(back); got != tt.wantState {
				t.Errorf("extracted tracestate = %q, want %q", got, tt.wantState)
			}
		})
	}
}

func TestExtractTraceNoHeaders(t *testing.T) {
	ctx := context.Background()
	if got := ExtractTrace(ctx, nil); got != ctx {
		t.Error("ExtractTrace(nil headers) changed the context")
	}
	InjectTrace(ctx, nil) // must not panic on nil headers
	h := nats.Header{}
	InjectTrace(ctx, h)
	if len(h) != 0 {
		t.Errorf("InjectTrace without a trace wrote headers %v", h)
	}
}
