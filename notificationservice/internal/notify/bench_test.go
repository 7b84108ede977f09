package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

func BenchmarkParseMentions(b *testing.B) {
	text := strings.Repeat("hello @ann and @bob.smith, mail carol@example.com please. ", 10) // ~600 bytes
	b.ReportAllocs()
	for b.Loop() {
		if len(notify.ParseMentions(text)) != 2 {
			b.Fatal("wrong mentions")
		}
	}
}

// BenchmarkFanOut measures handling one message.sent in a group channel of
// 100 offline members with a phone each: one query each for presence,
// preferences and devices, then one notification record and one job per
// member (the job queue is in memory here; the store is the real one).
func BenchmarkFanOut(b *testing.B) {
	w := newWorld(b, worldOptions{})
	const n = 100
	members := []string{"ann"}
	for i := range n {
		id := fmt.Sprintf("m%03d", i)
		members = append(members, id)
		w.device(b, id, notify.PlatformFCM, "tok-"+id)
	}
	w.members.ids["big"] = members
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		err := w.svc.HandleMessageSent(ctx, notify.MessageSent{EventID: fmt.Sprintf("ev%d", i), ChannelID: "big",
			ChannelType: notify.ChatGroup, ChannelName: "big", SenderID: "ann", MessageID: fmt.Sprintf("m%d", i), Content: "hello"})
		if err != nil {
			b.Fatal(err)
		}
		if jobs := w.queue.take(); len(jobs) != n {
			b.Fatalf("%d jobs, want %d", len(jobs), n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "recipients/s")
}
