package auditservice

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventbusv1 "github.com/parleyhq/parley/apis/gen/go/parley/eventbus/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/platform/rpc"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// harness is one test's service configuration: its own streams, subject
// prefixes and database on the shared servers.
type harness struct {
	env   *testenv.Env
	cfg   Config
	db    *mongo.Database
	js    jetstream.JetStream
	pub   *eventbus.Publisher
	names eventbus.Names
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	env := testenv.New(t)
	h := &harness{env: env, names: eventbus.Names{
		EventsStream:     testenv.Unique("EV"),
		SubjectPrefix:    testenv.Unique("ev"),
		DLQStream:        testenv.Unique("DLQ"),
		DLQSubjectPrefix: testenv.Unique("dlq"),
	}}
	h.db = env.Mongo(t)
	h.cfg = Config{
		MongoURI: env.MongoURI, Database: h.db.Name(), NATSURL: env.NATSURL,
		Names: h.names, MaxBytes: 256 << 20, DuplicateWindow: 2 * time.Minute,
		PullWait: 300 * time.Millisecond, Backoff: []time.Duration{100 * time.Millisecond},
	}
	nc := env.NATS(t)
	var err error
	if h.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{h.names.EventsStream, h.names.DLQStream} {
			if err := h.js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	})
	if h.pub, err = eventbus.NewPublisher(nc, eventbus.PublisherConfig{Names: h.names}); err != nil {
		t.Fatal(err)
	}
	return h
}

// started is a service running in the background.
type started struct {
	svc    *Service
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	client eventbusv1.EventBusServiceClient
}

func (s *started) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("service did not stop within 60s")
	}
	if s.err != nil {
		t.Errorf("Run: %v", s.err)
	}
}

