package eventbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/testenv"
)

const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestPublishConsume(t *testing.T) {
	tests := []struct {
		name  string
		batch bool
	}{
		{name: "handler"},
		{name: "batch handler", batch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newLeakCheckedFixture(t)
			ctx := WithTraceParent(testContext(t), traceParent, "k=v")
			const n = 50
			sent := map[string]Event{}
			for i := range n {
				ev := f.newEvent(t, TypeMessageSent, fmt.Sprintf("c%d", i%3), map[string]int{"i": i})
				sent[ev.ID] = ev
				if err := f.pub.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}

			rec := newRecorder()
			var mu sync.Mutex
			got := map[string]Event{}
			traces := map[string]string{}
			cfg := ConsumerConfig{Durable: testenv.Unique("c"), OnResult: rec.onResult}
			if tt.batch {
				cfg.BatchHandler = func(ctx context.Context, evs []Event) []error {
					mu.Lock()
					defer mu.Unlock()
					for _, ev := range evs {
						got[ev.ID] = ev
						traces[ev.ID] = TraceParent(ctx) + "|" + TraceState(ctx)
					}
					return nil
				}
			} else {
				cfg.Handler = func(ctx context.Context, ev Event) error {
					mu.Lock()
					defer mu.Unlock()
					got[ev.ID] = ev
					traces[ev.ID] = TraceParent(ctx) + "|" + TraceState(ctx)
					return nil
				}
			}
			r := f.startConsumer(t, f.env.NATS(t), cfg)
			testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
				if a := rec.count(OutcomeAcked, ""); a != n {
					return fmt.Errorf("%d of %d acked", a, n)
				}
				return nil
			})
			if err := r.stop(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for id, want := range sent {
				ev, ok := got[id]
				if !ok {
					t.Errorf("event %s not consumed", id)
					continue
				}
				if ev.Type != want.Type || ev.Subject != want.Subject || string(ev.Data) != string(want.Data) || !ev.Timestamp.Equal(want.Timestamp) {
					t.Errorf("consumed %+v, want %+v", ev, want)
				}
				if traces[id] != traceParent+"|k=v" {
					t.Errorf("handler trace context = %q, want the publisher's", traces[id])
				}
			}
			if a := rec.count(OutcomeAcked, ""); a != n {
				t.Errorf("%d acks, want exactly %d", a, n)
			}
		})
	}
}

func TestConsumerTypeFilter(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	joined := f.newEvent(t, TypeUserJoined, "c1", nil)
	sent := f.newEvent(t, TypeMessageSent, "c1", nil)
	for _, ev := range []Event{sent, joined} {
		if err := f.pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	f.startConsumer(t, f.nc, ConsumerConfig{
		Durable: testenv.Unique("c"), Types: []string{TypeUserJoined, TypeUserLeft},
		Handler:  func(_ context.Context, ev Event) error { rec.handle(ev.ID); return nil },
		OnResult: rec.onResult,
	})
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if rec.count(OutcomeAcked, joined.ID) != 1 {
			return errors.New("user.joined not consumed")
		}
		return nil
	})
	if rec.handle(sent.ID) != 1 { // 1 = only this call: the consumer never saw it
		t.Error("a consumer filtered on user.* received message.sent")
	}
}

