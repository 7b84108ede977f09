package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newHistory(t *testing.T, size int) *History {
	t.Helper()
	rdb := testenv.New(t).Redis(t)
	h := New(rdb, Config{Prefix: testenv.Unique("hist") + ":", Size: size})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, h.cfg.Prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return h
}

func msgs(channel string, from, to int64) []chat.Message {
	var out []chat.Message
	for s := from; s <= to; s++ {
		out = append(out, chat.Message{
			ID: fmt.Sprintf("m%d", s), ChannelID: channel, Seq: s, UserID: "u", Content: fmt.Sprint("text ", s),
			Type: "text", CreatedAt: time.UnixMilli(1_700_000_000_000 + s).UTC(),
		})
	}
	return out
}

func seqs(ms []chat.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func rng(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestReadCoverage(t *testing.T) {
	ctx := t.Context()
	h := newHistory(t, 10)
	// Not cached at all.
	if _, st, err := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", Descending: true, Limit: 5}); err != nil || st != chat.CacheMiss {
		t.Fatalf("empty cache: %v %v", st, err)
	}
	// A channel of 25 messages, the newest 10 cached: coverage from 16.
	if err := h.Fill(ctx, "c", msgs("c", 16, 25), false); err != nil {
		t.Fatal(err)
	}
	// A short channel, cached completely.
	if err := h.Fill(ctx, "short", msgs("short", 1, 3), true); err != nil {
		t.Fatal(err)
	}
	// An empty channel, cached completely.
	if err := h.Fill(ctx, "empty", nil, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		q      chat.HistoryQuery
		status chat.CacheStatus
		want   []int64
	}{
		{"latest 5", chat.HistoryQuery{ChannelID: "c", Descending: true, Limit: 5}, chat.CacheHit, []int64{25, 24, 23, 22, 21}},
		{"latest 10", chat.HistoryQuery{ChannelID: "c", Descending: true, Limit: 10}, chat.CacheHit, rev(rng(16, 25))},
		{"latest 11 needs MongoDB", chat.HistoryQuery{ChannelID: "c", Descending: true, Limit: 11}, chat.CachePartial, nil},
		{"after 15", chat.HistoryQuery{ChannelID: "c", AfterSeq: 15, Limit: 100}, chat.CacheHit, rng(16, 25)},
		{"after 20 limit 3", chat.HistoryQuery{ChannelID: "c", AfterSeq: 20, Limit: 3}, chat.CacheHit, rng(21, 23)},
		{"after 25", chat.HistoryQuery{ChannelID: "c", AfterSeq: 25, Limit: 3}, chat.CacheHit, nil},
		{"after 14 needs MongoDB", chat.HistoryQuery{ChannelID: "c", AfterSeq: 14, Limit: 3}, chat.CachePartial, nil},
		{"before 20 limit 4", chat.HistoryQuery{ChannelID: "c", BeforeSeq: 20, Descending: true, Limit: 4}, chat.CacheHit, []int64{19, 18, 17, 16}},
		{"before 20 limit 5 needs MongoDB", chat.HistoryQuery{ChannelID: "c", BeforeSeq: 20, Descending: true, Limit: 5}, chat.CachePartial, nil},
		{"short: latest 10", chat.HistoryQuery{ChannelID: "short", Descending: true, Limit: 10}, chat.CacheHit, []int64{3, 2, 1}},
		{"short: before 2", chat.HistoryQuery{ChannelID: "short", BeforeSeq: 2, Descending: true, Limit: 10}, chat.CacheHit, []int64{1}},
		{"short: after 0", chat.HistoryQuery{ChannelID: "short", Limit: 10}, chat.CacheHit, rng(1, 3)},
		{"empty: latest", chat.HistoryQuery{ChannelID: "empty", Descending: true, Limit: 10}, chat.CacheHit, nil},
	}
	for _, tc := range tests {
		got, st, err := h.Read(ctx, tc.q)
		if err != nil || st != tc.status || (st == chat.CacheHit && !slices.Equal(seqs(got), tc.want)) {
			t.Errorf("%s: %v %v %v, want %v %v", tc.name, seqs(got), st, err, tc.status, tc.want)
		}
	}
	got, _, err := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 24, Limit: 1})
	if err != nil || len(got) != 1 || got[0].Content != "text 25" || !got[0].CreatedAt.Equal(time.UnixMilli(1_700_000_000_025)) {
		t.Fatalf("decoded message %+v %v", got, err)
	}
}

