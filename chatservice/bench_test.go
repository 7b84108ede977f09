package chatservice

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/metadata"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/chatservice/internal/store"
)

// latencies collects per-call durations from parallel benchmark workers.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds p50 and p99 (milliseconds) to the benchmark's output.
func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// BenchmarkSendMessage measures SendMessage through gRPC: one sender, and
// 4 x GOMAXPROCS parallel senders; into one busy channel, and spread over
// 16 channels; with concurrent writes, and with one writer (OneWriter, as
// the all-in-one runs on the embedded FerretDB).
func BenchmarkSendMessage(b *testing.B) {
	for _, oneWriter := range []bool{false, true} {
		b.Run(fmt.Sprintf("one-writer=%v", oneWriter), func(b *testing.B) {
			benchmarkSendMessage(b, newFixture(b, func(c *Config) { c.OneWriter = oneWriter }))
		})
	}
}

func benchmarkSendMessage(b *testing.B, f *fixture) {
	for _, bc := range []struct{ parallelism, spread int }{{0, 1}, {4, 1}, {4, 16}} {
		senders := "1"
		if bc.parallelism > 0 {
			senders = fmt.Sprintf("%dxGOMAXPROCS", bc.parallelism)
		}
		spread := bc.spread
		b.Run(fmt.Sprintf("senders=%s/channels=%d", senders, spread), func(b *testing.B) {
			var ids []string
			for i := range spread {
				ids = append(ids, f.mustCreate(b, "bench", "group", fmt.Sprintf("bench %d", i)).GetId())
			}
			ctx := as(b, "bench")
			var (
				lat  latencies
				next atomic.Int64
			)
			send := func() bool {
				n := next.Add(1)
				t0 := time.Now()
				_, err := f.client.SendMessage(ctx, &chatv1.SendMessageRequest{
					ChannelId: ids[int(n)%spread], Content: fmt.Sprintf("benchmark message %d with a few words", n),
				})
				if err != nil {
					b.Error(err)
					return false
				}
				lat.add(time.Since(t0))
				return true
			}
			b.ResetTimer()
			start := time.Now()
			if bc.parallelism == 0 {
				for b.Loop() {
					if !send() {
						return
					}
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if !send() {
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			lat.report(b)
		})
	}
}

// benchHistorySize is the number of messages seeded for the history
// benchmarks.
const benchHistorySize = 100_000

// BenchmarkGetMessages100k measures GetMessages in a channel holding 100k
// messages: the latest page and reconnect recovery (after a recent seq),
// both served by the Redis cache, against scrolling far back (MongoDB). The
// channel is seeded once per run with InsertMany in batches.
func BenchmarkGetMessages100k(b *testing.B) {
	f := newFixture(b)
	ch := f.mustCreate(b, "bench", "public", "100k")
	seed := time.Now()
	seedHistory(b, f, ch.GetId(), benchHistorySize)
	b.Logf("seeded %d messages in %s", benchHistorySize, time.Since(seed).Round(time.Millisecond))
	// Reads beyond the cache scan the collection on FerretDB v1: allow
	// them minutes, not the default minute.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer tok-reader")
	// Fill the cache once, as the first reader after a restart would.
	fill := time.Now()
	if _, err := f.client.GetMessages(ctx, &chatv1.GetMessagesRequest{ChannelId: ch.GetId(), Limit: 50}); err != nil {
		b.Fatal(err)
	}
	b.Logf("first read (cache fill from MongoDB): %s", time.Since(fill).Round(time.Millisecond))

	cases := []struct {
		name string
		req  *chatv1.GetMessagesRequest
		want int
	}{
		{"latest-50/cache", &chatv1.GetMessagesRequest{Limit: 50}, 50},
		{"after-last-100/cache", &chatv1.GetMessagesRequest{AfterSeq: int64p(benchHistorySize - 100), Limit: 100}, 100},
		{"before-50000/mongodb", &chatv1.GetMessagesRequest{BeforeSeq: int64p(50_000), Limit: 50}, 50},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			tc.req.ChannelId = ch.GetId()
			var lat latencies
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				resp, err := f.client.GetMessages(ctx, tc.req)
				if err != nil {
					b.Fatal(err)
				}
				lat.add(time.Since(t0))
				if len(resp.GetMessages()) != tc.want {
					b.Fatalf("%d messages", len(resp.GetMessages()))
				}
			}
			lat.report(b)
		})
	}
}

// seedHistory stores n messages in a channel directly (InsertMany in
// batches of 1000) and moves the counter and the channel's preview to match.
func seedHistory(b *testing.B, f *fixture, channelID string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	st := store.New(f.db)
	base := time.Now().Add(-time.Duration(n) * time.Second).UTC().Truncate(time.Millisecond)
	var last chat.Message
	batch := make([]chat.Message, 0, 1000)
	for i := 1; i <= n; i++ {
		content := fmt.Sprintf("seeded message %d about topic %d", i, i%97)
		last = chat.Message{
			ID: fmt.Sprintf("seed%07d", i), ChannelID: channelID, Seq: int64(i), UserID: fmt.Sprintf("u%d", i%50),
			Content: content, Type: chat.MessageText, CreatedAt: base.Add(time.Duration(i) * time.Second), Terms: chat.Terms(content),
		}
		batch = append(batch, last)
		if len(batch) == cap(batch) || i == n {
			if err := st.InsertMessages(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := st.RaiseSeq(ctx, channelID, int64(n)); err != nil {
		b.Fatal(err)
	}
	if err := st.SetLastMessage(ctx, last); err != nil {
		b.Fatal(err)
	}
	if c, err := f.db.Collection("messages").CountDocuments(ctx, bson.D{{Key: "channel_id", Value: channelID}}); err != nil || c != int64(n) {
		b.Fatalf("seeded %d messages (%v)", c, err)
	}
}
