// Package grpcapi serves EventBusService: thin handlers that check the
// caller is an administrator, convert between protos and the audit domain,
// and map domain errors to gRPC status codes (in toStatus, the one place
// that does).
package grpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventbusv1 "github.com/parleyhq/parley/apis/gen/go/parley/eventbus/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/eventbus/internal/audit"
)

// AdminCheck returns nil when the caller may administer the event bus, or
// a status error (Unauthenticated, PermissionDenied).
type AdminCheck func(ctx context.Context) error

// Server implements EventBusService.
type Server struct {
	eventbusv1.UnimplementedEventBusServiceServer
	log          *audit.Log
	requireAdmin AdminCheck
	logger       *slog.Logger
}

var _ eventbusv1.EventBusServiceServer = (*Server)(nil)

// New returns the handlers. A nil requireAdmin lets every caller in.
func New(log *audit.Log, requireAdmin AdminCheck, logger *slog.Logger) *Server {
	if requireAdmin == nil {
		requireAdmin = func(context.Context) error { return nil }
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{log: log, requireAdmin: requireAdmin, logger: logger}
}

// Register adds the service to s.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	eventbusv1.RegisterEventBusServiceServer(g, s)
}

// ListEvents searches the audit log.
func (s *Server) ListEvents(ctx context.Context, req *eventbusv1.ListEventsRequest) (*eventbusv1.ListEventsResponse, error) {
	if err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	f := audit.Filter{Type: req.GetType(), Source: req.GetSource(), Subject: req.GetSubjectId()}
	if req.StartTime != nil {
		f.From = req.GetStartTime().AsTime()
	}
	if req.EndTime != nil {
		f.To = req.GetEndTime().AsTime()
	}
	page, err := s.log.ListEvents(ctx, f, req.GetPageToken(), int(req.GetPageSize()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &eventbusv1.ListEventsResponse{NextPageToken: page.NextPageToken}
	for _, ev := range page.Events {
		resp.Events = append(resp.Events, toProtoEvent(ev))
	}
	return resp, nil
}

// GetEvent returns one event.
func (s *Server) GetEvent(ctx context.Context, req *eventbusv1.GetEventRequest) (*eventbusv1.GetEventResponse, error) {
	if err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	ev, err := s.log.GetEvent(ctx, req.GetEventId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &eventbusv1.GetEventResponse{Event: toProtoEvent(ev)}, nil
}

// ListDeadLetters lists dead letters, newest first.
func (s *Server) ListDeadLetters(ctx context.Context, req *eventbusv1.ListDeadLettersRequest) (*eventbusv1.ListDeadLettersResponse, error) {
	if err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	page, err := s.log.ListDeadLetters(ctx, req.GetPageToken(), int(req.GetPageSize()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &eventbusv1.ListDeadLettersResponse{NextPageToken: page.NextPageToken}
	for _, dl := range page.DeadLetters {
		resp.DeadLetters = append(resp.DeadLetters, toProtoDeadLetter(dl))
	}
	return resp, nil
}

// RetryDeadLetter republishes a dead letter's event.
func (s *Server) RetryDeadLetter(ctx context.Context, req *eventbusv1.RetryDeadLetterRequest) (*eventbusv1.RetryDeadLetterResponse, error) {
	if err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.log.RetryDeadLetter(ctx, req.GetDeadLetterId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &eventbusv1.RetryDeadLetterResponse{}, nil
}

// DiscardDeadLetter drops a dead letter.
func (s *Server) DiscardDeadLetter(ctx context.Context, req *eventbusv1.DiscardDeadLetterRequest) (*eventbusv1.DiscardDeadLetterResponse, error) {
	if err := s.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.log.DiscardDeadLetter(ctx, req.GetDeadLetterId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &eventbusv1.DiscardDeadLetterResponse{}, nil
}

// toStatus maps domain errors to gRPC codes. Unexpected errors are logged
// here, once, and reach the client as a generic Internal/Unavailable.
func (s *Server) toStatus(ctx context.Context, err error) error {
	switch {
	case audit.IsNotFound(err):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, audit.ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, eventbus.ErrPublish):
		s.logger.ErrorContext(ctx, "eventbus api: publish failed", slog.Any("error", err))
		return status.Error(codes.Unavailable, "the event bus is unavailable, try again")
	}
	s.logger.ErrorContext(ctx, "eventbus api: internal error", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error")
}

// toProtoEvent converts an envelope. The proto carries data as a Struct,
// which holds JSON objects only: any other payload (array, string, number)
// is wrapped as {"value": <payload>}; a null payload is left unset.
func toProtoEvent(ev eventbus.Event) *eventbusv1.Event {
	pe := &eventbusv1.Event{
		Id:        ev.ID,
		Type:      ev.Type,
		Source:    ev.Source,
		SubjectId: ev.Subject,
		Version:   int32(ev.Version),
	}
	if !ev.Timestamp.IsZero() {
		pe.Timestamp = timestamppb.New(ev.Timestamp)
	}
	pe.Data = toStruct(ev.Data)
	return pe
}

func toStruct(data json.RawMessage) *structpb.Struct {
	if len(data) == 0 || string(data) == "null" {
		return nil
	}
	var s structpb.Struct
	if err := s.UnmarshalJSON(data); err == nil {
		return &s
	}
	var v structpb.Value
	if err := v.UnmarshalJSON(data); err != nil {
		return nil // not JSON at all: nothing faithful to show
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{"value": &v}}
}

// toProtoDeadLetter converts a dead letter. An undecodable original has no
// event; its raw payload is shown as {"value": "<payload>"} data so an
// administrator can still see what arrived.
func toProtoDeadLetter(dl eventbus.DeadLetter) *eventbusv1.DeadLetter {
	pd := &eventbusv1.DeadLetter{
		Id:             audit.DeadLetterID(dl.Seq),
		StreamSequence: dl.StreamSequence,
		Consumer:       dl.Consumer,
		Deliveries:     int64(dl.Deliveries),
		Reason:         dl.Reason,
	}
	if !dl.FailedAt.IsZero() {
		pd.FailedAt = timestamppb.New(dl.FailedAt)
	}
	if dl.Event.ID != "" {
		pd.Event = toProtoEvent(dl.Event)
	} else if len(dl.Payload) > 0 {
		pd.Event = &eventbusv1.Event{Data: &structpb.Struct{Fields: map[string]*structpb.Value{
			"value": structpb.NewStringValue(strings.ToValidUTF8(string(dl.Payload), "\uFFFD")),
		}}}
	}
	return pd
}