// TestRetryWithBackoff: a handler that fails twice then succeeds is
// redelivered after the configured delays and acked exactly once.
func TestRetryWithBackoff(t *testing.T) {
	f := newLeakCheckedFixture(t)
	ctx := testContext(t)
	backoff := []time.Duration{300 * time.Millisecond, 700 * time.Millisecond}
	ev := f.newEvent(t, TypeMessageSent, "c1", map[string]string{"text": "flaky"})

	rec := newRecorder()
	var mu sync.Mutex
	var calls []time.Time
	f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: testenv.Unique("c"), Backoff: backoff, MaxDeliver: 5, OnResult: rec.onResult,
		Handler: func(_ context.Context, got Event) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Now())
			if len(calls) <= 2 {
				return fmt.Errorf("transient failure %d", len(calls))
			}
			return nil
		},
	})
	if err := f.pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if rec.count(OutcomeAcked, ev.ID) != 1 {
			return errors.New("not acked yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 3 {
		t.Fatalf("handler called %d times, want 3", len(calls))
	}
	for i, want := range backoff {
		if gap := calls[i+1].Sub(calls[i]); gap < want {
			t.Errorf("redelivery %d came after %v, want at least %v", i+1, gap, want)
		}
	}
	if got := rec.count(OutcomeRetry, ev.ID); got != 2 {
		t.Errorf("%d retries reported, want 2", got)
	}
	if got := rec.count(OutcomeAcked, ev.ID); got != 1 {
		t.Errorf("acked %d times, want once", got)
	}
	if n := f.streamMsgs(t, f.names.DLQStream); n != 0 {
		t.Errorf("DLQ holds %d records, want 0", n)
	}
}

// TestDeadLetterAfterMaxDeliver: a handler that always fails lands in the
// DLQ after MaxDeliver deliveries, with its original payload and the reason;
// retrying the dead letter delivers it again.
func TestDeadLetterAfterMaxDeliver(t *testing.T) {
	f := newLeakCheckedFixture(t)
	ctx := WithTraceParent(testContext(t), traceParent)
	ev := f.newEvent(t, TypeMessageSent, "c1", map[string]string{"text": "poison"})
	var healed atomic.Bool
	rec := newRecorder()
	durable := testenv.Unique("c")
	f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: durable, MaxDeliver: 3, Backoff: []time.Duration{20 * time.Millisecond}, OnResult: rec.onResult,
		Handler: func(_ context.Context, got Event) error {
			rec.handle(got.ID)
			if healed.Load() {
				return nil
			}
			return errors.New("downstream says no")
		},
	})
	if err := f.pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	dlq, err := NewDeadLetterQueue(f.nc, f.names)
	if err != nil {
		t.Fatal(err)
	}
	var page DeadLetterPage
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		page, err = dlq.List(ctx, DeadLetterQuery{Limit: 10})
		if err != nil {
			return err
		}
		if len(page.DeadLetters) != 1 {
			return fmt.Errorf("%d dead letters", len(page.DeadLetters))
		}
		return nil
	})
	dl := page.DeadLetters[0]
	if dl.Event.ID != ev.ID || string(dl.Event.Data) != `{"text":"poison"}` || dl.Event.Type != ev.Type || dl.Event.Subject != "c1" {
		t.Errorf("dead letter event = %+v, want the original %+v", dl.Event, ev)
	}
	if dl.Consumer != durable || dl.Deliveries != 3 || dl.Stream != f.names.EventsStream || dl.StreamSequence != 1 ||
		dl.Subject != f.names.Subject(TypeMessageSent) || dl.FailedAt.IsZero() {
		t.Errorf("dead letter metadata = %+v", dl)
	}
	if want := "failed 3 deliveries: downstream says no"; dl.Reason != want {
		t.Errorf("reason = %q, want %q", dl.Reason, want)
	}
	// The consumer reports the outcome after recording the dead letter
	// and terminating the message, so the report may trail the record.
	testenv.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if rec.count(OutcomeDeadLettered, ev.ID) != 1 || rec.count(OutcomeRetry, ev.ID) != 2 {
			return fmt.Errorf("outcomes: %d dead-lettered, %d retries", rec.count(OutcomeDeadLettered, ev.ID), rec.count(OutcomeRetry, ev.ID))
		}
		return nil
	})
	if got, err := dlq.Get(ctx, dl.Seq); err != nil || got.Event.ID != ev.ID {
		t.Errorf("Get = %+v, %v", got, err)
	}
	if p, err := dlq.List(ctx, DeadLetterQuery{Consumer: durable + "x", Limit: 10}); err != nil || len(p.DeadLetters) != 0 {
		t.Errorf("List(other consumer) = %d, %v", len(p.DeadLetters), err)
	}

	// Retry: the event is delivered again, this time successfully.
	healed.Store(true)
	if _, err := dlq.Retry(ctx, dl.Seq); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if rec.count(OutcomeAcked, ev.ID) != 1 {
			return errors.New("retried event not acked")
		}
		return nil
	})
	if _, err := dlq.Get(ctx, dl.Seq); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("Get after retry = %v, want ErrDeadLetterNotFound", err)
	}
	if _, err := dlq.Retry(ctx, dl.Seq); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("second Retry = %v, want ErrDeadLetterNotFound", err)
	}
	// The republished copy keeps the event id and the trace context.
	s, err := f.js.Stream(ctx, f.names.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeEvent(raw.Data)
	if err != nil || back.ID != ev.ID {
		t.Errorf("republished event = %+v, %v", back, err)
	}
	if raw.Header.Get(HeaderTraceParent) != traceParent {
		t.Errorf("republished traceparent = %q", raw.Header.Get(HeaderTraceParent))
	}
	if want := ev.ID + ".retry." + fmt.Sprint(dl.Seq); raw.Header.Get("Nats-Msg-Id") != want {
		t.Errorf("republished msg id = %q, want %q", raw.Header.Get("Nats-Msg-Id"), want)
	}
}