func rev(s []int64) []int64 {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func TestPutTrimsAndKeepsCoverageHonest(t *testing.T) {
	ctx := t.Context()
	h := newHistory(t, 5)
	if err := h.Fill(ctx, "c", msgs("c", 1, 3), true); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs("c", 4, 8) {
		if err := h.Put(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Bounded to 5: 4..8 kept, coverage raised to 4.
	got, st, err := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 3, Limit: 100})
	if err != nil || st != chat.CacheHit || !slices.Equal(seqs(got), rng(4, 8)) {
		t.Fatalf("after trimming: %v %v %v", seqs(got), st, err)
	}
	if _, st, _ := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 2, Limit: 100}); st != chat.CachePartial {
		t.Fatalf("seq 3 was trimmed, yet the cache answers after 2: %v", st)
	}
	n, err := h.rdb.ZCard(ctx, h.Key("c")).Result()
	if err != nil || n != 6 {
		t.Fatalf("set of %d members (%v), want 5 and the marker", n, err)
	}
	// An edit replaces the entry; an edit below the coverage is never read.
	edited := msgs("c", 6, 6)[0]
	edited.Content = "edited"
	if err := h.Put(ctx, edited); err != nil {
		t.Fatal(err)
	}
	old := msgs("c", 2, 2)[0]
	if err := h.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	got, _, _ = h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 3, Limit: 100})
	if !slices.Equal(seqs(got), rng(4, 8)) || got[2].Content != "edited" {
		t.Fatalf("after the edits: %v %q", seqs(got), got[2].Content)
	}
	// A fill with older data does not overwrite the newer entry.
	if err := h.Fill(ctx, "c", msgs("c", 4, 8), false); err != nil {
		t.Fatal(err)
	}
	got, _, _ = h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 3, Limit: 100})
	if got[2].Content != "edited" {
		t.Fatalf("a fill overwrote an edit: %q", got[2].Content)
	}
	// Forgotten.
	if err := h.Invalidate(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, st, _ := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", AfterSeq: 3, Limit: 100}); st != chat.CacheMiss {
		t.Fatalf("after invalidating: %v", st)
	}
}

// A message put while a fill is under way (the fill read MongoDB before the
// message was stored) survives the fill.
func TestPutBeforeFillIsKept(t *testing.T) {
	ctx := t.Context()
	h := newHistory(t, 10)
	if err := h.Put(ctx, msgs("c", 4, 4)[0]); err != nil {
		t.Fatal(err)
	}
	if _, st, _ := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", Descending: true, Limit: 3}); st != chat.CacheMiss {
		t.Fatalf("a put alone claims coverage: %v", st)
	}
	if err := h.Fill(ctx, "c", msgs("c", 1, 3), true); err != nil {
		t.Fatal(err)
	}
	got, st, err := h.Read(ctx, chat.HistoryQuery{ChannelID: "c", Limit: 10})
	if err != nil || st != chat.CacheHit || !slices.Equal(seqs(got), rng(1, 4)) {
		t.Fatalf("after the fill: %v %v %v", seqs(got), st, err)
	}
	// A stray old entry below a later, narrower fill is dropped.
	if err := h.Put(ctx, msgs("d", 1, 1)[0]); err != nil {
		t.Fatal(err)
	}
	if err := h.Fill(ctx, "d", msgs("d", 50, 55), false); err != nil {
		t.Fatal(err)
	}
	got, st, err = h.Read(ctx, chat.HistoryQuery{ChannelID: "d", Descending: true, Limit: 10})
	if err != nil || st != chat.CachePartial {
		t.Fatalf("latest 10 of a channel cached from 50: %v %v %v", seqs(got), st, err)
	}
	got, _, _ = h.Read(ctx, chat.HistoryQuery{ChannelID: "d", Descending: true, Limit: 6})
	if !slices.Equal(seqs(got), rev(rng(50, 55))) {
		t.Fatalf("latest 6: %v", seqs(got))
	}
}

