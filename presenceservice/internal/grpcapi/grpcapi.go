// Package grpcapi is the presence service's gRPC surface: thin handlers
// that authenticate the caller, make one call into package presence and
// convert between proto messages and domain values. Domain errors become
// status codes in one place, toStatus.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/platform/auth"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// Server implements presencev1.PresenceServiceServer.
type Server struct {
	presencev1.UnimplementedPresenceServiceServer
	svc      *presence.Service
	stopping context.Context
	log      *slog.Logger
}

var _ presencev1.PresenceServiceServer = (*Server)(nil)

// New returns the handlers over svc. Presence streams end with
// codes.Unavailable when stopping is done (the server is shutting down;
// clients reconnect to another replica).
func New(svc *presence.Service, stopping context.Context, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, stopping: stopping, log: log}
}

// Register adds the presence service to s.
func (s *Server) Register(r grpc.ServiceRegistrar) { presencev1.RegisterPresenceServiceServer(r, s) }

// UpdateStatus implements presencev1.PresenceServiceServer.
func (s *Server) UpdateStatus(ctx context.Context, req *presencev1.UpdateStatusRequest) (*presencev1.UpdateStatusResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.svc.UpdateStatus(ctx, c, req.GetStatus(), req.StatusMessage)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &presencev1.UpdateStatusResponse{Presence: toProtoPresence(p)}, nil
}

// GetUserStatus implements presencev1.PresenceServiceServer.
func (s *Server) GetUserStatus(ctx context.Context, req *presencev1.GetUserStatusRequest) (*presencev1.GetUserStatusResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.svc.GetStatus(ctx, c, req.GetUserId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &presencev1.GetUserStatusResponse{Presence: toProtoPresence(p)}, nil
}

// GetOnlineUsers implements presencev1.PresenceServiceServer.
func (s *Server) GetOnlineUsers(ctx context.Context, req *presencev1.GetOnlineUsersRequest) (*presencev1.GetOnlineUsersResponse, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	scope := presence.Scope{UserIDs: req.GetUserIds(), ChannelID: req.GetChannelId(), Friends: req.GetFriends()}
	page, err := s.svc.OnlineUsers(ctx, c, scope, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &presencev1.GetOnlineUsersResponse{
		Presences:     make([]*presencev1.Presence, 0, len(page.Presences)),
		NextPageToken: page.NextPageToken,
	}
	for _, p := range page.Presences {
		out.Presences = append(out.Presences, toProtoPresence(p))
	}
	return out, nil
}

// SubscribeToPresence implements presencev1.PresenceServiceServer.
func (s *Server) SubscribeToPresence(req *presencev1.SubscribeToPresenceRequest, stream grpc.ServerStreamingServer[presencev1.SubscribeToPresenceResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	err = s.svc.Subscribe(ctx, c, req.GetUserIds(), req.GetFriends(), func(ch presence.Change) error {
		return stream.Send(&presencev1.SubscribeToPresenceResponse{Update: toProtoUpdate(ch)})
	})
	if err != nil && s.stopping.Err() != nil && stream.Context().Err() == nil {
		return status.Error(codes.Unavailable, "server shutting down; subscribe again")
	}
	return s.toStatus(ctx, err)
}

// Connect implements presencev1.PresenceServiceServer (services only).
func (s *Server) Connect(ctx context.Context, req *presencev1.ConnectRequest) (*presencev1.ConnectResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	p, err := s.svc.Connect(ctx, req.GetUserId(), req.GetConnectionId(), req.GetNodeId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &presencev1.ConnectResponse{Presence: toProtoPresence(p)}, nil
}

// Disconnect implements presencev1.PresenceServiceServer (services only).
func (s *Server) Disconnect(ctx context.Context, req *presencev1.DisconnectRequest) (*presencev1.DisconnectResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	p, err := s.svc.Disconnect(ctx, req.GetUserId(), req.GetConnectionId(), req.GetNodeId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &presencev1.DisconnectResponse{Presence: toProtoPresence(p)}, nil
}

// Heartbeat implements presencev1.PresenceServiceServer (services only).
func (s *Server) Heartbeat(ctx context.Context, req *presencev1.HeartbeatRequest) (*presencev1.HeartbeatResponse, error) {
	if _, err := auth.RequireService(ctx); err != nil {
		return nil, err
	}
	unknown, err := s.svc.Heartbeat(ctx, req.GetNodeId(), req.GetConnectionIds())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &presencev1.HeartbeatResponse{UnknownConnectionIds: unknown}, nil
}

// caller returns the authenticated caller as the domain sees it.
func caller(ctx context.Context) (presence.Caller, error) {
	p, err := auth.Require(ctx)
	if err != nil {
		return presence.Caller{}, err
	}
	return presence.Caller{UserID: p.UserID, Token: p.Token, Service: p.IsService()}, nil
}

// toStatus maps an error of package presence (or of a call it made) to a
// gRPC status; nil stays nil. Server faults are logged here, once.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, presence.ErrInvalidArgument),
		errors.Is(err, presence.ErrInvalidStatus),
		errors.Is(err, presence.ErrInvalidPageToken):
		code = codes.InvalidArgument
	case errors.Is(err, presence.ErrForbidden):
		code = codes.PermissionDenied
	case errors.Is(err, presence.ErrChannelNotFound):
		code = codes.NotFound
	case errors.Is(err, presence.ErrScopeUnavailable), errors.Is(err, presence.ErrScopeTooLarge):
		code = codes.FailedPrecondition
	case errors.Is(err, presence.ErrSlowSubscriber):
		code = codes.ResourceExhausted
	case errors.Is(err, presence.ErrUpstream):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		if st, ok := status.FromError(err); ok {
			return st.Err()
		}
	}
	if code == codes.Internal {
		s.log.ErrorContext(ctx, "presence: internal error", slog.Any("error", err))
		return status.Error(code, "internal error")
	}
	return status.Error(code, err.Error())
}