func TestPermanentErrorAndUndecodable(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	ev := f.newEvent(t, TypeChannelCreated, "c1", nil)
	rec := newRecorder()
	f.startConsumer(t, f.nc, ConsumerConfig{
		Durable: testenv.Unique("c"), MaxDeliver: 5, OnResult: rec.onResult,
		Handler: func(_ context.Context, got Event) error {
			rec.handle(got.ID)
			return Permanent(errors.New("channel name is invalid"))
		},
	})
	if err := f.pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// A payload that is not an envelope at all.
	if _, err := f.js.Publish(ctx, f.names.Subject("garbage"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	dlq, err := NewDeadLetterQueue(f.nc, f.names)
	if err != nil {
		t.Fatal(err)
	}
	var page DeadLetterPage
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if page, err = dlq.List(ctx, DeadLetterQuery{Limit: 10}); err != nil {
			return err
		}
		if len(page.DeadLetters) != 2 {
			return fmt.Errorf("%d dead letters", len(page.DeadLetters))
		}
		return nil
	})
	for _, dl := range page.DeadLetters {
		switch {
		case dl.Event.ID == ev.ID:
			if dl.Deliveries != 1 || dl.Reason != "permanent: channel name is invalid" {
				t.Errorf("permanent dead letter = %+v", dl)
			}
		case string(dl.Payload) == "not json":
			if dl.Deliveries != 1 || dl.Subject != f.names.Subject("garbage") {
				t.Errorf("undecodable dead letter = %+v", dl)
			}
		default:
			t.Errorf("unexpected dead letter %+v", dl)
		}
	}
	if rec.handle(ev.ID) != 2 {
		t.Error("a permanent failure was retried")
	}
	// Discard removes it for good.
	if err := dlq.Discard(ctx, page.DeadLetters[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := dlq.Discard(ctx, page.DeadLetters[0].Seq); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("second Discard = %v, want ErrDeadLetterNotFound", err)
	}
	if p, err := dlq.List(ctx, DeadLetterQuery{Limit: 10}); err != nil || len(p.DeadLetters) != 1 {
		t.Errorf("after discard: %d dead letters, %v", len(p.DeadLetters), err)
	}
}

func TestDeadLetterListPaging(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	rec := newRecorder()
	f.startConsumer(t, f.nc, ConsumerConfig{
		Durable: testenv.Unique("c"), OnResult: rec.onResult,
		Handler: func(context.Context, Event) error { return Permanent(errors.New("no")) },
	})
	const n = 7
	for range n {
		if err := f.pub.Publish(ctx, f.newEvent(t, TypeMessageSent, "c", nil)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := rec.count(OutcomeDeadLettered, ""); got != n {
			return fmt.Errorf("%d dead-lettered", got)
		}
		return nil
	})
	dlq, err := NewDeadLetterQueue(f.nc, f.names)
	if err != nil {
		t.Fatal(err)
	}
	for _, newest := range []bool{false, true} {
		seen := map[uint64]bool{}
		var order []uint64
		var cursor uint64
		pages := 0
		for {
			page, err := dlq.List(ctx, DeadLetterQuery{Cursor: cursor, Limit: 3, NewestFirst: newest})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, dl := range page.DeadLetters {
				if seen[dl.Seq] {
					t.Errorf("dead letter %d listed twice", dl.Seq)
				}
				seen[dl.Seq] = true
				order = append(order, dl.Seq)
			}
			if page.Next == 0 {
				break
			}
			cursor = page.Next
		}
		if len(seen) != n || pages != 3 {
			t.Errorf("newest first %v: listed %d dead letters in %d pages, want %d in 3", newest, len(seen), pages, n)
		}
		sorted := slices.IsSorted(order)
		if newest {
			slices.Reverse(order)
			sorted = slices.IsSorted(order)
		}
		if !sorted {
			t.Errorf("newest first %v: order %v", newest, order)
		}
	}
	// A discarded dead letter leaves a hole the newest-first walk skips.
	first, err := dlq.List(ctx, DeadLetterQuery{Limit: 1, NewestFirst: true})
	if err != nil || len(first.DeadLetters) != 1 {
		t.Fatalf("List = %+v, %v", first, err)
	}
	if err := dlq.Discard(ctx, first.DeadLetters[0].Seq); err != nil {
		t.Fatal(err)
	}
	all, err := dlq.List(ctx, DeadLetterQuery{Limit: 100, NewestFirst: true})
	if err != nil || len(all.DeadLetters) != n-1 || all.Next != 0 {
		t.Errorf("after discard: %d dead letters (next %d), %v", len(all.DeadLetters), all.Next, err)
	}
}

// TestMaxDeliveriesAdvisory: an event whose last delivery never produced a
// result (the process died mid-handler) is dead-lettered from JetStream's
// max-deliveries advisory by another instance.
func TestMaxDeliveriesAdvisory(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	durable := testenv.Unique("c")
	ev := f.newEvent(t, TypeMessageSent, "c1", map[string]string{"text": "crash"})

	started := make(chan struct{})
	unblock := make(chan struct{})
	crashed := f.env.NATS(t)
	recA := newRecorder()
	a := f.startConsumer(t, crashed, ConsumerConfig{
		Durable: durable, MaxDeliver: 1, AckWait: time.Second, OnResult: recA.onResult,
		Handler: func(context.Context, Event) error {
			close(started)
			<-unblock
			return nil
		},
	})
	if err := f.pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("handler never started")
	}
	crashed.Close() // the process dies: no ack, no nak, no dead letter
	close(unblock)
	if err := a.wait(t); err == nil {
		t.Error("Run returned nil after its connection was closed")
	}
	if recA.count(OutcomeAckFailed, ev.ID) != 1 {
		t.Errorf("outcomes of the crashed instance: %+v", recA.results)
	}

	recB := newRecorder()
	f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: durable, MaxDeliver: 1, AckWait: time.Second, OnResult: recB.onResult,
		Handler: func(_ context.Context, got Event) error { recB.handle(got.ID); return nil },
	})
	dlq, err := NewDeadLetterQueue(f.nc, f.names)
	if err != nil {
		t.Fatal(err)
	}
	var page DeadLetterPage
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if page, err = dlq.List(ctx, DeadLetterQuery{Consumer: durable, Limit: 10}); err != nil {
			return err
		}
		if len(page.DeadLetters) != 1 {
			return fmt.Errorf("%d dead letters", len(page.DeadLetters))
		}
		return nil
	})
	dl := page.DeadLetters[0]
	if dl.Reason != ReasonMaxDeliveriesNoResult || dl.Event.ID != ev.ID || string(dl.Event.Data) != `{"text":"crash"}` ||
		dl.StreamSequence != 1 || dl.Consumer != durable || dl.Subject != f.names.Subject(TypeMessageSent) {
		t.Errorf("dead letter = %+v", dl)
	}
	if recB.handledCount() != 0 {
		t.Error("the event was delivered beyond MaxDeliver")
	}
}