// A put trims only once the set has outgrown its bound by the slack
// (Size/8), and a message put below the coverage (an edit of an old
// message) is never read and is trimmed first.
func TestPutSlackAndOldMessages(t *testing.T) {
	ctx := t.Context()
	h := newHistory(t, 16) // slack 2
	card := func() int64 {
		t.Helper()
		n, err := h.rdb.ZCard(ctx, h.Key("c")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := h.Fill(ctx, "c", msgs("c", 1, 3), true); err != nil {
		t.Fatal(err)
	}
	put := func(from, to int64) {
		t.Helper()
		for _, m := range msgs("c", from, to) {
			if err := h.Put(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(4, 18)
	if n := card(); n != 19 {
		t.Fatalf("18 messages within the slack: %d members, want 18 and the marker", n)
	}
	put(19, 19)
	if n := card(); n != 17 {
		t.Fatalf("past the slack: %d members, want 16 and the marker", n)
	}
	read := func(q chat.HistoryQuery) ([]int64, chat.CacheStatus) {
		t.Helper()
		q.ChannelID = "c"
		got, st, err := h.Read(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return seqs(got), st
	}
	if got, st := read(chat.HistoryQuery{AfterSeq: 3, Limit: 100}); st != chat.CacheHit || !slices.Equal(got, rng(4, 19)) {
		t.Fatalf("after 3 once trimmed: %v %v", got, st)
	}
	if _, st := read(chat.HistoryQuery{AfterSeq: 2, Limit: 100}); st != chat.CachePartial {
		t.Fatalf("after 2 once 3 is trimmed: %v", st)
	}

	put(2, 2) // an edit of a message below the coverage
	tests := []struct {
		name   string
		q      chat.HistoryQuery
		status chat.CacheStatus
		want   []int64
	}{
		{"latest 16", chat.HistoryQuery{Descending: true, Limit: 16}, chat.CacheHit, rev(rng(4, 19))},
		{"latest 17 needs MongoDB", chat.HistoryQuery{Descending: true, Limit: 17}, chat.CachePartial, nil},
		{"before 6 limit 2", chat.HistoryQuery{Descending: true, BeforeSeq: 6, Limit: 2}, chat.CacheHit, []int64{5, 4}},
		{"before 6 limit 3 needs MongoDB", chat.HistoryQuery{Descending: true, BeforeSeq: 6, Limit: 3}, chat.CachePartial, nil},
		{"after 1 needs MongoDB", chat.HistoryQuery{AfterSeq: 1, Limit: 100}, chat.CachePartial, nil},
	}
	for _, tc := range tests {
		if got, st := read(tc.q); st != tc.status || (st == chat.CacheHit && !slices.Equal(got, tc.want)) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, got, st, tc.want, tc.status)
		}
	}

	// The next trim takes the old message first.
	put(20, 21)
	if n := card(); n != 17 {
		t.Fatalf("after the second trim: %d members, want 16 and the marker", n)
	}
	if got, st := read(chat.HistoryQuery{AfterSeq: 5, Limit: 100}); st != chat.CacheHit || !slices.Equal(got, rng(6, 21)) {
		t.Fatalf("after the second trim: %v %v", got, st)
	}
	if err := h.rdb.ZScore(ctx, h.Key("c"), mustEncode(t, msgs("c", 2, 2)[0])).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the old message survived the trim: %v", err)
	}
}

func mustEncode(t *testing.T, m chat.Message) string {
	t.Helper()
	s, err := encode(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
