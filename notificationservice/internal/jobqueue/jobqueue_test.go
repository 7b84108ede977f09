package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fixture is one test's own streams on the shared NATS server.
type fixture struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream
	q   *Queue
	rec *recorder
}

func newFixture(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	// The embedded servers start on first use and live for the whole
	// binary: start them before taking the goroutine baseline.
	env := testenv.New(t)
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
	f := &fixture{rec: &recorder{}}
	f.cfg = Config{
		Stream: testenv.Unique("NJ"), SubjectPrefix: testenv.Unique("nj"),
		DLQStream: testenv.Unique("NDLQ"), DLQSubjectPrefix: testenv.Unique("ndlq"),
		DurablePrefix: "w", Backoff: []time.Duration{50 * time.Millisecond}, PullWait: 200 * time.Millisecond,
		OnResult: f.rec.add,
	}
	if mutate != nil {
		mutate(&f.cfg)
	}
	f.nc = env.NATS(t)
	var err error
	if f.js, err = jetstream.New(f.nc); err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(context.Background(), f.js, f.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{f.cfg.Stream, f.cfg.DLQStream} {
			if err := f.js.DeleteStream(ctx, s); err != nil {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	})
	if f.q, err = NewQueue(f.nc, f.cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs a worker for the channel until the test ends.
func (f *fixture) start(t *testing.T, ch notify.Channel, h Handler) {
	t.Helper()
	w, err := NewWorker(context.Background(), f.nc, f.cfg, ch, h)
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, w)
}

func (f *fixture) run(t *testing.T, w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
	})
}

func (f *fixture) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// waitEmpty waits for the work queue to be empty: acks and terms are
// applied by the server asynchronously.
func (f *fixture) waitEmpty(t *testing.T) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := f.streamMsgs(t, f.cfg.Stream); n != 0 {
			return fmt.Errorf("%d jobs left in the work queue", n)
		}
		return nil
	})
}

func (f *fixture) deadLetters(t *testing.T, ch notify.Channel) []eventbus.DeadLetter {
	t.Helper()
	q, err := eventbus.NewDeadLetterQueue(f.nc, f.cfg.Names())
	if err != nil {
		t.Fatal(err)
	}
	page, err := q.List(context.Background(), eventbus.DeadLetterQuery{Consumer: f.cfg.Durable(ch), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return page.DeadLetters
}

type recorder struct {
	mu      sync.Mutex
	results []Result
}

func (r *recorder) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) outcomes(key string) []Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Outcome
	for _, res := range r.results {
		if res.JobKey == key {
			out = append(out, res.Outcome)
		}
	}
	return out
}

func (r *recorder) last(key string) (Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.results) - 1; i >= 0; i-- {
		if r.results[i].JobKey == key {
			return r.results[i], true
		}
	}
	return Result{}, false
}

// handler answers each delivery with the next scripted error (nil when the
// script is used up) and records what it saw.
type handler struct {
	mu       sync.Mutex
	script   []error
	calls    []time.Time
	attempts []notify.Attempt
	jobs     []notify.Job
	gaveUp   []string
	always   error
}

func (h *handler) Deliver(_ context.Context, job notify.Job, at notify.Attempt) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, time.Now())
	h.attempts = append(h.attempts, at)
	h.jobs = append(h.jobs, job)
	if h.always != nil {
		return h.always
	}
	if len(h.script) == 0 {
		return nil
	}
	err := h.script[0]
	h.script = h.script[1:]
	return err
}

func (h *handler) GiveUp(_ context.Context, job notify.Job, reason string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gaveUp = append(h.gaveUp, job.Key()+": "+reason)
	return nil
}

func (h *handler) snapshot() ([]time.Time, []notify.Attempt, []notify.Job, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.calls...), append([]notify.Attempt(nil), h.attempts...),
		append([]notify.Job(nil), h.jobs...), append([]string(nil), h.gaveUp...)
}

func job(id string, ch notify.Channel) notify.Job {
	return notify.Job{NotificationID: id, UserID: "u1", Channel: ch, Target: "d1", Kind: notify.KindManual,
		Title: "hello", Data: map[string]string{"k": "v"}, Priority: notify.PriorityHigh, CreatedAt: time.Now().UTC()}
}

func waitOutcome(t *testing.T, rec *recorder, key string, want Outcome) Result {
	t.Helper()
	var got Result
	testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		r, ok := rec.last(key)
		if !ok || r.Outcome != want {
			return fmt.Errorf("outcomes of %s so far: %v, want %s", key, rec.outcomes(key), want)
		}
		got = r
		return nil
	})
	return got
}