// TestKillAndResume: a consumer killed mid-stream (its connection dropped,
// handlers still running) resumes after a restart without losing events and
// without handling again any event whose ack was confirmed.
func TestKillAndResume(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	durable := testenv.Unique("c")
	const n = 300
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = f.newEvent(t, TypeMessageSent, "c1", map[string]int{"i": i})
	}
	if err := f.pub.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}

	rec1 := newRecorder()
	conn1 := f.env.NATS(t)
	var handled1 atomic.Int64
	r1 := f.startConsumer(t, conn1, ConsumerConfig{
		Durable: durable, Concurrency: 4, AckWait: time.Second, OnResult: rec1.onResult,
		Handler: func(ctx context.Context, ev Event) error {
			rec1.handle(ev.ID)
			if handled1.Add(1) == 100 {
				conn1.Close() // kill: later acks fail, nothing is handed back
			}
			return nil
		},
	})
	if err := r1.wait(t); err == nil {
		t.Error("Run returned nil after its connection was closed")
	}
	acked1 := rec1.ids(OutcomeAcked)
	if len(acked1) == 0 || len(acked1) >= n {
		t.Fatalf("first run acked %d events, want some but not all", len(acked1))
	}

	rec2 := newRecorder()
	f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: durable, Concurrency: 4, AckWait: time.Second, OnResult: rec2.onResult,
		Handler: func(ctx context.Context, ev Event) error { rec2.handle(ev.ID); return nil },
	})
	// An ack confirmed by the server whose confirmation was lost with the
	// connection counts as ack_failed in run 1 and is (correctly) never
	// redelivered, so "everything handled" is the union of both runs.
	handledAll := func() int {
		rec1.mu.Lock()
		defer rec1.mu.Unlock()
		rec2.mu.Lock()
		defer rec2.mu.Unlock()
		n := len(rec1.handled)
		for id := range rec2.handled {
			if rec1.handled[id] == 0 {
				n++
			}
		}
		return n
	}
	testenv.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if got := handledAll(); got < n {
			return fmt.Errorf("%d of %d handled", got, n)
		}
		return nil
	})
	acked2 := rec2.ids(OutcomeAcked)
	for id := range acked1 {
		if rec2.handle(id) != 1 {
			t.Errorf("event %s was acked by the killed consumer and handled again after restart", id)
		}
	}
	for _, ev := range evs {
		if acked1[ev.ID]+acked2[ev.ID] > 1 {
			t.Errorf("event %s acked %d+%d times, want at most once", ev.ID, acked1[ev.ID], acked2[ev.ID])
		}
	}
}

