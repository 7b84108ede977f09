package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/parleyhq/parley/userservice/internal/users"
)

// toStatus maps a domain error to the gRPC status the client sees. It is
// the only place that does: handlers return s.toStatus(ctx, err). Errors
// that are not the client's business (store or bus failures) become a bare
// Internal, logged here with their detail.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	var field *users.FieldError
	var limited *users.RateLimitedError
	switch {
	case errors.As(err, &field):
		st := status.New(codes.InvalidArgument, field.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: field.Field, Description: field.Reason},
		}}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, users.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.As(err, &limited):
		st := status.New(codes.ResourceExhausted, "too many failed login attempts; try again later")
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(limited.RetryAfter)}); derr == nil {
			st = d
		}
		return st.Err()
	case errors.Is(err, users.ErrInvalidCredentials):
		return status.Error(codes.Unauthenticated, "invalid login or password")
	case errors.Is(err, users.ErrInvalidRefreshToken):
		// Reuse is deliberately not told apart: the client must sign in
		// again either way.
		return status.Error(codes.Unauthenticated, "invalid refresh token")
	case errors.Is(err, users.ErrUsernameTaken):
		return status.Error(codes.AlreadyExists, "username is taken")
	case errors.Is(err, users.ErrEmailTaken):
		return status.Error(codes.AlreadyExists, "email address is already registered")
	case errors.Is(err, users.ErrAlreadyExists):
		return status.Error(codes.AlreadyExists, "already exists")
	case errors.Is(err, users.ErrNotFound):
		return status.Error(codes.NotFound, "user not found")
	case errors.Is(err, users.ErrPermissionDenied):
		return permissionDenied("permission denied")
	case errors.Is(err, users.ErrConflict):
		return status.Error(codes.Aborted, "concurrent modification; try again")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.cfg.Logger.ErrorContext(ctx, "userservice: internal error", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

func permissionDenied(msg string) error { return status.Error(codes.PermissionDenied, msg) }
