package chatservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// testServiceToken is the shared secret of service calls in tests.
const testServiceToken = "test-service-token"

// staticVerifier accepts "tok-<user id>" as the access token of that user.
type staticVerifier struct{}

func (staticVerifier) Verify(_ context.Context, token string) (auth.Principal, error) {
	user, ok := strings.CutPrefix(token, "tok-")
	if !ok || user == "" {
		return auth.Principal{}, errors.New("unknown token")
	}
	return auth.Principal{UserID: user}, nil
}

// knownUsers is an in-test user directory: every id not listed is unknown.
type knownUsers struct{ ids map[string]bool }

func (k knownUsers) MissingUsers(_ context.Context, ids []string) ([]string, error) {
	var missing []string
	for _, id := range ids {
		if !k.ids[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}

// fixture is one running chat service with its own database, Redis prefix,
// NATS subjects and streams, and a client.
type fixture struct {
	env    *testenv.Env
	cfg    Config
	svc    *Service
	conn   *grpc.ClientConn
	client chatv1.ChatServiceClient
	db     *mongo.Database
	rdb    *redis.Client
	js     jetstream.JetStream
	// stop stops the service and closes the client (also at cleanup).
	stop func()
}

type option func(*Config)

// storeModes are the ways the service can write: concurrently (MongoDB,
// FerretDB over PostgreSQL) and as its database's only writer, with the
// channel cache, as the all-in-one runs on the embedded FerretDB. Tests of
// the send path run in both.
var storeModes = []struct {
	name string
	opts []option
}{
	{"concurrent", nil},
	{"one-writer", []option{func(c *Config) { c.OneWriter, c.ChannelCacheTTL = true, time.Hour }}},
}

func withEvents(wrap func(chat.EventPublisher) chat.EventPublisher) option {
	return func(c *Config) { c.wrapEvents = wrap }
}

func withUsers(ids ...string) option {
	return func(c *Config) {
		k := knownUsers{ids: map[string]bool{}}
		for _, id := range ids {
			k.ids[id] = true
		}
		c.users = k
	}
}

// newFixture starts a chat service on a fresh corner of the shared servers.
func newFixture(t testing.TB, opts ...option) *fixture {
	t.Helper()
	env := testenv.New(t)
	f := &fixture{env: env}
	f.db = env.Mongo(t)
	f.rdb = env.Redis(t)
	nc := env.NATS(t)
	var err error
	if f.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	f.cfg = Config{
		MongoURI:       env.MongoURI,
		Database:       f.db.Name(),
		NATSURL:        env.NATSURL,
		RedisURL:       env.RedisURL,
		RedisPrefix:    testenv.Unique("chat") + ":",
		RealtimePrefix: testenv.Unique("rt") + ".",
		Events: eventbus.Names{
			EventsStream:     testenv.Unique("EV"),
			SubjectPrefix:    testenv.Unique("ev"),
			DLQStream:        testenv.Unique("DLQ"),
			DLQSubjectPrefix: testenv.Unique("dlq"),
		},
		OutboxDelay:   200 * time.Millisecond,
		RelayInterval: 100 * time.Millisecond,
		ServiceToken:  testServiceToken,
		Verifier:      staticVerifier{},
	}
	for _, o := range opts {
		o(&f.cfg)
	}
	t.Cleanup(func() { f.cleanupBackends(t) })
	f.start(t)
	return f
}

// start runs the service (again) with f.cfg and connects the client.
func (f *fixture) start(t testing.TB) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.GRPCListener = lis
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc, err := New(ctx, cfg)
	if err != nil {
		_ = lis.Close()
		t.Fatalf("New: %v", err)
	}
	f.svc = svc
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	f.client = chatv1.NewChatServiceClient(conn)
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			_ = conn.Close()
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(f.stop)
}

// cleanupBackends removes the streams and Redis keys of the test (the
// database is dropped by testenv).
func (f *fixture) cleanupBackends(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range []string{f.cfg.Events.EventsStream, f.cfg.Events.DLQStream} {
		if err := f.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", s, err)
		}
	}
	if err := f.flushCache(ctx); err != nil {
		t.Errorf("delete cache keys: %v", err)
	}
}

// flushCache deletes every Redis key of this test.
func (f *fixture) flushCache(ctx context.Context) error {
	iter := f.rdb.Scan(ctx, 0, f.cfg.RedisPrefix+"*", 100).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	return f.rdb.Del(ctx, keys...).Err()
}

// as returns a context authenticated as user.
func as(t testing.TB, user string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer tok-"+user)
}

// asService returns a context authenticated as another service.
func asService(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return auth.OutgoingAsService(ctx, "gateway", testServiceToken)
}

// wantCode fails the test unless err carries code.
func wantCode(t testing.TB, err error, code codes.Code, what string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, code)
	}
}

// mustCreate creates a channel as owner with members.
func (f *fixture) mustCreate(t testing.TB, owner, typ, name string, members ...string) *chatv1.Channel {
	t.Helper()
	resp, err := f.client.CreateChannel(as(t, owner), &chatv1.CreateChannelRequest{Name: name, Type: typ, MemberIds: members})
	if err != nil {
		t.Fatalf("CreateChannel(%s %s): %v", typ, name, err)
	}
	return resp.GetChannel()
}

// mustSend sends a text message.
func (f *fixture) mustSend(t testing.TB, user, channelID, content string) *chatv1.Message {
	t.Helper()
	resp, err := f.client.SendMessage(as(t, user), &chatv1.SendMessageRequest{ChannelId: channelID, Content: content})
	if err != nil {
		t.Fatalf("SendMessage(%q): %v", content, err)
	}
	return resp.GetMessage()
}

// countMessages counts the stored messages of a channel.
func (f *fixture) countMessages(t testing.TB, channelID string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := f.db.Collection("messages").CountDocuments(ctx, bson.D{{Key: "channel_id", Value: channelID}})
	if err != nil {
		t.Fatalf("count messages: %v", err)
	}
	return n
}

// int64p returns a pointer to v (for optional proto fields).
func int64p(v int64) *int64 { return &v }

// protoUnmarshal decodes protojson (as frames and events carry it).
func protoUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
