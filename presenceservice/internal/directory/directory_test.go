package directory

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

func TestFromStatus(t *testing.T) {
	tests := []struct {
		code codes.Code
		want error
	}{
		{codes.NotFound, presence.ErrChannelNotFound},
		{codes.PermissionDenied, presence.ErrForbidden},
		{codes.Unauthenticated, presence.ErrForbidden},
		{codes.Canceled, context.Canceled},
		{codes.DeadlineExceeded, context.DeadlineExceeded},
		{codes.Unavailable, presence.ErrUpstream},
		{codes.Internal, presence.ErrUpstream},
	}
	for _, tt := range tests {
		err := fromStatus("chat service", status.Error(tt.code, "boom"), presence.ErrChannelNotFound)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.code, err, tt.want)
		}
	}
}
