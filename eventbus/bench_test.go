package eventbus

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/testenv"
)

// The benchmarks run on the same NATS server as the tests (embedded, or
// PARLEY_NATS_URL). Their numbers are in docs/performance.md.

// BenchmarkPublish measures durable publishes that wait for the JetStream
// ack, one at a time.
func BenchmarkPublish(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	ev := f.benchEvent(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ev.ID = mustID(b)
		if err := f.pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishParallel measures synchronous publishes from several
// goroutines, as several request handlers of a service would make them.
func BenchmarkPublishParallel(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	ev := f.benchEvent(b)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := ev
		for pb.Next() {
			e.ID = mustID(b)
			if err := f.pub.Publish(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishBatch measures asynchronous publishing in batches of 100
// (PublishBatch), as an outbox relay would do.
func BenchmarkPublishBatch(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	const batch = 100
	evs := make([]Event, batch)
	for i := range evs {
		evs[i] = f.benchEvent(b)
	}
	b.ResetTimer()
	sent := 0
	for b.Loop() {
		for i := range evs {
			evs[i].ID = mustID(b)
		}
		if err := f.pub.PublishBatch(ctx, evs); err != nil {
			b.Fatal(err)
		}
		sent += batch
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishConsumeLatency measures the time from the start of a
// publish to the handler receiving the event, one event in flight at a
// time, and reports the median and 99th percentile.
func BenchmarkPublishConsumeLatency(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	received := make(chan time.Time, 1)
	f.startConsumer(b, f.nc, ConsumerConfig{
		Durable: testenv.Unique("bench"), DeliverNew: true, PullWait: 5 * time.Second,
		Handler: func(context.Context, Event) error {
			received <- time.Now()
			return nil
		},
	})
	ev := f.benchEvent(b)
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		ev.ID = mustID(b)
		start := time.Now()
		if err := f.pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-received:
			lat = append(lat, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatal("event not consumed within 10s")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkConsumeThroughput measures how fast one consumer instance with
// the default concurrency drains a backlog with a no-op handler.
func BenchmarkConsumeThroughput(b *testing.B) {
	f := newBenchFixture(b)
	ctx := context.Background()
	evs := make([]Event, b.N)
	for i := range evs {
		evs[i] = f.benchEvent(b)
	}
	for i := 0; i < len(evs); i += 500 {
		if err := f.pub.PublishBatch(ctx, evs[i:min(i+500, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(b.N)
	b.ResetTimer()
	f.startConsumer(b, f.nc, ConsumerConfig{
		Durable: testenv.Unique("bench"),
		Handler: func(context.Context, Event) error { wg.Done(); return nil },
	})
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func newBenchFixture(b *testing.B) *fixture {
	b.Helper()
	env := testenv.New(b)
	f := &fixture{env: env, names: Names{
		EventsStream: testenv.Unique("BEV"), SubjectPrefix: testenv.Unique("bev"),
		DLQStream: testenv.Unique("BDLQ"), DLQSubjectPrefix: testenv.Unique("bdlq"),
	}}
	f.nc = env.NATS(b)
	var err error
	if f.pub, err = NewPublisher(f.nc, PublisherConfig{Names: f.names}); err != nil {
		b.Fatal(err)
	}
	f.js = f.pub.js
	ctx := context.Background()
	if err := EnsureStreams(ctx, f.js, StreamConfig{Names: f.names, MaxBytes: 1 << 30}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, s := range []string{f.names.EventsStream, f.names.DLQStream} {
			if err := f.js.DeleteStream(context.Background(), s); err != nil {
				b.Errorf("delete stream %s: %v", s, err)
			}
		}
	})
	return f
}

// benchEvent is a message.sent event of a realistic size (~300 bytes).
func (f *fixture) benchEvent(b *testing.B) Event {
	b.Helper()
	ev, err := NewEvent(TypeMessageSent, "chatservice", "0190a0b0-0000-7000-8000-000000000abc", map[string]any{
		"message_id": "0190a0b0-0000-7000-8000-000000000def", "seq": 1234, "user_id": "0190a0b0-0000-7000-8000-000000000123",
		"content": "Hello, this is a typical chat message of a few words.", "type": "text",
	})
	if err != nil {
		b.Fatal(err)
	}
	return ev
}

func mustID(b *testing.B) string {
	id, err := NewID()
	if err != nil {
		b.Fatal(err)
	}
	return id
}