// TestShutdownUnderLoad: cancelling Run while events keep arriving finishes
// the handlers in flight, acks only handled events, hands the rest back, and
// a restarted consumer handles everything else: nothing is lost.
func TestShutdownUnderLoad(t *testing.T) {
	f := newLeakCheckedFixture(t)
	ctx := testContext(t)
	durable := testenv.Unique("c")
	const n = 1000
	rec1 := newRecorder()
	var inFlight, maxInFlight atomic.Int64
	handler := func(rec *recorder) Handler {
		return func(ctx context.Context, ev Event) error {
			cur := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
					break
				}
			}
			rec.handle(ev.ID)
			// Slow enough that shutdown finds handlers in flight.
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}
	}
	r1 := f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: durable, Concurrency: 8, OnResult: rec1.onResult, Handler: handler(rec1),
	})
	// Publish concurrently with consumption.
	pubDone := make(chan error, 1)
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = f.newEvent(t, TypeMessageSent, "c1", map[string]int{"i": i})
	}
	go func() {
		for _, ev := range evs {
			if err := f.pub.Publish(ctx, ev); err != nil {
				pubDone <- err
				return
			}
		}
		pubDone <- nil
	}()
	testenv.CheckFor(t, 30*time.Second, 5*time.Millisecond, func() error {
		if rec1.handledCount() < 100 {
			return errors.New("not enough handled yet")
		}
		return nil
	})
	if err := r1.stop(t); err != nil {
		t.Fatalf("graceful Run returned %v", err)
	}
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	if got := inFlight.Load(); got != 0 {
		t.Errorf("%d handlers still running after Run returned", got)
	}
	if m := maxInFlight.Load(); m > 8 {
		t.Errorf("%d handlers ran at once, concurrency is 8", m)
	}
	// Every handled event was acked (in-flight handlers finished), and no
	// event was acked without being handled.
	acked1 := rec1.ids(OutcomeAcked)
	for id := range rec1.handled {
		if acked1[id] != 1 {
			t.Errorf("event %s handled before shutdown but acked %d times", id, acked1[id])
		}
	}
	for id, times := range rec1.ids(OutcomeReleased) {
		if rec1.handled[id] != 0 {
			t.Errorf("event %s both handled and released", id)
		}
		// A released event must not bounce back into the closing pull
		// and burn its deliveries.
		if times > 1 {
			t.Errorf("event %s released %d times by one shutdown", id, times)
		}
	}
	if len(acked1) >= n {
		t.Fatalf("shutdown came too late to test anything: all %d acked", n)
	}

	rec2 := newRecorder()
	f.startConsumer(t, f.env.NATS(t), ConsumerConfig{
		Durable: durable, Concurrency: 8, OnResult: rec2.onResult, Handler: handler(rec2),
	})
	testenv.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if got := len(acked1) + len(rec2.ids(OutcomeAcked)); got < n {
			return fmt.Errorf("%d of %d acked", got, n)
		}
		return nil
	})
	acked2 := rec2.ids(OutcomeAcked)
	for _, ev := range evs {
		if acked1[ev.ID]+acked2[ev.ID] != 1 {
			t.Errorf("event %s acked %d+%d times, want exactly once; history: %s | %s", ev.ID, acked1[ev.ID], acked2[ev.ID], rec1.history(ev.ID), rec2.history(ev.ID))
		}
	}
}

