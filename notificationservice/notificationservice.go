// Package notificationservice is Parley's notification service: push (FCM
// and Web Push), email (SMTP) digests, preferences, history and retries,
// driven by the chat and user services' events. New assembles it from a
// Config; Run serves it. Nothing else is exported.
//
// Pieces: a durable event consumer (message.sent, friend.requested) decides
// who is notified; each delivery is a job on a JetStream work queue with
// one consumer per channel (push, webpush, email) that retries with backoff,
// honours the providers' Retry-After and dead-letters what cannot be
// delivered; a digest loop emails unread direct messages and mentions to
// users away for a while; the gRPC API serves history, preferences and
// devices. A channel without a configured provider records its
// notifications as dry runs ("would have been sent").
package notificationservice

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice/internal/events"
	"github.com/parleyhq/parley/notificationservice/internal/grpcapi"
	"github.com/parleyhq/parley/notificationservice/internal/jobqueue"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/peers"
	"github.com/parleyhq/parley/notificationservice/internal/providers/email"
	"github.com/parleyhq/parley/notificationservice/internal/providers/fcm"
	"github.com/parleyhq/parley/notificationservice/internal/providers/webpush"
	"github.com/parleyhq/parley/notificationservice/internal/store"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/connect"
	"github.com/parleyhq/parley/platform/health"
	"github.com/parleyhq/parley/platform/httpserver"
	"github.com/parleyhq/parley/platform/rpc"
)

// Defaults of Config.
const (
	DefaultGRPCAddr      = "localhost:9094"
	DefaultMongoURI      = "mongodb://localhost:27017"
	DefaultDatabase      = "parley"
	DefaultEventsDurable = "notificationservice"
	// ServiceName names this service in its log lines.
	ServiceName           = "notificationservice"
	DefaultDigestInterval = time.Minute
	// DefaultPresenceCacheTTL: see Config.PresenceCacheTTL.
	DefaultPresenceCacheTTL = 2 * time.Second
	DefaultBaseURL          = "http://localhost:8080"
	// connectTimeout bounds connecting to each backend at start-up.
	connectTimeout = 15 * time.Second
	// shutdownTimeout bounds closing the backends.
	shutdownTimeout = 10 * time.Second
)

// UnsubscribePath is where the service's HTTP server answers one-click
// unsubscribe links (GET shows a confirmation, POST unsubscribes).
const UnsubscribePath = "/v1/notifications:unsubscribe"

