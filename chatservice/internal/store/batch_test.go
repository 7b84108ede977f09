package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/testenv"
)

// queued waits until n requests wait in b's queue.
func queued[T any](t *testing.T, b *batcher[T], n int) {
	t.Helper()
	testenv.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.pending) != n {
			return fmt.Errorf("%d requests queued, want %d", len(b.pending), n)
		}
		return nil
	})
}

// countFlushes wraps b's flush to count its commands.
func countFlushes[T any](b *batcher[T]) *atomic.Int32 {
	var n atomic.Int32
	flush := b.flush
	b.flush = func(ctx context.Context, reqs []T) []error {
		n.Add(1)
		return flush(ctx, reqs)
	}
	return &n
}

// Writes that queue behind the write gate together go as one command,
// and each caller gets its own outcome: a duplicate fails alone.
func TestBatchedWrites(t *testing.T) {
	s, _ := newStore(t, OneWriter())
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	entry := func(id string) chat.OutboxEntry {
		return chat.OutboxEntry{ID: id, Event: chat.Event{ID: id, Type: chat.EventMessageSent}, CreatedAt: now, NextAttemptAt: now}
	}
	if err := s.PutOutbox(ctx, entry("old")); err != nil {
		t.Fatal(err)
	}

	t.Run("outbox entries", func(t *testing.T) {
		flushes := countFlushes(s.outboxPuts)
		unlock, err := s.lockWrites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{"e0", "e1", "old", "e2", "e3", "e4"}
		errs := make([]error, len(ids))
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() { errs[i] = s.PutOutbox(ctx, entry(id)) })
		}
		queued(t, s.outboxPuts, len(ids))
		unlock()
		wg.Wait()
		for i, id := range ids {
			if id == "old" {
				if !errors.Is(errs[i], chat.ErrDuplicate) {
					t.Errorf("PutOutbox(%s) = %v, want ErrDuplicate", id, errs[i])
				}
			} else if errs[i] != nil {
				t.Errorf("PutOutbox(%s) = %v", id, errs[i])
			}
		}
		if got := flushes.Load(); got != 1 {
			t.Errorf("%d insert commands, want 1", got)
		}
		if n, err := s.CountOutbox(ctx); err != nil || n != int64(len(ids)) {
			t.Fatalf("outbox holds %d (%v), want %d", n, err, len(ids))
		}
	})

	t.Run("messages", func(t *testing.T) {
		msg := func(id string, seq int64) chat.Message {
			return chat.Message{ID: id, ChannelID: "batched", Seq: seq, UserID: "u", Content: id, Type: "text", CreatedAt: now}
		}
		if err := s.InsertMessage(ctx, msg("first", 1)); err != nil {
			t.Fatal(err)
		}
		flushes := countFlushes(s.messageInserts)
		unlock, err := s.lockWrites(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			m    chat.Message
			want error
		}{
			{msg("m2", 2), nil},
			{msg("first", 3), chat.ErrMessageExists}, // a retried send
			{msg("m3", 1), chat.ErrSeqTaken},         // a seq handed out twice
			{msg("m4", 4), nil},
		}
		errs := make([]error, len(cases))
		var wg sync.WaitGroup
		for i, c := range cases {
			wg.Go(func() { errs[i] = s.InsertMessage(ctx, c.m) })
		}
		queued(t, s.messageInserts, len(cases))
		unlock()
		wg.Wait()
		for i, c := range cases {
			if (c.want == nil && errs[i] != nil) || (c.want != nil && !errors.Is(errs[i], c.want)) {
				t.Errorf("InsertMessage(%s, seq %d) = %v, want %v", c.m.ID, c.m.Seq, errs[i], c.want)
			}
		}
		if got := flushes.Load(); got != 1 {
			t.Errorf("%d insert commands, want 1", got)
		}
		n, err := s.messages.CountDocuments(ctx, bson.D{{Key: "channel_id", Value: "batched"}})
		if err != nil || n != 3 {
			t.Fatalf("channel holds %d messages (%v), want 3", n, err)
		}
	})
}

// An explicit read position goes with the other read positions that
// queue behind the gate: raised, never lowered, and a missing member is
// reported.
func TestBatchedMarkRead(t *testing.T) {
	s, _ := newStore(t, OneWriter())
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, _, err := s.AddMember(ctx, chat.Member{ChannelID: "ca", UserID: "u", Role: "member", JoinedAt: now}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		seq, want int64
	}{{5, 5}, {3, 5}, {7, 7}} {
		got, err := s.MarkRead(ctx, "ca", "u", c.seq)
		if err != nil || got != c.want {
			t.Fatalf("MarkRead(%d) = %d, %v, want %d", c.seq, got, err, c.want)
		}
	}
	var d memberDoc
	if err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: memberID("ca", "u")}}).Decode(&d); err != nil || d.LastReadSeq != 7 {
		t.Fatalf("stored read position %d, %v, want 7 (explicit reads are not written behind)", d.LastReadSeq, err)
	}
	if _, err := s.MarkRead(ctx, "ca", "nobody", 1); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("MarkRead of a non-member: %v, want ErrNotFound", err)
	}
}

// A request whose context ends while it waits in the queue is withdrawn
// and never written; the others still are, and the lead passes on when
// the leader itself gives up.
func TestBatchedWriteWithdrawn(t *testing.T) {
	s, _ := newStore(t, OneWriter())
	ctx := t.Context()
	entry := func(id string) chat.OutboxEntry {
		return chat.OutboxEntry{ID: id, Event: chat.Event{ID: id}, CreatedAt: time.Now()}
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The leader gives up waiting for the gate; the follower that waits
	// behind it, with time to spare, takes over.
	leaderCtx, cancelLeader := context.WithCancel(ctx)
	leaderErr := make(chan error, 1)
	go func() { leaderErr <- s.PutOutbox(leaderCtx, entry("leader")) }()
	queued(t, s.outboxPuts, 1)
	quitterCtx, cancelQuitter := context.WithCancel(ctx)
	quitterErr := make(chan error, 1)
	go func() { quitterErr <- s.PutOutbox(quitterCtx, entry("quitter")) }()
	queued(t, s.outboxPuts, 2)
	patientErr := make(chan error, 1)
	go func() { patientErr <- s.PutOutbox(ctx, entry("patient")) }()
	queued(t, s.outboxPuts, 3)

	cancelQuitter()
	if err := <-quitterErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn request: %v, want context.Canceled", err)
	}
	cancelLeader()
	if err := <-leaderErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader that gave up: %v, want context.Canceled", err)
	}
	unlock()
	if err := <-patientErr; err != nil {
		t.Fatalf("request behind them: %v", err)
	}
	var ids []string
	due, err := s.DueOutbox(ctx, time.Now().Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range due {
		ids = append(ids, e.ID)
	}
	if len(ids) != 1 || ids[0] != "patient" {
		t.Fatalf("outbox holds %v, want only [patient]", ids)
	}
	s.outboxPuts.mu.Lock()
	defer s.outboxPuts.mu.Unlock()
	if s.outboxPuts.flushing || len(s.outboxPuts.pending) != 0 {
		t.Fatalf("batcher left flushing=%v with %d queued", s.outboxPuts.flushing, len(s.outboxPuts.pending))
	}
}