func TestEnqueueIsIdempotentAndDelivered(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	j := job("n1", notify.ChannelPush)
	for range 3 {
		if err := f.q.Enqueue(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	// A batch: one new, one repeat.
	if err := f.q.Enqueue(ctx, j, job("n2", notify.ChannelPush)); err != nil {
		t.Fatal(err)
	}
	if n := f.streamMsgs(t, f.cfg.Stream); n != 2 {
		t.Fatalf("stream holds %d jobs, want 2 (de-duplicated by key)", n)
	}
	h := &handler{}
	f.start(t, notify.ChannelPush, h)
	waitOutcome(t, f.rec, j.Key(), OutcomeAcked)
	waitOutcome(t, f.rec, job("n2", notify.ChannelPush).Key(), OutcomeAcked)
	_, attempts, jobs, _ := h.snapshot()
	if len(jobs) != 2 {
		t.Fatalf("%d deliveries, want 2", len(jobs))
	}
	if attempts[0] != (notify.Attempt{Number: 1}) {
		t.Errorf("attempt = %+v, want first and not final", attempts[0])
	}
	got := jobs[0]
	if got.NotificationID != "n1" && got.NotificationID != "n2" || got.Title != "hello" || got.Data["k"] != "v" || got.Priority != notify.PriorityHigh {
		t.Errorf("job = %+v", got)
	}
	f.waitEmpty(t)
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, nil)
	h := &handler{script: []error{notify.Temporary(errors.New("429"), 1500*time.Millisecond), errors.New("mongo down")}}
	f.start(t, notify.ChannelPush, h)
	j := job("n1", notify.ChannelPush)
	if err := f.q.Enqueue(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	waitOutcome(t, f.rec, j.Key(), OutcomeAcked)
	calls, attempts, _, _ := h.snapshot()
	if len(calls) != 3 {
		t.Fatalf("%d deliveries, want 3", len(calls))
	}
	if gap := calls[1].Sub(calls[0]); gap < 1500*time.Millisecond {
		t.Errorf("redelivered after %s, before the provider's Retry-After of 1.5s", gap)
	}
	if gap := calls[2].Sub(calls[1]); gap > 1200*time.Millisecond {
		t.Errorf("plain failure redelivered after %s, want the 50ms backoff", gap)
	}
	if attempts[2].Number != 3 {
		t.Errorf("third attempt numbered %d", attempts[2].Number)
	}
	outs := f.rec.outcomes(j.Key())
	if fmt.Sprint(outs) != "[retry retry acked]" {
		t.Errorf("outcomes = %v", outs)
	}
}

func TestMaxDeliveriesGoToTheDLQ(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxDeliver = 3 })
	h := &handler{always: notify.Temporary(errors.New("503 unavailable"), 0)}
	f.start(t, notify.ChannelEmail, h)
	j := job("n1", notify.ChannelEmail)
	if err := f.q.Enqueue(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	waitOutcome(t, f.rec, j.Key(), OutcomeDeadLettered)
	_, attempts, _, _ := h.snapshot()
	want := []notify.Attempt{{Number: 1}, {Number: 2}, {Number: 3, Final: true}}
	if fmt.Sprint(attempts) != fmt.Sprint(want) {
		t.Errorf("attempts = %v, want %v", attempts, want)
	}
	dls := f.deadLetters(t, notify.ChannelEmail)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.Event.ID != j.Key() || dl.Deliveries != 3 || dl.Consumer != f.cfg.Durable(notify.ChannelEmail) || dl.Stream != f.cfg.Stream {
		t.Errorf("dead letter = %+v", dl)
	}
	var inside notify.Job
	if err := dl.Event.Decode(&inside); err != nil || inside.NotificationID != "n1" {
		t.Errorf("dead letter job = %+v, %v", inside, err)
	}
	f.waitEmpty(t)
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	h := &handler{always: notify.Permanent(errors.New("400 INVALID_ARGUMENT"))}
	f.start(t, notify.ChannelPush, h)
	j := job("n1", notify.ChannelPush)
	if err := f.q.Enqueue(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	res := waitOutcome(t, f.rec, j.Key(), OutcomeDeadLettered)
	if res.Deliveries != 1 {
		t.Errorf("dead-lettered after %d deliveries, want 1", res.Deliveries)
	}
	dls := f.deadLetters(t, notify.ChannelPush)
	if len(dls) != 1 || dls[0].Reason == "" {
		t.Fatalf("dead letters = %+v", dls)
	}

	// An operator retries it: the job comes back and this time succeeds.
	h.mu.Lock()
	h.always = nil
	h.mu.Unlock()
	q, err := eventbus.NewDeadLetterQueue(f.nc, f.cfg.Names())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Retry(context.Background(), dls[0].Seq); err != nil {
		t.Fatalf("retry dead letter: %v", err)
	}
	waitOutcome(t, f.rec, j.Key(), OutcomeAcked)
}

// TestJobWithoutResultIsDeadLettered plays a worker that dies during every
// delivery: nobody settles the job, and the max-deliveries advisory is what
// dead-letters it.
func TestJobWithoutResultIsDeadLettered(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxDeliver = 2; c.AckWait = time.Second })
	h := &handler{}
	w, err := NewWorker(context.Background(), f.nc, f.cfg, notify.ChannelWebPush, h)
	if err != nil {
		t.Fatal(err)
	}
	j := job("n1", notify.ChannelWebPush)
	if err := f.q.Enqueue(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	// The "crashed" deliveries: fetched, never acknowledged.
	cons, err := f.js.Consumer(context.Background(), f.cfg.Stream, f.cfg.Durable(notify.ChannelWebPush))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
			b, err := cons.Fetch(1, jetstream.FetchMaxWait(500*time.Millisecond))
			if err != nil {
				return err
			}
			for range b.Messages() {
				return nil
			}
			return fmt.Errorf("delivery %d not yet redelivered", i+1)
		})
	}
	f.run(t, w) // its next pull makes the server emit the advisory
	waitOutcome(t, f.rec, j.Key(), OutcomeDeadLettered)
	calls, _, _, gaveUp := h.snapshot()
	if len(calls) != 0 {
		t.Errorf("the handler ran %d times for a job out of deliveries", len(calls))
	}
	if len(gaveUp) != 1 || gaveUp[0] != j.Key()+": "+ReasonNoResult {
		t.Errorf("GiveUp calls = %v", gaveUp)
	}
	if dls := f.deadLetters(t, notify.ChannelWebPush); len(dls) != 1 || dls[0].Reason != ReasonNoResult {
		t.Errorf("dead letters = %+v", dls)
	}
	f.waitEmpty(t)
}