func (h *harness) start(t *testing.T, cfg Config) *started {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPCListener = lis
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := New(ctx, cfg)
	if err != nil {
		_ = lis.Close()
		t.Fatalf("New: %v", err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	s := &started{svc: svc, cancel: stop, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = svc.Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		<-s.done
	})
	conn, err := rpc.Dial(svc.GRPCAddr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	s.client = eventbusv1.NewEventBusServiceClient(conn)
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) count(t *testing.T) int64 {
	t.Helper()
	n, err := h.db.Collection("events").CountDocuments(testCtx(t), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (h *harness) publish(t *testing.T, typ, source, subject string, data any) eventbus.Event {
	t.Helper()
	return h.publishAt(t, time.Time{}, typ, source, subject, data)
}

// publishAt publishes an event stamped at (zero: now).
func (h *harness) publishAt(t *testing.T, at time.Time, typ, source, subject string, data any) eventbus.Event {
	t.Helper()
	ev, err := eventbus.NewEvent(typ, source, subject, data)
	if err != nil {
		t.Fatal(err)
	}
	if !at.IsZero() {
		ev.Timestamp = at
	}
	if err := h.pub.Publish(testCtx(t), ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestAuditLogAPI(t *testing.T) {
	h := newHarness(t)
	s := h.start(t, h.cfg)
	ctx := testCtx(t)

	// One second apart, so the time-range filter has something to cut.
	base := time.Now().UTC().Add(-time.Hour)
	sent := h.publishAt(t, base, eventbus.TypeMessageSent, "chatservice", "chan1", map[string]any{"text": "hello", "n": 2})
	joined := h.publishAt(t, base.Add(time.Second), eventbus.TypeUserJoined, "chatservice", "chan1", map[string]string{"user_id": "u1"})
	registered := h.publishAt(t, base.Add(2*time.Second), eventbus.TypeUserRegistered, "userservice", "u1", []string{"not", "an", "object"})
	// Published twice: stored once.
	if err := h.pub.Publish(ctx, sent); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := h.count(t); n != 3 {
			return fmt.Errorf("%d events recorded", n)
		}
		return nil
	})

	got, err := s.client.GetEvent(ctx, &eventbusv1.GetEventRequest{EventId: sent.ID})
	if err != nil {
		t.Fatal(err)
	}
	ev := got.GetEvent()
	if ev.GetId() != sent.ID || ev.GetType() != eventbus.TypeMessageSent || ev.GetSource() != "chatservice" ||
		ev.GetSubjectId() != "chan1" || ev.GetVersion() != 1 || !ev.GetTimestamp().AsTime().Equal(sent.Timestamp) {
		t.Errorf("GetEvent = %v", ev)
	}
	if d := ev.GetData().AsMap(); d["text"] != "hello" || d["n"] != float64(2) {
		t.Errorf("data = %v", d)
	}
	reg, err := s.client.GetEvent(ctx, &eventbusv1.GetEventRequest{EventId: registered.ID})
	if err != nil {
		t.Fatal(err)
	}
	if v := reg.GetEvent().GetData().AsMap()["value"]; fmt.Sprint(v) != "[not an object]" {
		t.Errorf("non-object data = %v", reg.GetEvent().GetData())
	}
	if _, err := s.client.GetEvent(ctx, &eventbusv1.GetEventRequest{EventId: "missing"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetEvent(missing) = %v, want NotFound", err)
	}
	if _, err := s.client.GetEvent(ctx, &eventbusv1.GetEventRequest{EventId: "bad id!"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetEvent(bad id) = %v, want InvalidArgument", err)
	}

	ids := func(resp *eventbusv1.ListEventsResponse) []string {
		var out []string
		for _, e := range resp.GetEvents() {
			out = append(out, e.GetId())
		}
		return out
	}
	tests := []struct {
		name string
		req  *eventbusv1.ListEventsRequest
		want []string // newest first
	}{
		{name: "all", req: &eventbusv1.ListEventsRequest{}, want: []string{registered.ID, joined.ID, sent.ID}},
		{name: "by type", req: &eventbusv1.ListEventsRequest{Type: eventbus.TypeUserJoined}, want: []string{joined.ID}},
		{name: "by source", req: &eventbusv1.ListEventsRequest{Source: "chatservice"}, want: []string{joined.ID, sent.ID}},
		{name: "by subject", req: &eventbusv1.ListEventsRequest{SubjectId: "u1"}, want: []string{registered.ID}},
		{name: "by time", req: &eventbusv1.ListEventsRequest{
			StartTime: timestamppb.New(joined.Timestamp),
			EndTime:   timestamppb.New(registered.Timestamp),
		}, want: []string{joined.ID}},
		{name: "none", req: &eventbusv1.ListEventsRequest{Type: "nothing.here"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.client.ListEvents(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(ids(resp)) != fmt.Sprint(tt.want) {
				t.Errorf("ListEvents = %v, want %v", ids(resp), tt.want)
			}
		})
	}

	// Pagination: one event per page, newest first, then the end.
	var paged []string
	token := ""
	for range 5 {
		resp, err := s.client.ListEvents(ctx, &eventbusv1.ListEventsRequest{PageSize: 1, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, ids(resp)...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(paged) != fmt.Sprint([]string{registered.ID, joined.ID, sent.ID}) {
		t.Errorf("paged = %v", paged)
	}
	invalid := []*eventbusv1.ListEventsRequest{
		{PageToken: "garbage"},
		{PageSize: 101},
		{StartTime: timestamppb.New(time.Now()), EndTime: timestamppb.New(time.Now().Add(-time.Hour))},
		{Type: "Bad Type"},
	}
	for _, req := range invalid {
		if _, err := s.client.ListEvents(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("ListEvents(%v) = %v, want InvalidArgument", req, err)
		}
	}
}

// TestDeadLettersThroughAPI: an event that a consumer always fails lands in
// the DLQ with its payload and reason, shows up in ListDeadLetters, and
// RetryDeadLetter delivers it to the consumer again; Discard removes one.
func TestDeadLettersThroughAPI(t *testing.T) {
	h := newHarness(t)
	s := h.start(t, h.cfg)
	ctx := testCtx(t)

	var healed atomic.Bool
	var mu sync.Mutex
	deliveries := map[string]int{}
	nc := h.env.NATS(t)
	durable := testenv.Unique("notify")
	cons, err := eventbus.NewConsumer(ctx, nc, eventbus.ConsumerConfig{
		Names: h.names, Durable: durable, Types: []string{eventbus.TypeMessageSent},
		MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}, PullWait: 300 * time.Millisecond,
		Handler: func(_ context.Context, ev eventbus.Event) error {
			mu.Lock()
			deliveries[ev.ID]++
			mu.Unlock()
			if healed.Load() {
				return nil
			}
			return errors.New("smtp server is down")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-consDone; err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})

	poison := h.publish(t, eventbus.TypeMessageSent, "chatservice", "chan1", map[string]string{"text": "retry me"})
	other := h.publish(t, eventbus.TypeMessageSent, "chatservice", "chan1", map[string]string{"text": "discard me"})
	var list *eventbusv1.ListDeadLettersResponse
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		list, err = s.client.ListDeadLetters(ctx, &eventbusv1.ListDeadLettersRequest{})
		if err != nil {
			return err
		}
		if len(list.GetDeadLetters()) != 2 {
			return fmt.Errorf("%d dead letters", len(list.GetDeadLetters()))
		}
		return nil
	})
	byEvent := map[string]*eventbusv1.DeadLetter{}
	for _, dl := range list.GetDeadLetters() {
		byEvent[dl.GetEvent().GetId()] = dl
	}
	dl := byEvent[poison.ID]
	if dl == nil {
		t.Fatalf("no dead letter for %s in %v", poison.ID, list)
	}
	if dl.GetConsumer() != durable || dl.GetDeliveries() != 2 || dl.GetReason() != "failed 2 deliveries: smtp server is down" ||
		dl.GetEvent().GetData().AsMap()["text"] != "retry me" || dl.GetFailedAt() == nil || dl.GetStreamSequence() == 0 {
		t.Errorf("dead letter = %v", dl)
	}
	// Newest (highest id) first.
	if a, b := list.GetDeadLetters()[0].GetId(), list.GetDeadLetters()[1].GetId(); len(a) < len(b) || len(a) == len(b) && a < b {
		t.Errorf("dead letters not newest first: %s before %s", a, b)
	}

	healed.Store(true)
	if _, err := s.client.RetryDeadLetter(ctx, &eventbusv1.RetryDeadLetterRequest{DeadLetterId: dl.GetId()}); err != nil {
		t.Fatalf("RetryDeadLetter: %v", err)
	}
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if deliveries[poison.ID] != 3 {
			return fmt.Errorf("%d deliveries of the retried event", deliveries[poison.ID])
		}
		return nil
	})
	if _, err := s.client.RetryDeadLetter(ctx, &eventbusv1.RetryDeadLetterRequest{DeadLetterId: dl.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("second RetryDeadLetter = %v, want NotFound", err)
	}
	if _, err := s.client.DiscardDeadLetter(ctx, &eventbusv1.DiscardDeadLetterRequest{DeadLetterId: byEvent[other.ID].GetId()}); err != nil {
		t.Fatalf("DiscardDeadLetter: %v", err)
	}
	if _, err := s.client.DiscardDeadLetter(ctx, &eventbusv1.DiscardDeadLetterRequest{DeadLetterId: byEvent[other.ID].GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("second DiscardDeadLetter = %v, want NotFound", err)
	}
	if list, err := s.client.ListDeadLetters(ctx, &eventbusv1.ListDeadLettersRequest{}); err != nil || len(list.GetDeadLetters()) != 0 {
		t.Errorf("after retry and discard: %v, %v", list, err)
	}
	// The audit log holds the retried event once, although it went through
	// the stream twice.
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if n := h.count(t); n != 2 {
			return fmt.Errorf("%d events recorded", n)
		}
		return nil
	})
}

func TestAdminCheck(t *testing.T) {
	h := newHarness(t)
	cfg := h.cfg
	var authCalls atomic.Int64
	cfg.Auth = func(ctx context.Context, _ string) (context.Context, error) {
		authCalls.Add(1)
		return ctx, nil
	}
	cfg.RequireAdmin = func(context.Context) error {
		return status.Error(codes.PermissionDenied, "requires the admin role")
	}
	s := h.start(t, cfg)
	ctx := testCtx(t)
	calls := []struct {
		name string
		call func() error
	}{
		{"ListEvents", func() error { _, err := s.client.ListEvents(ctx, &eventbusv1.ListEventsRequest{}); return err }},
		{"GetEvent", func() error { _, err := s.client.GetEvent(ctx, &eventbusv1.GetEventRequest{EventId: "x"}); return err }},
		{"ListDeadLetters", func() error {
			_, err := s.client.ListDeadLetters(ctx, &eventbusv1.ListDeadLettersRequest{})
			return err
		}},
		{"RetryDeadLetter", func() error {
			_, err := s.client.RetryDeadLetter(ctx, &eventbusv1.RetryDeadLetterRequest{DeadLetterId: "1"})
			return err
		}},
		{"DiscardDeadLetter", func() error {
			_, err := s.client.DiscardDeadLetter(ctx, &eventbusv1.DiscardDeadLetterRequest{DeadLetterId: "1"})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s = %v, want PermissionDenied", c.name, err)
			}
		})
	}
	if authCalls.Load() != int64(len(calls)) {
		t.Errorf("auth hook called %d times, want %d", authCalls.Load(), len(calls))
	}
}

// TestBurstWithRestart: 10,000 events (some published twice) with the
// service restarted in the middle end up in the audit log exactly once each.
func TestBurstWithRestart(t *testing.T) {
	h := newHarness(t)
	const n = 10000
	evs := make([]eventbus.Event, n)
	for i := range evs {
		ev, err := eventbus.NewEvent(eventbus.TypeMessageSent, "chatservice", fmt.Sprintf("chan%d", i%50), map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	start := time.Now()
	first := h.start(t, h.cfg)
	ctx := testCtx(t)
	// Publish in chunks while the service consumes; republish a few to
	// show duplicates are dropped.
	pubDone := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += 500 {
			if err := h.pub.PublishBatch(ctx, evs[i:min(i+500, n)]); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- h.pub.PublishBatch(ctx, evs[:100])
	}()
	// Progress is read from the audit consumer's JetStream state, which is
	// cheap; counting documents scans the collection on FerretDB and would
	// compete with the inserts being measured. An event is acked only after
	// its insert, so the ack floor is a lower bound of what is recorded.
	acked := func() (uint64, uint64) {
		c, err := h.js.Consumer(ctx, h.names.EventsStream, DefaultDurable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.AckFloor.Stream, info.NumPending + uint64(info.NumAckPending)
	}
	testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if floor, _ := acked(); floor < n/3 {
			return fmt.Errorf("ack floor %d", floor)
		}
		return nil
	})
	first.stop(t)
	mid, _ := acked()
	if mid >= n {
		t.Fatalf("all %d events recorded before the restart: the restart tested nothing", mid)
	}
	h.start(t, h.cfg)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 90*time.Second, 50*time.Millisecond, func() error {
		if floor, left := acked(); floor < n || left > 0 {
			return fmt.Errorf("ack floor %d, %d left", floor, left)
		}
		return nil
	})
	t.Logf("%d events recorded in %v (ack floor %d at the restart)", n, time.Since(start).Round(time.Millisecond), mid)

	cur, err := h.db.Collection("events").Find(ctx, bson.D{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for _, d := range docs {
		stored[d.ID]++
	}
	for _, ev := range evs {
		if stored[ev.ID] != 1 {
			t.Errorf("event %s stored %d times", ev.ID, stored[ev.ID])
		}
	}
	if len(docs) != n {
		t.Errorf("%d documents, want %d", len(docs), n)
	}
}
