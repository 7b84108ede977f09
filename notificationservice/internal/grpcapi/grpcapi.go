// Package grpcapi serves parley.notification.v1.NotificationService: thin
// handlers that authorise the caller, convert the request, make one call
// into the domain and convert the answer. Domain errors become gRPC codes
// in one place, toStatus.
package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	notificationv1 "github.com/parleyhq/parley/apis/gen/go/parley/notification/v1"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/auth"
)

// PublicMethods need no credentials: the VAPID public key is public by
// nature, and a browser may fetch it before signing in.
func PublicMethods() []string {
	return []string{notificationv1.NotificationService_GetWebPushConfig_FullMethodName}
}

// Server implements notificationv1.NotificationServiceServer.
type Server struct {
	notificationv1.UnimplementedNotificationServiceServer
	svc *notify.Service
	log *slog.Logger
}

// New returns the handlers over svc.
func New(svc *notify.Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{svc: svc, log: log}
}

// Register registers the service on s.
func Register(s *grpc.Server, srv *Server) { notificationv1.RegisterNotificationServiceServer(s, srv) }

// SendPushNotification queues a push to every device of a user; admins and
// other services only.
func (s *Server) SendPushNotification(ctx context.Context, req *notificationv1.SendPushNotificationRequest) (*notificationv1.SendPushNotificationResponse, error) {
	if _, err := requireAdminOrService(ctx); err != nil {
		return nil, err
	}
	ns, err := s.svc.SendPush(ctx, notify.PushRequest{
		UserID: req.GetUserId(), Title: req.GetTitle(), Body: req.GetBody(), Data: req.GetData(),
		Priority: notify.Priority(req.GetPriority()), Key: req.GetNotificationId(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &notificationv1.SendPushNotificationResponse{}
	for _, n := range ns {
		out.Notifications = append(out.Notifications, toProtoNotification(n))
	}
	return out, nil
}

// SendEmail queues an email to a user or an address; admins and other
// services only.
func (s *Server) SendEmail(ctx context.Context, req *notificationv1.SendEmailRequest) (*notificationv1.SendEmailResponse, error) {
	if _, err := requireAdminOrService(ctx); err != nil {
		return nil, err
	}
	n, err := s.svc.SendEmail(ctx, notify.EmailRequest{
		UserID: req.GetUserId(), To: req.GetTo(), Subject: req.GetSubject(),
		Text: req.GetTextBody(), HTML: req.GetHtmlBody(), Key: req.GetNotificationId(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &notificationv1.SendEmailResponse{Notification: toProtoNotification(n)}, nil
}

// GetNotificationHistory lists the caller's notifications, newest first.
func (s *Server) GetNotificationHistory(ctx context.Context, req *notificationv1.GetNotificationHistoryRequest) (*notificationv1.GetNotificationHistoryResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	ns, next, err := s.svc.History(ctx, p.UserID, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &notificationv1.GetNotificationHistoryResponse{NextPageToken: next}
	for _, n := range ns {
		out.Notifications = append(out.Notifications, toProtoNotification(n))
	}
	return out, nil
}

// GetNotificationPreferences returns the caller's preferences.
func (s *Server) GetNotificationPreferences(ctx context.Context, _ *notificationv1.GetNotificationPreferencesRequest) (*notificationv1.GetNotificationPreferencesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	prefs, err := s.svc.Preferences(ctx, p.UserID)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &notificationv1.GetNotificationPreferencesResponse{Preferences: toProtoPreferences(prefs)}, nil
}

// UpdateNotificationPreferences replaces the caller's preferences.
func (s *Server) UpdateNotificationPreferences(ctx context.Context, req *notificationv1.UpdateNotificationPreferencesRequest) (*notificationv1.UpdateNotificationPreferencesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	prefs, err := s.svc.UpdatePreferences(ctx, p.UserID, fromProtoPreferences(req.GetPreferences()))
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &notificationv1.UpdateNotificationPreferencesResponse{Preferences: toProtoPreferences(prefs)}, nil
}

// RegisterDevice registers one of the caller's devices.
func (s *Server) RegisterDevice(ctx context.Context, req *notificationv1.RegisterDeviceRequest) (*notificationv1.RegisterDeviceResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	d := notify.Device{Platform: notify.Platform(req.GetPlatform()), FCMToken: req.GetFcmToken()}
	if w := req.GetWebPush(); w != nil {
		d.WebPush = notify.WebPushSubscription{Endpoint: w.GetEndpoint(), P256dh: w.GetP256Dh(), Auth: w.GetAuth()}
	}
	d, err = s.svc.RegisterDevice(ctx, p.UserID, d)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &notificationv1.RegisterDeviceResponse{Device: toProtoDevice(d)}, nil
}

// UnregisterDevice removes one of the caller's devices.
func (s *Server) UnregisterDevice(ctx context.Context, req *notificationv1.UnregisterDeviceRequest) (*notificationv1.UnregisterDeviceResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.svc.UnregisterDevice(ctx, p.UserID, req.GetDeviceId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &notificationv1.UnregisterDeviceResponse{}, nil
}

// ListDevices lists the caller's devices.
func (s *Server) ListDevices(ctx context.Context, _ *notificationv1.ListDevicesRequest) (*notificationv1.ListDevicesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.svc.Devices(ctx, p.UserID)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &notificationv1.ListDevicesResponse{}
	for _, d := range ds {
		out.Devices = append(out.Devices, toProtoDevice(d))
	}
	return out, nil
}

// GetWebPushConfig returns the VAPID public key.
func (s *Server) GetWebPushConfig(context.Context, *notificationv1.GetWebPushConfigRequest) (*notificationv1.GetWebPushConfigResponse, error) {
	return &notificationv1.GetWebPushConfigResponse{VapidPublicKey: s.svc.WebPushPublicKey()}, nil
}

// requireUser returns the signed-in user; services have no notifications
// of their own.
func requireUser(ctx context.Context) (auth.Principal, error) {
	p, err := auth.Require(ctx)
	if err != nil {
		return p, err
	}
	if p.IsService() {
		return p, status.Error(codes.PermissionDenied, "this method acts for a signed-in user, not a service")
	}
	return p, nil
}

func requireAdminOrService(ctx context.Context) (auth.Principal, error) {
	p, err := auth.Require(ctx)
	if err != nil {
		return p, err
	}
	if !p.HasRole(auth.RoleAdmin) && !p.IsService() {
		return p, status.Error(codes.PermissionDenied, "requires the admin role or a service")
	}
	return p, nil
}

// toStatus maps domain errors to gRPC codes; unexpected errors are logged
// here, once, and hidden from the client.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var code codes.Code
	switch {
	case errors.Is(err, notify.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, notify.ErrInvalidArgument):
		code = codes.InvalidArgument
	case errors.Is(err, notify.ErrNoEmail):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		s.log.ErrorContext(ctx, "notification request failed", slog.Any("error", err))
		return status.Error(codes.Internal, "internal error")
	}
	return status.Error(code, err.Error())
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func toProtoNotification(n notify.Notification) *notificationv1.Notification {
	return &notificationv1.Notification{
		Id: n.ID, UserId: n.UserID, Channel: string(n.Channel), Kind: string(n.Kind),
		Title: n.Title, Body: n.Body, Status: string(n.Status), FailureReason: n.FailureReason,
		CreatedAt: ts(n.CreatedAt), UpdatedAt: ts(n.UpdatedAt), Data: n.Data,
	}
}

func toProtoPreferences(p notify.Preferences) *notificationv1.NotificationPreferences {
	out := &notificationv1.NotificationPreferences{
		Direct: p.Direct, Group: p.Group, Public: p.Public, Mentions: p.Mentions, EmailDigest: p.EmailDigest,
		QuietHours: &notificationv1.QuietHours{Enabled: p.QuietHours.Enabled, Start: p.QuietHours.Start, End: p.QuietHours.End, TimeZone: p.QuietHours.TimeZone},
	}
	for _, m := range p.MutedChannels {
		out.MutedChannels = append(out.MutedChannels, &notificationv1.MutedChannel{ChannelId: m.ChannelID, Until: ts(m.Until)})
	}
	return out
}

func fromProtoPreferences(p *notificationv1.NotificationPreferences) notify.Preferences {
	out := notify.Preferences{
		Direct: p.GetDirect(), Group: p.GetGroup(), Public: p.GetPublic(), Mentions: p.GetMentions(), EmailDigest: p.GetEmailDigest(),
	}
	if q := p.GetQuietHours(); q != nil {
		out.QuietHours = notify.QuietHours{Enabled: q.GetEnabled(), Start: q.GetStart(), End: q.GetEnd(), TimeZone: q.GetTimeZone()}
	}
	for _, m := range p.GetMutedChannels() {
		mc := notify.MutedChannel{ChannelID: m.GetChannelId()}
		if m.GetUntil() != nil {
			mc.Until = m.GetUntil().AsTime()
		}
		out.MutedChannels = append(out.MutedChannels, mc)
	}
	return out
}

func toProtoDevice(d notify.Device) *notificationv1.Device {
	return &notificationv1.Device{Id: d.ID, Platform: string(d.Platform), CreatedAt: ts(d.CreatedAt)}
}
