package hub

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

var (
	// ErrConfig: New was given an incomplete or invalid Config.
	ErrConfig = errors.New("hub: invalid config")
	// ErrRunning: Run was called twice.
	ErrRunning = errors.New("hub: already running")
	// ErrClosed: the connection closed while an operation waited on it.
	ErrClosed = errors.New("hub: connection closed")
)

// errorCode maps an error of a service call to the protocol's error code
// and the message shown to the client. Internal errors get a generic
// message: their detail is for the log, not the client.
func errorCode(err error) (code, msg string) {
	if errors.Is(err, context.DeadlineExceeded) {
		return protocol.CodeInternal, "the service did not answer in time"
	}
	st, ok := status.FromError(err)
	if !ok {
		return protocol.CodeInternal, "internal error"
	}
	switch st.Code() {
	case codes.Unauthenticated:
		return protocol.CodeUnauthenticated, st.Message()
	case codes.PermissionDenied:
		return protocol.CodeForbidden, st.Message()
	case codes.NotFound:
		return protocol.CodeNotFound, st.Message()
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return protocol.CodeInvalidArgument, st.Message()
	case codes.ResourceExhausted:
		return protocol.CodeRateLimited, st.Message()
	default:
		return protocol.CodeInternal, "internal error"
	}
}
