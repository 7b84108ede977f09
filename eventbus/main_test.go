package eventbus

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/parleyhq/parley/platform/testenv"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// fixture is one test's private corner of a NATS server: its own stream
// names and subject prefixes, so tests sharing a real server in CI never see
// each other's events. The streams are deleted when the test ends.
type fixture struct {
	env   *testenv.Env
	names Names
	nc    *nats.Conn
	js    jetstream.JetStream
	pub   *Publisher
}

// newFixture prepares a test's streams.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	return setupFixture(t, false)
}

// newLeakCheckedFixture is newFixture plus a goroutine leak check: every
// goroutine started from here on (connections, consumers, the embedded
// server's side of the streams) must be gone when the test ends.
func newLeakCheckedFixture(t *testing.T) *fixture {
	t.Helper()
	return setupFixture(t, true)
}

func setupFixture(t *testing.T, leakCheck bool) *fixture {
	t.Helper()
	env := testenv.New(t)
	if leakCheck {
		checkLeaks(t)
	}
	f := &fixture{env: env, names: Names{
		EventsStream:     testenv.Unique("EV"),
		SubjectPrefix:    testenv.Unique("ev"),
		DLQStream:        testenv.Unique("DLQ"),
		DLQSubjectPrefix: testenv.Unique("dlq"),
	}}
	f.nc = env.NATS(t)
	var err error
	if f.js, err = jetstream.New(f.nc); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	if err := EnsureStreams(ctx, f.js, StreamConfig{Names: f.names, MaxBytes: 256 << 20, DLQMaxBytes: 64 << 20, DuplicateWindow: 2 * time.Minute}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{f.names.EventsStream, f.names.DLQStream} {
			if err := f.js.DeleteStream(ctx, s); err != nil {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
	})
	if f.pub, err = NewPublisher(f.nc, PublisherConfig{Names: f.names}); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkLeaks verifies at the end of the test that every goroutine started
// after this call has stopped. Register it before the connections the test
// creates, so it runs after their cleanups.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// testContext is cancelled when the test ends, and after two minutes at most.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (f *fixture) newEvent(t testing.TB, typ, subject string, data any) Event {
	t.Helper()
	ev, err := NewEvent(typ, "test", subject, data)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// streamMsgs is the number of messages in a stream.
func (f *fixture) streamMsgs(t testing.TB, name string) uint64 {
	t.Helper()
	s, err := f.js.Stream(testContext(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// running is a consumer started in the background by startConsumer.
type running struct {
	cons   *Consumer
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // Run's result, set before done is closed
}

// wait waits for Run to return on its own.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not return within 30s")
		return nil
	}
}

// stop cancels the consumer and waits for Run to return.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(30 * time.Second):
		t.Fatal("consumer did not stop within 30s")
		return nil
	}
}

func (f *fixture) startConsumer(t testing.TB, nc *nats.Conn, cfg ConsumerConfig) *running {
	t.Helper()
	cfg.Names = f.names
	if cfg.PullWait == 0 {
		cfg.PullWait = 300 * time.Millisecond
	}
	c, err := NewConsumer(testContext(t), nc, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cons: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("consumer did not stop within 30s")
		}
	})
	return r
}

// recorder collects what a consumer did, for assertions.
type recorder struct {
	mu      sync.Mutex
	results []Result
	handled map[string]int // event id -> handler calls
}

func newRecorder() *recorder { return &recorder{handled: map[string]int{}} }

func (r *recorder) onResult(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
}

func (r *recorder) handle(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled[id]++
	return r.handled[id]
}

// outcomes counts results per outcome, optionally for one event id.
func (r *recorder) count(o Outcome, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, res := range r.results {
		if res.Outcome == o && (id == "" || res.Event.ID == id) {
			n++
		}
	}
	return n
}

// ids returns the event ids with outcome o.
func (r *recorder) ids(o Outcome) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for _, res := range r.results {
		if res.Outcome == o {
			m[res.Event.ID]++
		}
	}
	return m
}

func (r *recorder) handledCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.handled)
}

// history describes what happened to one event, for failure messages.
func (r *recorder) history(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := fmt.Sprintf("handled %d", r.handled[id])
	for _, res := range r.results {
		if res.Event.ID == id {
			out += fmt.Sprintf(", %s (delivery %d, seq %d, err %v)", res.Outcome, res.Deliveries, res.StreamSeq, res.Err)
		}
	}
	return out
}
