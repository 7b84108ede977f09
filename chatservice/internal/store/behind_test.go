package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/testenv"
)

// stored reads what the database holds, past the store's queue: a
// channel's last_seq and preview content, a member's read position, and
// the outbox entries' ids.
type stored struct {
	lastSeq  int64
	preview  string
	readSeq  int64
	outboxed []string
}

func readStored(t *testing.T, s *Store, channelID, userID string) stored {
	t.Helper()
	ctx := t.Context()
	var got stored
	var ch channelDoc
	if err := s.channels.FindOne(ctx, bson.D{{Key: "_id", Value: channelID}}).Decode(&ch); err != nil {
		t.Fatal(err)
	}
	got.lastSeq = ch.LastSeq
	if ch.LastMessage != nil {
		got.preview = ch.LastMessage.Content
	}
	var m memberDoc
	if err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: memberID(channelID, userID)}}).Decode(&m); err != nil {
		t.Fatal(err)
	}
	got.readSeq = m.LastReadSeq
	cur, err := s.outbox.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []outboxDoc
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		got.outboxed = append(got.outboxed, d.ID)
	}
	return got
}

func (st stored) String() string {
	return fmt.Sprintf("last_seq %d %q, read %d, outbox %v", st.lastSeq, st.preview, st.readSeq, st.outboxed)
}