func TestConsumerRunTwice(t *testing.T) {
	f := newFixture(t)
	r := f.startConsumer(t, f.nc, ConsumerConfig{Durable: testenv.Unique("c"), Handler: func(context.Context, Event) error { return nil }})
	testenv.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if !r.cons.running.Load() {
			return errors.New("not running yet")
		}
		return nil
	})
	if err := r.cons.Run(context.Background()); !errors.Is(err, ErrConsumerRunning) {
		t.Errorf("second Run = %v, want ErrConsumerRunning", err)
	}
}

func TestHandlerPanicIsRetried(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	ev := f.newEvent(t, TypeMessageSent, "c1", nil)
	rec := newRecorder()
	f.startConsumer(t, f.nc, ConsumerConfig{
		Durable: testenv.Unique("c"), Backoff: []time.Duration{10 * time.Millisecond}, OnResult: rec.onResult,
		Handler: func(_ context.Context, got Event) error {
			if rec.handle(got.ID) == 1 {
				panic("boom")
			}
			return nil
		},
	})
	if err := f.pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if rec.count(OutcomeAcked, ev.ID) != 1 {
			return errors.New("not acked")
		}
		return nil
	})
	if rec.count(OutcomeRetry, ev.ID) != 1 {
		t.Errorf("panic produced %d retries, want 1", rec.count(OutcomeRetry, ev.ID))
	}
}
