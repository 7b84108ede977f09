package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

func TestToStatus(t *testing.T) {
	s := New(nil, nil)
	tests := []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("x: %w", chat.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("x: %w", chat.ErrUnsupportedMedia), codes.InvalidArgument},
		{fmt.Errorf("x: %w", chat.ErrNotFound), codes.NotFound},
		{fmt.Errorf("x: %w", chat.ErrPermissionDenied), codes.PermissionDenied},
		{fmt.Errorf("x: %w", chat.ErrFailedPrecondition), codes.FailedPrecondition},
		{fmt.Errorf("x: %w", chat.ErrTooLarge), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", chat.ErrAborted), codes.Aborted},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", status.Error(codes.Unavailable, "gone")), codes.Unavailable},
		{errors.New("mongo: connection refused"), codes.Internal},
	}
	for _, tc := range tests {
		got := s.toStatus(context.Background(), tc.err)
		if status.Code(got) != tc.want {
			t.Errorf("toStatus(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if got := status.Convert(s.toStatus(context.Background(), errors.New("secret dsn"))).Message(); got != "internal error" {
		t.Errorf("an internal error leaks its text: %q", got)
	}
	if s.toStatus(context.Background(), nil) != nil {
		t.Error("nil is not nil")
	}
}
