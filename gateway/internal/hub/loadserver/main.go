// Command loadserver serves the WebSocket hub alone, for load tests that
// measure the hub rather than the platform: an embedded NATS server, the
// real Hub, and an in-memory stand-in for the chat service (every channel
// public, every user a member, messages kept in memory and published on
// NATS as the chat service does). No presence or user service, no storage.
//
// Tokens are "tok-<user id>". Run it, then point tools/cmd/loadgen at it
// (see docs/performance.md, "Gateway"):
//
//	go run ./gateway/internal/hub/loadserver --addr 127.0.0.1:18080
//	loadgen --url ws://127.0.0.1:18080/v1/ws --tokens-file tokens.txt ...
//
// Connection caps are off (every client is on loopback); other limits are
// the hub's defaults.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/gateway/internal/hub"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/embedded"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(ctx, os.Args[1:], log); err != nil {
		log.Error("loadserver failed", slog.Any("error", err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("loadserver", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:18080", "loopback address to serve /v1/ws (and /metrics) on")
	statsEvery := fs.Duration("stats", 10*time.Second, "how often to log the hub's stats")
	blocking := fs.Bool("blocking-reads", false, "read each connection on a goroutine of its own instead of the read poller")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr %s: loopback only", *addr)
	}
	ns, err := embedded.StartNATS(embedded.NATSConfig{Port: -1})
	if err != nil {
		return err
	}
	defer ns.Close()
	hubNC, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer hubNC.Close()
	chatNC, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer chatNC.Close()

	reg := prometheus.NewRegistry()
	h, err := hub.New(hub.Config{
		Chat:     &memChat{nc: chatNC, msgs: make(map[string][]*chatv1.Message)},
		NATS:     hubNC,
		Verifier: tokenVerifier{},
		Registry: reg,
		Logger:   log,
		Limits:   hub.Limits{MaxConnsPerIP: -1, MaxConnsPerUser: -1},

		BlockingReads: *blocking,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/ws", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	log.Info("loadserver ready", slog.String("url", "ws://"+lis.Addr().String()+"/v1/ws"), slog.Int("pid", os.Getpid()))

	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	hubDone := make(chan error, 1)
	go func() { hubDone <- h.Run(hubCtx) }()
	t := time.NewTicker(*statsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			stopHub()
			err := <-hubDone
			shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return errors.Join(err, srv.Shutdown(shutCtx))
		case err := <-served:
			stopHub()
			return errors.Join(err, <-hubDone)
		case <-t.C:
			s := h.Stats()
			log.Info("hub", slog.Int("connections", s.Connections), slog.Int("channels", s.Channels))
		}
	}
}

// tokenVerifier accepts "tok-<user id>".
type tokenVerifier struct{}

func (tokenVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	uid, ok := strings.CutPrefix(token, "tok-")
	if !ok || uid == "" {
		return auth.Principal{}, errors.New("loadserver: tokens are tok-<user id>")
	}
	return auth.Principal{UserID: uid}, nil
}

// memChat stands in for the chat service: what the hub calls, in memory.
// It embeds the client interface for the calls the hub never makes: they
// would panic on the nil interface, and this load tool never makes them.
type memChat struct {
	chatv1.ChatServiceClient
	nc *nats.Conn

	mu   sync.Mutex
	msgs map[string][]*chatv1.Message
}

func (c *memChat) CheckAccess(context.Context, *chatv1.CheckAccessRequest, ...grpc.CallOption) (*chatv1.CheckAccessResponse, error) {
	return &chatv1.CheckAccessResponse{CanRead: true, CanWrite: true, IsMember: true, ChannelType: "public", Role: "member"}, nil
}

func (c *memChat) ListMembers(context.Context, *chatv1.ListMembersRequest, ...grpc.CallOption) (*chatv1.ListMembersResponse, error) {
	return &chatv1.ListMembersResponse{}, nil
}

func (c *memChat) GetMessages(_ context.Context, in *chatv1.GetMessagesRequest, _ ...grpc.CallOption) (*chatv1.GetMessagesResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.msgs[in.GetChannelId()]
	if in.AfterSeq == nil {
		if len(all) == 0 {
			return &chatv1.GetMessagesResponse{}, nil
		}
		return &chatv1.GetMessagesResponse{Messages: all[len(all)-1:], HasMore: len(all) > 1}, nil
	}
	var out []*chatv1.Message
	if after := int(in.GetAfterSeq()); after < len(all) {
		out = all[after:]
	}
	limit := int(in.GetLimit())
	if limit == 0 {
		limit = 50
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return &chatv1.GetMessagesResponse{Messages: out, HasMore: more}, nil
}

func (c *memChat) SendMessage(ctx context.Context, in *chatv1.SendMessageRequest, _ ...grpc.CallOption) (*chatv1.SendMessageResponse, error) {
	// The hub forwards the user's token as outgoing metadata.
	sender := "unknown"
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			sender = strings.TrimPrefix(v[0], "Bearer tok-")
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.msgs[in.GetChannelId()]
	m := &chatv1.Message{
		Id:        fmt.Sprintf("%s-%d", in.GetChannelId(), len(all)+1),
		ChannelId: in.GetChannelId(),
		Seq:       int64(len(all) + 1),
		UserId:    sender,
		Content:   in.GetContent(),
		Type:      "text",
		Metadata:  in.GetMetadata(),
		CreatedAt: timestamppb.Now(),
	}
	c.msgs[in.GetChannelId()] = append(all, m)
	data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	frame, err := json.Marshal(map[string]any{"type": "message", "channel": m.ChannelId, "data": json.RawMessage(data), "timestamp": time.Now().UnixMilli(), "user_id": m.UserId})
	if err != nil {
		return nil, err
	}
	// Published under the lock, so frames leave in seq order.
	if err := c.nc.Publish("rt.channel."+m.ChannelId, frame); err != nil {
		return nil, err
	}
	return &chatv1.SendMessageResponse{Message: m}, nil
}