func TestRetryDelay(t *testing.T) {
	w := &Worker{cfg: Config{Backoff: []time.Duration{time.Second, 10 * time.Second}, MaxRetryAfter: time.Minute}}
	tests := []struct {
		n          uint64
		retryAfter time.Duration
		want       time.Duration
	}{
		{1, 0, time.Second},
		{2, 0, 10 * time.Second},
		{7, 0, 10 * time.Second},
		{1, 30 * time.Second, 30 * time.Second},
		{2, 5 * time.Second, 10 * time.Second},
		{1, time.Hour, time.Minute},
	}
	for _, tt := range tests {
		if got := w.retryDelay(tt.n, tt.retryAfter); got != tt.want {
			t.Errorf("retryDelay(%d, %s) = %s, want %s", tt.n, tt.retryAfter, got, tt.want)
		}
	}
}

// BenchmarkQueueThroughput measures jobs through the work queue: published
// in batches of 100 (one PublishBatch each), delivered to a handler that
// does nothing, acknowledged with DoubleAck, 8 deliveries in flight.
func BenchmarkQueueThroughput(b *testing.B) {
	env := testenv.New(b)
	cfg := Config{Stream: testenv.Unique("NJB"), SubjectPrefix: testenv.Unique("njb"), DLQStream: testenv.Unique("NDLQB"),
		DLQSubjectPrefix: testenv.Unique("ndlqb"), DurablePrefix: "bench", PullWait: 200 * time.Millisecond}
	var mu sync.Mutex
	acked := 0
	cfg.OnResult = func(r Result) {
		if r.Outcome == OutcomeAcked {
			mu.Lock()
			acked++
			mu.Unlock()
		}
	}
	nc := env.NATS(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := EnsureStreams(ctx, js, cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, s := range []string{cfg.Stream, cfg.DLQStream} {
			_ = js.DeleteStream(context.Background(), s)
		}
	})
	q, err := NewQueue(nc, cfg)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWorker(ctx, nc, cfg, notify.ChannelPush, &handler{})
	if err != nil {
		b.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()

	b.ResetTimer()
	batch := make([]notify.Job, 0, 100)
	for i := range b.N {
		batch = append(batch, job(fmt.Sprintf("b%d", i), notify.ChannelPush))
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := q.Enqueue(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	testenv.CheckFor(b, 2*time.Minute, time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if acked < b.N {
			return fmt.Errorf("%d of %d jobs acked", acked, b.N)
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