// Config configures the service. Zero values are local-development
// defaults; the peers (ChatService, PresenceService, UserService) are
// required.
type Config struct {
	// GRPCAddr is the gRPC listen address (default "localhost:9094");
	// GRPCListener, when set, is used instead (the all-in-one binds it).
	GRPCAddr     string
	GRPCListener net.Listener
	// HTTPAddr serves /healthz, /readyz and the unsubscribe endpoint;
	// empty means no HTTP server unless HTTPListener is set.
	HTTPAddr     string
	HTTPListener net.Listener

	// MongoURI (default "mongodb://localhost:27017") and Database
	// (default "parley").
	MongoURI string
	Database string
	// NATSURL is the NATS server with JetStream (default nats.DefaultURL).
	NATSURL string

	// ChatService, PresenceService and UserService are connections to the
	// peers (rpc.Dial). Required.
	ChatService     grpc.ClientConnInterface
	PresenceService grpc.ClientConnInterface
	UserService     grpc.ClientConnInterface
	// ServiceToken authenticates calls between services, both ways.
	ServiceToken string
	// Verifier checks users' access tokens; default: a verifier fetching
	// the user service's JWKS over UserService.
	Verifier auth.TokenVerifier

	// Events names the event stream (default: the production names);
	// EventsDurable is this service's consumer (default
	// "notificationservice").
	Events        eventbus.Names
	EventsDurable string
	// Jobs configures the delivery work queue (stream NOTIFY_JOBS on
	// notify.jobs.<channel>, dead letters in NOTIFY_DLQ, retries).
	Jobs JobsConfig

	// FCM: the Firebase project and a service-account key file. With an
	// FCMEndpoint (an emulator) and no credentials, requests are sent
	// unauthenticated. Empty FCMProjectID and FCMCredentialsFile: FCM is
	// not configured (dry run).
	FCMProjectID       string
	FCMCredentialsFile string
	FCMEndpoint        string

	// Web Push: the VAPID key pair (base64url; the public key may be
	// omitted), or KeyDir where a generated pair is kept (development).
	// Neither: Web Push is not configured (dry run).
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	// VAPIDSubject is the contact push services see: an email address or
	// an https URL (default: BaseURL if https, else
	// "mailto:notifications@localhost").
	VAPIDSubject string
	KeyDir       string
	// WebPushHTTPClient sends to push services (tests, proxies).
	WebPushHTTPClient *http.Client

	// SMTP: empty SMTPHost means email is not configured (dry run).
	SMTPHost     string
	SMTPPort     int
	SMTPUsername string
	SMTPPassword string
	// SMTPFrom is the sender, "Parley <no-reply@example.com>".
	SMTPFrom string
	// SMTPTLS is "starttls" (default), "tls" or "none" (loopback only).
	SMTPTLS                string
	SMTPCAFile             string
	SMTPInsecureSkipVerify bool
	// SMTPRootCAs replaces the system roots (tests).
	SMTPRootCAs *x509.CertPool

	// BaseURL is the web app's public URL, for links in emails (default
	// "http://localhost:8080").
	BaseURL string
	// UnsubscribeURL is the public URL of the one-click unsubscribe
	// endpoint (default BaseURL + UnsubscribePath).
	UnsubscribeURL string
	// UnsubscribeMailto, if set, adds a mailto: to List-Unsubscribe.
	UnsubscribeMailto string
	// UnsubscribeSecret signs unsubscribe links; default: derived from
	// ServiceToken (random per process if that is empty too, which breaks
	// links on restart).
	UnsubscribeSecret string

	// DigestDelay: users offline this long with unread direct messages or
	// mentions this old get an email digest (default 15m); DigestWindow:
	// at most one digest per user per window (default DigestDelay);
	// DigestInterval: how often the digest loop runs (default 1m).
	DigestDelay    time.Duration
	DigestWindow   time.Duration
	DigestInterval time.Duration

	// PresenceCacheTTL is how long a member's connected state, as the
	// presence service told it, is reused for later messages (default
	// 2s; negative: ask for every message). A user who connects or
	// disconnects within it of a message may get one push more, or one
	// fewer, for that message.
	PresenceCacheTTL time.Duration

	Logger *slog.Logger
}

// JobsConfig tunes the delivery work queue; zero values are the defaults
// of package jobqueue (8 deliveries, backoff 5s/30s/2m/5m/10m).
type JobsConfig struct {
	Stream           string
	SubjectPrefix    string
	DLQStream        string
	DLQSubjectPrefix string
	DurablePrefix    string
	MaxDeliver       int
	Backoff          []time.Duration
	AckWait          time.Duration
	Concurrency      int
	// OnResult observes every settled delivery (tests, metrics).
	OnResult func(jobqueue.Result)
}

func (j JobsConfig) queueConfig(log *slog.Logger) jobqueue.Config {
	return jobqueue.Config{
		Stream: j.Stream, SubjectPrefix: j.SubjectPrefix, DLQStream: j.DLQStream, DLQSubjectPrefix: j.DLQSubjectPrefix,
		DurablePrefix: j.DurablePrefix, MaxDeliver: j.MaxDeliver, Backoff: j.Backoff, AckWait: j.AckWait,
		Concurrency: j.Concurrency, Logger: log, OnResult: j.OnResult,
	}
}

// Service is the assembled notification service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	mongo    *mongo.Client
	nc       *nats.Conn
	ncClosed <-chan struct{}
	// ownLis are the listeners New bound itself.
	ownLis   []net.Listener
	grpc     *grpc.Server
	grpcLis  net.Listener
	http     *http.Server
	httpLis  net.Listener
	health   *health.Health
	domain   *notify.Service
	consumer *eventbus.Consumer
	workers  []*jobqueue.Worker
}

