package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/stripe"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T, opts ...Option) (*Store, *mongo.Database) {
	t.Helper()
	db := testenv.New(t).Mongo(t)
	s := New(db, opts...)
	// Before the database goes: what a test left queued is written.
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	// A restart creates them again, which must be harmless.
	if err := s.EnsureIndexes(ctx); err != nil {
		t.Fatalf("EnsureIndexes again: %v", err)
	}
	return s, db
}

// isDuplicateKey recognises a unique violation on insert and on update, as
// the server at hand reports it (FerretDB reports the update case without
// code 11000), and nothing else.
func TestIsDuplicateKey(t *testing.T) {
	_, db := newStore(t)
	ctx := t.Context()
	c := db.Collection("dups")
	if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}, {Key: "k", Value: 1}}, bson.D{{Key: "_id", Value: "b"}, {Key: "k", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	_, insertID := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "k", Value: 3}})
	_, insertKey := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "c"}, {Key: "k", Value: 1}})
	_, update := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 1}}}})
	fam := c.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 1}}}}).Err()
	t.Logf("FerretDB/MongoDB report a duplicate on update as: %v; on findAndModify as: %v", update, fam)
	_, badOp := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$nope", Value: 1}})

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"insert, duplicate _id", insertID, true},
		{"insert, duplicate unique key", insertKey, true},
		{"update to a duplicate unique key", update, true},
		{"findAndModify to a duplicate unique key", fam, true},
		{"another server error", badOp, false},
		{"no documents", mongo.ErrNoDocuments, false},
		{"nil", nil, false},
		{"wrapped", fmt.Errorf("outer: %w", insertID), true},
	}
	for _, tc := range tests {
		if tc.want && tc.err == nil {
			t.Errorf("%s: the server accepted the write", tc.name)
			continue
		}
		if got := mongoutil.IsDuplicateKey(tc.err); got != tc.want {
			t.Errorf("%s: mongoutil.IsDuplicateKey(%v) = %v", tc.name, tc.err, got)
		}
	}
	// The update really was refused.
	var doc struct {
		K int `bson:"k"`
	}
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&doc); err != nil || doc.K != 2 {
		t.Fatalf("b after refused updates: %+v %v", doc, err)
	}
}

