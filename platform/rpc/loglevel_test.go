package rpc

import (
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

func TestLogLevel(t *testing.T) {
	const call = "/parley.chat.v1.ChatService/SendMessage"
	const probe = "/grpc.health.v1.Health/Check"
	for _, c := range []struct {
		method string
		code   codes.Code
		took   time.Duration
		want   slog.Level
	}{
		{call, codes.OK, time.Millisecond, slog.LevelDebug},
		{call, codes.OK, SlowCall, slog.LevelInfo},
		{probe, codes.OK, 2 * SlowCall, slog.LevelDebug},
		{call, codes.PermissionDenied, time.Millisecond, slog.LevelWarn},
		{call, codes.Internal, time.Millisecond, slog.LevelError},
		{call, codes.Unavailable, time.Millisecond, slog.LevelError},
	} {
		if got := logLevel(c.method, c.code, c.took); got != c.want {
			t.Errorf("logLevel(%s, %s, %s) = %s, want %s", c.method, c.code, c.took, got, c.want)
		}
	}
}
