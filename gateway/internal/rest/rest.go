// Package rest is the gateway's REST edge: grpc-gateway handlers that forward
// every REST call to the owning service over gRPC, so the services'
// interceptors (authentication, validation) run for REST exactly as for gRPC.
package rest

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	eventbusv1 "github.com/parleyhq/parley/apis/gen/go/parley/eventbus/v1"
	notificationv1 "github.com/parleyhq/parley/apis/gen/go/parley/notification/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
)

// Conns are the gRPC connections to the services; a nil connection means the
// service is not deployed and its REST paths answer 404/501.
type Conns struct {
	User         grpc.ClientConnInterface
	Chat         grpc.ClientConnInterface
	Presence     grpc.ClientConnInterface
	Notification grpc.ClientConnInterface
	EventBus     grpc.ClientConnInterface
}

// forwardedHeaders are the HTTP headers that reach the services as gRPC
// metadata, besides grpc-gateway's defaults (Authorization among them).
var forwardedHeaders = map[string]bool{
	"x-request-id": true,
	"traceparent":  true,
	"tracestate":   true,
}

// NewMux returns the REST handler for every configured service. JSON uses the
// proto field names (snake_case) and rejects unknown fields, so a typo or an
// injected operator object is a 400 rather than silently ignored.
func NewMux(ctx context.Context, conns Conns, opts ...runtime.ServeMuxOption) (*runtime.ServeMux, error) {
	marshaler := &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	base := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			if forwardedHeaders[strings.ToLower(key)] {
				return strings.ToLower(key), true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if strings.EqualFold(key, "x-request-id") {
				return "X-Request-Id", true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
	}
	mux := runtime.NewServeMux(append(base, opts...)...)
	type registration struct {
		name string
		conn grpc.ClientConnInterface
		reg  func() error
	}
	regs := []registration{
		{"user", conns.User, func() error {
			return userv1.RegisterUserServiceHandlerClient(ctx, mux, userv1.NewUserServiceClient(conns.User))
		}},
		{"chat", conns.Chat, func() error {
			return chatv1.RegisterChatServiceHandlerClient(ctx, mux, chatv1.NewChatServiceClient(conns.Chat))
		}},
		{"presence", conns.Presence, func() error {
			return presencev1.RegisterPresenceServiceHandlerClient(ctx, mux, presencev1.NewPresenceServiceClient(conns.Presence))
		}},
		{"notification", conns.Notification, func() error {
			return notificationv1.RegisterNotificationServiceHandlerClient(ctx, mux, notificationv1.NewNotificationServiceClient(conns.Notification))
		}},
		{"eventbus", conns.EventBus, func() error {
			return eventbusv1.RegisterEventBusServiceHandlerClient(ctx, mux, eventbusv1.NewEventBusServiceClient(conns.EventBus))
		}},
	}
	for _, r := range regs {
		if r.conn == nil {
			continue
		}
		if err := r.reg(); err != nil {
			return nil, fmt.Errorf("register %s REST handlers: %w", r.name, err)
		}
	}
	return mux, nil
}

// Handler wraps mux with the edge's body size limit.
func Handler(mux http.Handler, maxBodyBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && maxBodyBytes > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		mux.ServeHTTP(w, r)
	})
}