func TestChannelsAndDirectKeys(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	// Channels without a DM key do not collide on the unique index.
	for i := range 3 {
		if err := s.InsertChannel(ctx, chat.Channel{ID: fmt.Sprintf("c%d", i), Name: "G", Type: chat.ChannelGroup, CreatedAt: now}); err != nil {
			t.Fatalf("channel %d: %v", i, err)
		}
	}
	dm := chat.Channel{ID: "d1", Type: chat.ChannelPrivate, DMKey: "a:b", CreatedAt: now}
	if err := s.InsertChannel(ctx, dm); err != nil {
		t.Fatal(err)
	}
	dm.ID = "d2" // same pair under another id: the dm_key index refuses it
	if err := s.InsertChannel(ctx, dm); !errors.Is(err, chat.ErrDuplicate) {
		t.Fatalf("second channel for a:b: %v", err)
	}
	if err := s.InsertChannel(ctx, chat.Channel{ID: "c0", Type: chat.ChannelGroup, CreatedAt: now}); !errors.Is(err, chat.ErrDuplicate) {
		t.Fatalf("duplicate id: %v", err)
	}
	got, err := s.GetChannel(ctx, "d1")
	if err != nil || got.DMKey != "a:b" || !got.CreatedAt.Equal(now) {
		t.Fatalf("GetChannel: %+v %v", got, err)
	}
	if _, err := s.GetChannel(ctx, "nope"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("missing channel: %v", err)
	}

	// The preview only moves forward.
	for _, seq := range []int64{2, 1, 3} {
		if err := s.SetLastMessage(ctx, chat.Message{ID: fmt.Sprint("m", seq), ChannelID: "c0", Seq: seq, Content: fmt.Sprint(seq), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	c0, err := s.GetChannel(ctx, "c0")
	if err != nil || c0.LastSeq != 3 || c0.LastMessage == nil || c0.LastMessage.Content != "3" {
		t.Fatalf("preview: %+v %v", c0, err)
	}

	// An edit refreshes the preview only if the preview shows that message.
	for _, m := range []chat.Message{
		{ID: "m2", ChannelID: "c0", Seq: 2, Content: "2 edited", CreatedAt: now},
		{ID: "m3", ChannelID: "c0", Seq: 3, Content: "3 edited", CreatedAt: now},
		{ID: "gone", ChannelID: "nope", Seq: 1, Content: "x", CreatedAt: now},
	} {
		if err := s.ReplaceLastMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if c0, err = s.GetChannel(ctx, "c0"); err != nil || c0.LastSeq != 3 || c0.LastMessage.Content != "3 edited" {
		t.Fatalf("preview after edits: %+v %v", c0, err)
	}

	// Concurrent sends in any order leave the newest.
	var wg sync.WaitGroup
	for seq := int64(4); seq <= 40; seq++ {
		wg.Go(func() {
			if err := s.SetLastMessage(ctx, chat.Message{ID: fmt.Sprint("m", seq), ChannelID: "c0", Seq: seq, Content: fmt.Sprint(seq), CreatedAt: now}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if c0, err = s.GetChannel(ctx, "c0"); err != nil || c0.LastSeq != 40 || c0.LastMessage.Content != "40" {
		t.Fatalf("preview after concurrent sends: %+v %v", c0, err)
	}
	// A missing channel is not an error (deleted while the send finished).
	if err := s.SetLastMessage(ctx, chat.Message{ID: "x", ChannelID: "nope", Seq: 1, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
}

func TestMembers(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testMembers(t, mode.opts) })
	}
}

func testMembers(t *testing.T, opts []Option) {
	s, _ := newStore(t, opts...)
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Millisecond)
	for i, u := range []string{"u3", "u1", "u2"} {
		m := chat.Member{ChannelID: "c", UserID: u, Role: chat.RoleMember, JoinedAt: base.Add(time.Duration(i) * time.Second)}
		if _, created, err := s.AddMember(ctx, m); err != nil || !created {
			t.Fatalf("add %s: %v %v", u, created, err)
		}
	}
	if _, created, err := s.AddMember(ctx, chat.Member{ChannelID: "c", UserID: "u1", Role: chat.RoleOwner}); err != nil || created {
		t.Fatalf("adding twice: %v %v", created, err)
	}
	if _, _, err := s.AddMember(ctx, chat.Member{ChannelID: "other", UserID: "u1", Role: chat.RoleOwner}); err != nil {
		t.Fatal(err)
	}
	all, err := s.AllMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || len(all["c"]) != 3 || all["c"][0].UserID != "u1" || all["c"][2].UserID != "u3" || all["other"][0].Role != chat.RoleOwner {
		t.Fatalf("AllMembers: %+v", all)
	}
	page, err := s.ListMembers(ctx, "c", "u1", 10)
	if err != nil || len(page) != 2 || page[0].UserID != "u2" || page[1].UserID != "u3" {
		t.Fatalf("ListMembers after u1: %+v %v", page, err)
	}
	first, err := s.FirstMemberWithRole(ctx, "c", chat.RoleMember, "u3")
	if err != nil || first.UserID != "u1" {
		t.Fatalf("earliest member but u3: %+v %v", first, err)
	}
	if _, err := s.FirstMemberWithRole(ctx, "c", chat.RoleAdmin, ""); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("no admin: %v", err)
	}
	counts, err := s.CountMembers(ctx, []string{"c", "other", "empty"})
	if err != nil || counts["c"] != 3 || counts["other"] != 1 || counts["empty"] != 0 {
		t.Fatalf("counts %v %v", counts, err)
	}
	ids, err := s.MemberChannelIDs(ctx, "u1")
	if err != nil || len(ids) != 2 {
		t.Fatalf("channels of u1: %v %v", ids, err)
	}
	for _, tc := range []struct{ seq, want int64 }{{5, 5}, {3, 5}, {7, 7}} {
		if got, err := s.MarkRead(ctx, "c", "u2", tc.seq); err != nil || got != tc.want {
			t.Fatalf("MarkRead(%d) = %d %v, want %d", tc.seq, got, err, tc.want)
		}
	}
	if _, err := s.MarkRead(ctx, "c", "ghost", 1); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("MarkRead of a non-member: %v", err)
	}
	if ok, err := s.DeleteMember(ctx, "c", "u2"); err != nil || !ok {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, err := s.DeleteMember(ctx, "c", "u2"); err != nil || ok {
		t.Fatalf("delete again: %v %v", ok, err)
	}
}

// writeModes are the store's two ways of writing: concurrent writes, and
// one writer with group commit (OneWriter). Tests of writes run in both.
var writeModes = []struct {
	name string
	opts []Option
}{
	{"concurrent", nil},
	{"one-writer", []Option{OneWriter()}},
}

func TestMessagesAndSeqs(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testMessagesAndSeqs(t, mode.opts) })
	}
}

func testMessagesAndSeqs(t *testing.T, opts []Option) {
	s, _ := newStore(t, opts...)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for want := int64(1); want <= 3; want++ {
		if got, err := s.NextSeq(ctx, "c"); err != nil || got != want {
			t.Fatalf("NextSeq = %d %v, want %d", got, err, want)
		}
	}
	m := chat.Message{ID: "m1", ChannelID: "c", Seq: 1, UserID: "u", Content: "x", Type: "text", CreatedAt: now, Metadata: map[string]string{"k": "v"}}
	if err := s.InsertMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertMessage(ctx, m); !errors.Is(err, chat.ErrMessageExists) {
		t.Fatalf("same id again: %v", err)
	}
	m2 := m
	m2.ID = "m2"
	if err := s.InsertMessage(ctx, m2); !errors.Is(err, chat.ErrSeqTaken) {
		t.Fatalf("same seq again: %v", err)
	}
	if err := s.RaiseSeq(ctx, "c", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.RaiseSeq(ctx, "c", 5); err != nil {
		t.Fatal(err)
	}
	if got, err := s.NextSeq(ctx, "c"); err != nil || got != 11 {
		t.Fatalf("NextSeq after raising to 10 = %d %v", got, err)
	}
	// An update that drops optional fields.
	m.Content, m.Metadata, m.Deleted, m.EditedAt = "", nil, true, now
	if err := s.UpdateMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMessage(ctx, "m1")
	if err != nil || !got.Deleted || got.Metadata != nil || !got.EditedAt.Equal(now) {
		t.Fatalf("after update: %+v %v", got, err)
	}
	if err := s.UpdateMessage(ctx, chat.Message{ID: "none"}); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("update a missing message: %v", err)
	}
}

func TestAttachmentFiles(t *testing.T) {
	s, db := newStore(t)
	ctx := t.Context()
	data := strings.Repeat("0123456789", 60_000) // 600 kB: three chunks
	a := chat.Attachment{ID: "a1", ChannelID: "c", UploaderID: "u", Filename: "f.txt", ContentType: "text/plain", CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	got, err := s.SaveAttachment(ctx, a, strings.NewReader(data))
	if err != nil || got.Size != int64(len(data)) {
		t.Fatalf("save: %+v %v", got, err)
	}
	// The driver's GridFS reads what we wrote.
	rc, err := s.OpenAttachment(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(rc)
	if cerr := rc.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil || string(back) != data {
		t.Fatalf("read back %d bytes: %v", len(back), err)
	}
	meta, err := s.GetAttachment(ctx, "a1")
	if err != nil || meta.ChannelID != "c" || meta.Size != int64(len(data)) || meta.ContentType != "text/plain" {
		t.Fatalf("metadata %+v %v", meta, err)
	}

	// A failing body leaves nothing behind.
	boom := errors.New("client went away")
	failing := io.MultiReader(strings.NewReader(data), errReader{boom})
	if _, err := s.SaveAttachment(ctx, chat.Attachment{ID: "a2", Filename: "g"}, failing); !errors.Is(err, boom) {
		t.Fatalf("failing body: %v", err)
	}
	n, err := db.Collection(AttachmentsBucket+".chunks").CountDocuments(ctx, bson.D{{Key: "files_id", Value: "a2"}})
	if err != nil || n != 0 {
		t.Fatalf("%d chunks left of a failed upload (%v)", n, err)
	}
	if _, err := s.GetAttachment(ctx, "a2"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("failed upload visible: %v", err)
	}
	if err := s.DeleteAttachment(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenAttachment(ctx, "a1"); !errors.Is(err, chat.ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestOutbox(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testOutbox(t, mode.opts) })
	}
}

func testOutbox(t *testing.T, opts []Option) {
	s, _ := newStore(t, opts...)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	msg := chat.Message{ID: "m", ChannelID: "c", Content: "x", CreatedAt: now, Terms: []string{"x"}}
	e := chat.OutboxEntry{
		ID:            "e1",
		Event:         chat.Event{ID: "e1", Type: chat.EventMessageSent, ChannelID: "c", ActorID: "u", Time: now, Message: &msg, Mentions: []string{"bob"}},
		CreatedAt:     now,
		NextAttemptAt: now.Add(time.Second),
	}
	if err := s.PutOutbox(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOutbox(ctx, e); !errors.Is(err, chat.ErrDuplicate) {
		t.Fatalf("twice: %v", err)
	}
	if due, err := s.DueOutbox(ctx, now, 10); err != nil || len(due) != 0 {
		t.Fatalf("due too early: %v %v", due, err)
	}
	later := now.Add(2 * time.Second)
	due, err := s.DueOutbox(ctx, later, 10)
	if err != nil || len(due) != 1 || due[0].Event.Message.Content != "x" || due[0].Event.Mentions[0] != "bob" {
		t.Fatalf("due: %+v %v", due, err)
	}
	if ok, err := s.ClaimOutbox(ctx, "e1", later, later.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, err := s.ClaimOutbox(ctx, "e1", later, later.Add(time.Minute)); err != nil || ok {
		t.Fatalf("second claim: %v %v", ok, err)
	}
	// The event is stored packed, as one binary.
	var raw bson.M
	if err := s.outbox.FindOne(ctx, bson.D{{Key: "_id", Value: "e1"}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["event_bson"].(bson.Binary); !ok || raw["event"] != nil {
		t.Fatalf("stored entry: event_bson %T, event %v; want a binary and no subdocument", raw["event_bson"], raw["event"])
	}
	if err := s.DeleteOutbox(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil { // the one-writer mode deletes behind
		t.Fatal(err)
	}
	if n, err := s.CountOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("count %d %v", n, err)
	}

	// An entry written by an older version, with the event as a
	// subdocument, is still read.
	old := bson.D{
		{Key: "_id", Value: "e0"}, {Key: "type", Value: chat.EventMessageSent}, {Key: "channel_id", Value: "c"},
		{Key: "event", Value: bson.D{
			{Key: "actor_id", Value: "u"}, {Key: "time", Value: now},
			{Key: "message", Value: bson.D{{Key: "_id", Value: "m0"}, {Key: "channel_id", Value: "c"}, {Key: "seq", Value: int64(7)}, {Key: "content", Value: "old"}}},
			{Key: "mentions", Value: bson.A{"carol"}},
		}},
		{Key: "created_at", Value: now}, {Key: "next_attempt_at", Value: now}, {Key: "attempts", Value: 0},
	}
	if _, err := s.outbox.InsertOne(ctx, old); err != nil {
		t.Fatal(err)
	}
	due, err = s.DueOutbox(ctx, later, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due old entry: %+v %v", due, err)
	}
	if ev := due[0].Event; ev.ActorID != "u" || ev.Message == nil || ev.Message.Seq != 7 || ev.Message.Content != "old" || ev.Mentions[0] != "carol" {
		t.Fatalf("old entry read as %+v", ev)
	}
}

// On FerretDB the preview is a read-compare-write by _id, and the last_seq
// read or written is trusted for previewMemoTTL: a newer preview written
// by another replica can be overwritten within the TTL (until the next
// message), never after it.
func TestPreviewMemo(t *testing.T) {
	a, db := newStore(t)
	a.idFiltersOnly.Store(true)
	clock := testenv.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a.now = clock.Now
	b := New(db) // another replica
	b.idFiltersOnly.Store(true)
	ctx := t.Context()
	now := clock.Now()
	if err := a.InsertChannel(ctx, chat.Channel{ID: "memo", Type: chat.ChannelGroup, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	set := func(s *Store, seq int64) {
		t.Helper()
		if err := s.SetLastMessage(ctx, chat.Message{ID: fmt.Sprint("m", seq), ChannelID: "memo", Seq: seq, Content: fmt.Sprint(seq), CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	last := func() int64 {
		t.Helper()
		ch, err := a.GetChannel(ctx, "memo")
		if err != nil {
			t.Fatal(err)
		}
		return ch.LastSeq
	}
	steps := []struct {
		name    string
		store   *Store
		seq     int64
		advance time.Duration
		want    int64
	}{
		{"first write reads, then writes", a, 5, 0, 5},
		{"an older seq from memory is ignored", a, 4, 0, 5},
		{"the other replica moves it on", b, 7, 0, 7},
		{"within the TTL the memo may regress it", a, 6, time.Second, 6},
		{"the other replica again", b, 9, 0, 9},
		{"after the TTL the memo is read again", a, 8, previewMemoTTL, 9},
		{"and then trusted again", a, 10, 0, 10},
	}
	for _, st := range steps {
		clock.Advance(st.advance)
		set(st.store, st.seq)
		if got := last(); got != st.want {
			t.Fatalf("%s: last_seq %d, want %d", st.name, got, st.want)
		}
	}

	// A deleted channel is forgotten, and a preview is never written
	// for it.
	if _, err := db.Collection(ChannelsCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: "memo"}}); err != nil {
		t.Fatal(err)
	}
	set(a, 11)
	if n, err := db.Collection(ChannelsCollection).CountDocuments(ctx, bson.D{{Key: "_id", Value: "memo"}}); err != nil || n != 0 {
		t.Fatalf("deleted channel: %d documents, %v", n, err)
	}
	p := &a.previews[stripe.Index("memo", len(a.previews))]
	if _, known := p.lookup("memo", clock.Now()); known {
		t.Fatal("the memo still knows a deleted channel")
	}
}

// With OneWriter, writes queue in the process: concurrent counter
// increments are exact even on FerretDB (whose $inc is a
// read-modify-write), and a write whose context ends while it waits gives
// up with the context's error.
func TestOneWriter(t *testing.T) {
	_, db := newStore(t)
	s := New(db, OneWriter())
	ctx := t.Context()
	const n = 20
	seqs := make(chan int64, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			seq, err := s.NextSeq(ctx, "gated")
			if err != nil {
				t.Error(err)
				return
			}
			seqs <- seq
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[int64]bool{}
	for seq := range seqs {
		if seen[seq] {
			t.Fatalf("seq %d handed out twice", seq)
		}
		seen[seq] = true
	}
	for seq := int64(1); seq <= n; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d missing; got %v", seq, seen)
		}
	}

	unlock, err := s.lockWrites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.PutOutbox(wctx, chat.OutboxEntry{ID: "waits", CreatedAt: time.Now()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write while the gate is held: %v, want the deadline", err)
	}
	unlock()
	if err := s.PutOutbox(ctx, chat.OutboxEntry{ID: "passes", CreatedAt: time.Now()}); err != nil {
		t.Fatalf("write after the gate is released: %v", err)
	}
}

// ReleaseSeq gives a seq back only while it is the counter's value, with
// the compound filter (MongoDB) and with the read-compare-write by _id
// (FerretDB).
func TestReleaseSeq(t *testing.T) {
	for _, mode := range writeModes {
		t.Run(mode.name, func(t *testing.T) { testReleaseSeq(t, mode.opts) })
	}
}

func testReleaseSeq(t *testing.T, opts []Option) {
	s, _ := newStore(t, opts...)
	ferret := s.idFiltersOnly.Load()
	defer s.idFiltersOnly.Store(ferret)
	ctx := t.Context()
	for _, idOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("idFiltersOnly=%v", idOnly), func(t *testing.T) {
			s.idFiltersOnly.Store(idOnly)
			ch := fmt.Sprintf("release-%v", idOnly)
			steps := []struct {
				name     string
				next     int // NextSeq calls first
				release  int64
				wantNext int64
			}{
				{"the last seq goes back", 3, 3, 3},
				{"an older seq does not", 1, 2, 5},
				{"nor a seq never handed out", 0, 9, 6},
			}
			for _, st := range steps {
				for range st.next {
					if _, err := s.NextSeq(ctx, ch); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.ReleaseSeq(ctx, ch, st.release); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				got, err := s.NextSeq(ctx, ch)
				if err != nil || got != st.wantNext {
					t.Fatalf("%s: next seq %d %v, want %d", st.name, got, err, st.wantNext)
				}
			}
			if err := s.ReleaseSeq(ctx, ch+"-missing", 1); err != nil {
				t.Fatalf("a channel without a counter: %v", err)
			}
		})
	}
}

// In the one-writer mode a counter write reserves a block of seqs, so
// most sends write none; after a restart (or a crash) seqs continue above
// the block, past every stored message, whatever the preview shows; and a
// store in the other mode catches a counter document that fell behind the
// preview up in one raise.
func TestSeqsInMemory(t *testing.T) {
	s, db := newStore(t, OneWriter())
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := s.InsertChannel(ctx, chat.Channel{ID: "c", Name: "c", Type: chat.ChannelGroup, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	msg := func(seq int64) chat.Message {
		return chat.Message{ID: fmt.Sprintf("m%d", seq), ChannelID: "c", Seq: seq, UserID: "u", Content: "x", Type: "text", CreatedAt: now}
	}
	counter := func() int64 {
		t.Helper()
		var d counterDoc
		if err := s.counters.FindOne(ctx, bson.D{{Key: "_id", Value: "c"}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d.Seq
	}
	for want := int64(1); want <= seqBlock+1; want++ {
		seq, err := s.NextSeq(ctx, "c")
		if err != nil || seq != want {
			t.Fatalf("NextSeq = %d, %v, want %d", seq, err, want)
		}
		if got, wantCounter := counter(), (want+seqBlock-1)/seqBlock*seqBlock; got != wantCounter {
			t.Fatalf("after seq %d the counter is %d, want %d (whole blocks)", want, got, wantCounter)
		}
		if want <= 3 {
			if err := s.InsertMessage(ctx, msg(seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Messages 1-3 are stored; the preview of 3 was lost with the process.
	if err := s.SetLastMessage(ctx, msg(2)); err != nil {
		t.Fatal(err)
	}

	restarted := New(db, OneWriter())
	t.Cleanup(func() { _ = restarted.Close(context.WithoutCancel(ctx)) })
	seq, err := restarted.NextSeq(ctx, "c")
	if err != nil || seq != 2*seqBlock+1 {
		t.Fatalf("NextSeq after a restart = %d, %v, want %d (above the reserved blocks)", seq, err, 2*seqBlock+1)
	}
	if err := restarted.InsertMessage(ctx, msg(seq)); err != nil {
		t.Fatal(err)
	}
	// A retry gives its seq back, in memory.
	if err := restarted.ReleaseSeq(ctx, "c", seq+1); err != nil {
		t.Fatal(err)
	}
	next, err := restarted.NextSeq(ctx, "c")
	if err != nil || next != seq+1 {
		t.Fatalf("NextSeq = %d, %v, want %d", next, err, seq+1)
	}
	if err := restarted.ReleaseSeq(ctx, "c", next); err != nil {
		t.Fatal(err)
	}
	if again, err := restarted.NextSeq(ctx, "c"); err != nil || again != next {
		t.Fatalf("NextSeq after releasing %d = %d, %v", next, again, err)
	}

	// A preview far above the counter document (restored data): one
	// raise catches the counter up, in either mode.
	if err := restarted.SetLastMessage(ctx, msg(100)); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Flush(ctx); err != nil { // the preview is written behind
		t.Fatal(err)
	}
	for _, st := range []*Store{New(db), restarted} {
		seq, err := st.NextSeq(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.RaiseSeq(ctx, "c", seq); err != nil {
			t.Fatal(err)
		}
		if seq, err := st.NextSeq(ctx, "c"); err != nil || seq <= 100 {
			t.Fatalf("NextSeq after one raise = %d, %v, want past the preview (100)", seq, err)
		}
	}
}
