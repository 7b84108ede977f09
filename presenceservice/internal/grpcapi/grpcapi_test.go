package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

func TestToStatus(t *testing.T) {
	s := New(nil, context.Background(), nil)
	tests := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{fmt.Errorf("x: %w", presence.ErrInvalidArgument), codes.InvalidArgument},
		{presence.ErrInvalidStatus, codes.InvalidArgument},
		{presence.ErrInvalidPageToken, codes.InvalidArgument},
		{presence.ErrForbidden, codes.PermissionDenied},
		{presence.ErrChannelNotFound, codes.NotFound},
		{presence.ErrScopeUnavailable, codes.FailedPrecondition},
		{presence.ErrScopeTooLarge, codes.FailedPrecondition},
		{presence.ErrSlowSubscriber, codes.ResourceExhausted},
		{presence.ErrUpstream, codes.Unavailable},
		{fmt.Errorf("stream: %w", context.Canceled), codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{status.Error(codes.Unauthenticated, "who?"), codes.Unauthenticated},
		{errors.New("redis: connection refused"), codes.Internal},
	}
	for _, tt := range tests {
		got := s.toStatus(context.Background(), tt.err)
		if code := status.Code(got); code != tt.want {
			t.Errorf("toStatus(%v) = %s, want %s", tt.err, code, tt.want)
		}
	}
	// Internal errors do not leak their text.
	if msg := status.Convert(s.toStatus(context.Background(), errors.New("redis at 10.0.0.7: refused"))).Message(); msg != "internal error" {
		t.Errorf("internal error message %q", msg)
	}
}