// In the one-writer mode a send's preview, read position and outbox
// deletion wait in memory, coalesced, and reads show them; a flush stores
// the updates before it deletes the entries, and a failed flush keeps
// everything queued.
func TestWriteBehind(t *testing.T) {
	s, _ := newStore(t, OneWriter(), WriteBehind(time.Hour, nil)) // flushed by hand
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.InsertChannel(ctx, chat.Channel{ID: "wb", Name: "wb", Type: chat.ChannelGroup, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddMember(ctx, chat.Member{ChannelID: "wb", UserID: "u", Role: "member", JoinedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		if err := s.PutOutbox(ctx, chat.OutboxEntry{ID: id, Event: chat.Event{ID: id}, CreatedAt: now, NextAttemptAt: now.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	msg := func(seq int64, content string) chat.Message {
		return chat.Message{ID: fmt.Sprintf("m%d", seq), ChannelID: "wb", UserID: "u", Seq: seq, Content: content, Type: "text", CreatedAt: now}
	}
	// shown checks what the store's reads show.
	shown := func(lastSeq int64, preview string, readSeq int64) {
		t.Helper()
		ch, err := s.GetChannel(ctx, "wb")
		if err != nil || ch.LastSeq != lastSeq || ch.LastMessage == nil || ch.LastMessage.Content != preview {
			t.Fatalf("GetChannel = %+v, %v; want last_seq %d, preview %q", ch, err, lastSeq, preview)
		}
		if chs, err := s.GetChannels(ctx, []string{"wb"}); err != nil || len(chs) != 1 || chs[0].LastSeq != lastSeq {
			t.Fatalf("GetChannels = %+v, %v; want last_seq %d", chs, err, lastSeq)
		}
		if m, err := s.GetMember(ctx, "wb", "u"); err != nil || m.LastReadSeq != readSeq {
			t.Fatalf("GetMember = %+v, %v; want read position %d", m, err, readSeq)
		}
		if ms, err := s.ListMembers(ctx, "wb", "", 10); err != nil || len(ms) != 1 || ms[0].LastReadSeq != readSeq {
			t.Fatalf("ListMembers = %+v, %v; want read position %d", ms, err, readSeq)
		}
		if seq, err := s.previewSeq(ctx, "wb"); err != nil || seq != lastSeq {
			t.Fatalf("previewSeq = %d, %v; want %d", seq, err, lastSeq)
		}
	}
	check := func(got, want stored) {
		t.Helper()
		if got.String() != want.String() {
			t.Fatalf("stored: %v, want %v", got, want)
		}
	}

	// Two sends and an edit of the second.
	for _, step := range []func() error{
		func() error { return s.SetLastMessage(ctx, msg(1, "one")) },
		func() error { return s.MarkSenderRead(ctx, "wb", "u", 1) },
		func() error { return s.DeleteOutbox(ctx, "e1") },
		func() error { return s.SetLastMessage(ctx, msg(2, "two")) },
		func() error { return s.MarkSenderRead(ctx, "wb", "u", 2) },
		func() error { return s.DeleteOutbox(ctx, "e2") },
		func() error { return s.SetLastMessage(ctx, msg(1, "older")) }, // never replaces a newer one
		func() error { return s.MarkSenderRead(ctx, "wb", "u", 1) },    // never lowers
		func() error { return s.ReplaceLastMessage(ctx, msg(2, "two, edited")) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	shown(2, "two, edited", 2)
	check(readStored(t, s, "wb", "u"), stored{outboxed: []string{"e1", "e2", "e3"}})
	s.behind.mu.Lock()
	previews, reads := len(s.behind.queue.previews), len(s.behind.queue.reads)
	s.behind.mu.Unlock()
	if previews != 1 || reads != 1 {
		t.Fatalf("%d previews and %d read positions queued, want one each", previews, reads)
	}
	// An explicit read compares with the queued position.
	if got, err := s.MarkRead(ctx, "wb", "u", 1); err != nil || got != 2 {
		t.Fatalf("MarkRead(1) = %d, %v; want 2", got, err)
	}

	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	shown(2, "two, edited", 2)
	check(readStored(t, s, "wb", "u"), stored{lastSeq: 2, preview: "two, edited", readSeq: 2, outboxed: []string{"e3"}})

	// A flush that fails keeps everything queued and deletes nothing;
	// what queues meanwhile wins over what is put back.
	if err := s.SetLastMessage(ctx, msg(3, "three")); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSenderRead(ctx, "wb", "u", 3); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOutbox(ctx, "e3"); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Flush(canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a canceled context: %v", err)
	}
	shown(3, "three", 3)
	check(readStored(t, s, "wb", "u"), stored{lastSeq: 2, preview: "two, edited", readSeq: 2, outboxed: []string{"e3"}})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check(readStored(t, s, "wb", "u"), stored{lastSeq: 3, preview: "three", readSeq: 3})

	// A member who leaves takes the queued position along: it is not
	// applied to the next membership.
	if err := s.MarkSenderRead(ctx, "wb", "u", 9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteMember(ctx, "wb", "u"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddMember(ctx, chat.Member{ChannelID: "wb", UserID: "u", Role: "member", JoinedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetMember(ctx, "wb", "u"); err != nil || m.LastReadSeq != 0 {
		t.Fatalf("rejoined member: %+v, %v; want read position 0", m, err)
	}
}

// Queued writes are flushed by the timer, and by Close.
func TestWriteBehindTimer(t *testing.T) {
	s, _ := newStore(t, OneWriter(), WriteBehind(10*time.Millisecond, nil))
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.InsertChannel(ctx, chat.Channel{ID: "wt", Name: "wt", Type: chat.ChannelGroup, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddMember(ctx, chat.Member{ChannelID: "wt", UserID: "u", Role: "member", JoinedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOutbox(ctx, chat.OutboxEntry{ID: "e", Event: chat.Event{ID: "e"}, CreatedAt: now, NextAttemptAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastMessage(ctx, chat.Message{ID: "m1", ChannelID: "wt", Seq: 1, Content: "hi", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOutbox(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		if got := readStored(t, s, "wt", "u"); got.lastSeq != 1 || len(got.outboxed) != 0 {
			return fmt.Errorf("stored: %v", got)
		}
		return nil
	})

	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// After Close, writes wait for an explicit Flush.
	if err := s.SetLastMessage(ctx, chat.Message{ID: "m2", ChannelID: "wt", Seq: 2, Content: "bye", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	s.behind.mu.Lock()
	armed := s.behind.timer != nil
	s.behind.mu.Unlock()
	if armed {
		t.Fatal("a write after Close armed the timer")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readStored(t, s, "wt", "u"); got.lastSeq != 2 {
		t.Fatalf("stored after Flush: %v", got)
	}
}

// TestPacer: a timed flush pauses after each command as long as the
// command held the gate, at most maxFlushPause, and at most half its
// interval in all; Flush (a nil pacer) never pauses.
func TestPacer(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		interval time.Duration
		held     []time.Duration // each command's hold
		want     []time.Duration // the pause after each
	}{
		{"pause as long as the hold", time.Second, []time.Duration{3 * ms, 7 * ms}, []time.Duration{3 * ms, 7 * ms}},
		{"at most maxFlushPause", time.Second, []time.Duration{50 * ms, ms}, []time.Duration{maxFlushPause, ms}},
		{"half the interval in all", 60 * ms, []time.Duration{20 * ms, 20 * ms, 20 * ms}, []time.Duration{20 * ms, 10 * ms, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(tt.interval)
			for i, d := range tt.held {
				p.held(d)
				if p.next != tt.want[i] {
					t.Errorf("after hold %d (%s): pause %s, want %s", i, d, p.next, tt.want[i])
				}
				if err := p.wait(context.Background()); err != nil || p.next != 0 {
					t.Fatalf("wait: %v, next pause %s", err, p.next)
				}
			}
		})
	}
	t.Run("nil pacer", func(t *testing.T) {
		var p *pacer
		p.held(time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.wait(ctx); err != nil {
			t.Fatalf("nil pacer waited: %v", err)
		}
	})
	t.Run("cancelled pause", func(t *testing.T) {
		p := newPacer(time.Hour)
		p.held(maxFlushPause)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("wait under a cancelled context: %v", err)
		}
	})
}