// New connects to MongoDB and NATS (with deadlines), creates the indexes
// and streams, configures the providers and builds the gRPC server. The
// listeners are bound here, so their addresses are known before Run.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg = withDefaults(cfg)
	if cfg.ChatService == nil || cfg.PresenceService == nil || cfg.UserService == nil {
		return nil, fmt.Errorf("%w: ChatService, PresenceService and UserService connections are required", notify.ErrInvalidConfig)
	}
	s := &Service{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	st := store.New(s.mongo.Database(cfg.Database))
	if err := st.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("notificationservice: jetstream: %w", err)
	}
	if err := eventbus.EnsureStreams(ctx, js, eventbus.StreamConfig{Names: cfg.Events}); err != nil {
		return nil, fmt.Errorf("notificationservice: %w", err)
	}
	jobsCfg := cfg.Jobs.queueConfig(cfg.Logger)
	if err := jobqueue.EnsureStreams(ctx, js, jobsCfg); err != nil {
		return nil, err
	}
	queue, err := jobqueue.NewQueue(s.nc, jobsCfg)
	if err != nil {
		return nil, err
	}

	providers, vapidPublic, err := s.providers(ctx)
	if err != nil {
		return nil, err
	}
	chat := peers.NewChat(chatv1.NewChatServiceClient(cfg.ChatService), cfg.ServiceToken, 0)
	users := peers.NewUsers(userv1.NewUserServiceClient(cfg.UserService), cfg.ServiceToken, 0)
	s.domain, err = notify.NewService(notify.Config{
		Store:             st,
		Queue:             queue,
		Members:           chat,
		Reads:             chat,
		Channels:          chat,
		Presence:          peers.NewPresence(presencev1.NewPresenceServiceClient(cfg.PresenceService), cfg.ServiceToken, 0, cfg.PresenceCacheTTL),
		Users:             users,
		Providers:         providers,
		VAPIDPublicKey:    vapidPublic,
		BaseURL:           cfg.BaseURL,
		UnsubscribeURL:    cfg.UnsubscribeURL,
		UnsubscribeMailto: cfg.UnsubscribeMailto,
		UnsubscribeSecret: unsubscribeSecret(cfg, s.log),
		DigestDelay:       cfg.DigestDelay,
		DigestWindow:      cfg.DigestWindow,
		Logger:            cfg.Logger,
	})
	if err != nil {
		return nil, err
	}

	// DeliverNew: a consumer created today must not push last week's
	// messages still in the stream; once created, the durable resumes where
	// it stopped.
	if s.consumer, err = eventbus.NewConsumer(ctx, s.nc, eventbus.ConsumerConfig{
		Names: cfg.Events, Durable: cfg.EventsDurable, Types: events.Types(),
		Handler: events.Handler(s.domain), Logger: cfg.Logger, DeliverNew: true,
	}); err != nil {
		return nil, fmt.Errorf("notificationservice: event consumer: %w", err)
	}
	for _, ch := range notify.Channels() {
		w, err := jobqueue.NewWorker(ctx, s.nc, jobsCfg, ch, s.domain)
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
	}

	if err := s.buildServers(); err != nil {
		return nil, err
	}
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = DefaultGRPCAddr
	}
	if cfg.MongoURI == "" {
		cfg.MongoURI = DefaultMongoURI
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.NATSURL == "" {
		cfg.NATSURL = nats.DefaultURL
	}
	if cfg.EventsDurable == "" {
		cfg.EventsDurable = DefaultEventsDurable
	}
	if cfg.DigestInterval <= 0 {
		cfg.DigestInterval = DefaultDigestInterval
	}
	if cfg.PresenceCacheTTL == 0 {
		cfg.PresenceCacheTTL = DefaultPresenceCacheTTL
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.UnsubscribeURL == "" {
		cfg.UnsubscribeURL = cfg.BaseURL + UnsubscribePath
	}
	if cfg.VAPIDSubject == "" {
		cfg.VAPIDSubject = "mailto:notifications@localhost"
		if strings.HasPrefix(cfg.BaseURL, "https://") {
			cfg.VAPIDSubject = cfg.BaseURL
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With(slog.String("service", ServiceName))
	return cfg
}

// unsubscribeSecret is the configured secret, or one derived from the
// service token (shared by every replica), or a random one.
func unsubscribeSecret(cfg Config, log *slog.Logger) []byte {
	if cfg.UnsubscribeSecret != "" {
		sum := sha256.Sum256([]byte(cfg.UnsubscribeSecret))
		return sum[:]
	}
	if cfg.ServiceToken != "" {
		sum := sha256.Sum256([]byte("parley-notification-unsubscribe\x00" + cfg.ServiceToken))
		return sum[:]
	}
	log.Warn("no unsubscribe secret or service token: unsubscribe links stop working when the process restarts")
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	return b
}

func (s *Service) connect(ctx context.Context) error {
	var err error
	if s.mongo, err = connect.Mongo(ctx, s.cfg.MongoURI, "notificationservice", connectTimeout, 0); err != nil {
		return fmt.Errorf("notificationservice: %w", err)
	}
	if s.nc, s.ncClosed, err = connect.NATS(s.cfg.NATSURL, "notificationservice", connectTimeout, s.log,
		nats.DrainTimeout(shutdownTimeout)); err != nil {
		return fmt.Errorf("notificationservice: %w", err)
	}
	return nil
}

// providers builds the configured providers; a channel left out is a dry
// run. It returns the VAPID public key for browsers.
func (s *Service) providers(ctx context.Context) (notify.Providers, string, error) {
	cfg := s.cfg
	var p notify.Providers
	if cfg.FCMProjectID != "" || cfg.FCMCredentialsFile != "" {
		f, err := fcm.New(ctx, fcm.Config{ProjectID: cfg.FCMProjectID, CredentialsFile: cfg.FCMCredentialsFile,
			Endpoint: cfg.FCMEndpoint, NoAuth: cfg.FCMCredentialsFile == "" && cfg.FCMEndpoint != ""})
		if err != nil {
			return p, "", err
		}
		p.FCM = f
		if cfg.FCMCredentialsFile == "" {
			s.log.Warn("FCM configured without credentials: requests to the custom endpoint are unauthenticated",
				slog.String("endpoint", cfg.FCMEndpoint))
		}
	}
	keys := webpush.Keys{PublicKey: cfg.VAPIDPublicKey, PrivateKey: cfg.VAPIDPrivateKey}
	if keys.PrivateKey == "" && cfg.KeyDir != "" {
		var err error
		if keys, err = webpush.LoadOrCreateKeys(cfg.KeyDir); err != nil {
			return p, "", err
		}
	}
	var vapidPublic string
	if keys.PrivateKey != "" {
		w, err := webpush.New(webpush.Config{Keys: keys, Subject: cfg.VAPIDSubject, HTTPClient: cfg.WebPushHTTPClient})
		if err != nil {
			return p, "", err
		}
		p.WebPush, vapidPublic = w, w.PublicKey()
	}
	if cfg.SMTPHost != "" {
		e, err := email.New(email.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
			From: cfg.SMTPFrom, TLS: cfg.SMTPTLS, CAFile: cfg.SMTPCAFile, RootCAs: cfg.SMTPRootCAs, InsecureSkipVerify: cfg.SMTPInsecureSkipVerify})
		if err != nil {
			return p, "", err
		}
		p.Email = e
	}
	s.log.Info("notification providers",
		slog.Bool("fcm", p.FCM != nil), slog.Bool("webpush", p.WebPush != nil), slog.Bool("email", p.Email != nil))
	return p, vapidPublic, nil
}

func (s *Service) buildServers() error {
	cfg := s.cfg
	verifier := cfg.Verifier
	if verifier == nil {
		v, err := auth.NewVerifier(auth.VerifierConfig{
			JWKS:   &auth.GRPCKeySource{Client: userv1.NewUserServiceClient(cfg.UserService)},
			Logger: cfg.Logger,
		})
		if err != nil {
			return fmt.Errorf("notificationservice: verifier: %w", err)
		}
		verifier = v
	}
	gs, err := rpc.NewServer(rpc.ServerConfig{
		Logger: cfg.Logger,
		Auth:   auth.Hook(auth.HookConfig{Verifier: verifier, Public: grpcapi.PublicMethods(), ServiceToken: cfg.ServiceToken}),
	})
	if err != nil {
		return fmt.Errorf("notificationservice: grpc server: %w", err)
	}
	s.grpc = gs
	grpcapi.Register(gs, grpcapi.New(s.domain, cfg.Logger))

	s.health = health.New(cfg.Logger)
	s.health.Add("mongodb", health.MongoCheck(s.mongo))
	s.health.Add("nats", health.NATSCheck(s.nc))
	s.health.RegisterGRPC(gs)

	if s.grpcLis = cfg.GRPCListener; s.grpcLis == nil {
		if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return fmt.Errorf("notificationservice: listen %s: %w", cfg.GRPCAddr, err)
		}
		s.ownLis = append(s.ownLis, s.grpcLis)
	}
	if s.httpLis = cfg.HTTPListener; s.httpLis == nil && cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("notificationservice: listen %s: %w", cfg.HTTPAddr, err)
		}
		s.ownLis = append(s.ownLis, s.httpLis)
	}
	if s.httpLis != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /healthz", s.health.Live())
		mux.Handle("GET /readyz", s.health.Ready())
		unsub, err := unsubscribeHandler(s.domain, s.log)
		if err != nil {
			return err
		}
		mux.Handle(UnsubscribePath, unsub)
		s.http = httpserver.New(mux)
	}
	return nil
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the address of the HTTP server, "" if there is none.
func (s *Service) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Run serves until ctx is done, then stops gracefully: the servers drain,
// the consumers finish the deliveries in flight, and the connections it
// opened are closed. It returns the first error that stopped it, or nil.
func (s *Service) Run(ctx context.Context) error {
	defer s.close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return rpc.Serve(ctx, s.grpc, s.grpcLis) })
	if s.http != nil {
		g.Go(func() error { return httpserver.Serve(ctx, s.http, s.httpLis) })
	}
	g.Go(func() error { s.health.Run(ctx); return nil })
	g.Go(func() error {
		if err := s.consumer.Run(ctx); err != nil {
			return fmt.Errorf("notificationservice: event consumer: %w", err)
		}
		return nil
	})
	for _, w := range s.workers {
		g.Go(func() error { return w.Run(ctx) })
	}
	g.Go(func() error { s.digestLoop(ctx); return nil })
	s.log.Info("notification service running", slog.String("grpc", s.GRPCAddr()), slog.String("http", s.HTTPAddr()))
	err := g.Wait()
	s.health.SetDraining()
	return err
}

// digestLoop runs a digest pass every DigestInterval until ctx is done.
func (s *Service) digestLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.DigestInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(s.cfg.DigestInterval, time.Minute))
		n, err := s.domain.RunDigests(pctx)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("digest pass", slog.Int("sent", n), slog.Any("error", err))
		} else if n > 0 {
			s.log.Info("digests queued", slog.Int("count", n))
		}
	}
}

// close releases what New opened: it drains the NATS connection (waiting
// for it to close), disconnects MongoDB, and closes the listeners New bound
// (the servers close them after Run; when Run never ran, this does).
func (s *Service) close() {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if s.nc != nil {
		if err := s.nc.Drain(); err != nil {
			s.nc.Close()
		}
		select {
		case <-s.ncClosed:
		case <-ctx.Done():
			s.log.Warn("nats drain did not finish; closing")
			s.nc.Close()
		}
	}
	if s.mongo != nil {
		if err := s.mongo.Disconnect(ctx); err != nil {
			s.log.Warn("disconnect mongodb", slog.Any("error", err))
		}
	}
	for _, l := range s.ownLis {
		_ = l.Close() // usually already closed by its server
	}
}
