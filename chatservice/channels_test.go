package chatservice

import (
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

func TestEditAndDelete(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "owner", "group", "edits", "author", "other", "admin")
	if _, err := f.client.SetMemberRole(as(t, "owner"), &chatv1.SetMemberRoleRequest{ChannelId: ch.GetId(), UserId: "admin", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	m := f.mustSend(t, "author", ch.GetId(), "first draft")
	second := f.mustSend(t, "author", ch.GetId(), "second message")

	_, err := f.client.EditMessage(as(t, "other"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId(), Content: "hijacked"})
	wantCode(t, err, codes.PermissionDenied, "edit someone else's message")
	_, err = f.client.EditMessage(as(t, "admin"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId(), Content: "moderated"})
	wantCode(t, err, codes.PermissionDenied, "an admin edits someone else's message")
	_, err = f.client.EditMessage(as(t, "author"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId(), Content: "   "})
	wantCode(t, err, codes.InvalidArgument, "edit to blank")
	_, err = f.client.EditMessage(as(t, "author"), &chatv1.EditMessageRequest{ChannelId: "c-other", MessageId: m.GetId(), Content: "x"})
	wantCode(t, err, codes.NotFound, "edit through another channel")

	ed, err := f.client.EditMessage(as(t, "author"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId(), Content: " final text "})
	if err != nil {
		t.Fatal(err)
	}
	if got := ed.GetMessage(); got.GetContent() != "final text" || got.GetEditedAt() == nil || got.GetSeq() != m.GetSeq() {
		t.Fatalf("edited: %v", got)
	}
	_, err = f.client.DeleteMessage(as(t, "other"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId()})
	wantCode(t, err, codes.PermissionDenied, "delete someone else's message")
	del, err := f.client.DeleteMessage(as(t, "admin"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := del.GetMessage(); !got.GetDeleted() || got.GetContent() != "" || got.GetSeq() != m.GetSeq() {
		t.Fatalf("tombstone: %v", got)
	}
	again, err := f.client.DeleteMessage(as(t, "author"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId()})
	if err != nil || !again.GetMessage().GetDeleted() {
		t.Fatalf("deleting twice: %v %v", again, err)
	}
	_, err = f.client.EditMessage(as(t, "author"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: m.GetId(), Content: "revive"})
	wantCode(t, err, codes.FailedPrecondition, "edit a deleted message")
	if _, err := f.client.DeleteMessage(as(t, "author"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: second.GetId()}); err != nil {
		t.Fatalf("the author deletes their own: %v", err)
	}

	// History keeps the tombstones in place: no holes.
	all := f.allMessages(t, "other", ch.GetId())
	if len(all) != 2 || !all[0].GetDeleted() || all[0].GetSeq() != 1 || !all[1].GetDeleted() {
		t.Fatalf("history: %v", all)
	}
}

func TestReadStateAndChannelList(t *testing.T) {
	f := newFixture(t)
	a := f.mustCreate(t, "ann", "group", "alpha", "bea")
	b := f.mustCreate(t, "bea", "public", "beta")
	for i := range 5 {
		f.mustSend(t, "ann", a.GetId(), fmt.Sprintf("a%d", i))
	}
	last := f.mustSend(t, "bea", b.GetId(), "the only one in beta")

	list := func(user string) map[string]*chatv1.JoinedChannel {
		t.Helper()
		resp, err := f.client.ListChannels(as(t, user), &chatv1.ListChannelsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*chatv1.JoinedChannel{}
		for _, j := range resp.GetChannels() {
			out[j.GetChannel().GetId()] = j
		}
		return out
	}
	bea := list("bea")
	if len(bea) != 2 {
		t.Fatalf("bea's channels: %v", bea)
	}
	if j := bea[a.GetId()]; j.GetUnreadCount() != 5 || j.GetLastReadSeq() != 0 || j.GetRole() != "member" ||
		j.GetLastMessage().GetContent() != "a4" || j.GetChannel().GetLastSeq() != 5 || j.GetChannel().GetMemberCount() != 2 {
		t.Fatalf("alpha for bea: %v", j)
	}
	// The sender's own messages count as read.
	if j := bea[b.GetId()]; j.GetUnreadCount() != 0 || j.GetLastReadSeq() != 1 || j.GetRole() != "owner" || j.GetLastMessage().GetId() != last.GetId() {
		t.Fatalf("beta for bea: %v", j)
	}
	if j := list("ann")[a.GetId()]; j.GetUnreadCount() != 0 || j.GetLastReadSeq() != 5 {
		t.Fatalf("alpha for ann: %v", j)
	}

	mark := func(seq int64) *chatv1.MarkReadResponse {
		t.Helper()
		resp, err := f.client.MarkRead(as(t, "bea"), &chatv1.MarkReadRequest{ChannelId: a.GetId(), Seq: seq})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := mark(3); r.GetLastReadSeq() != 3 || r.GetUnreadCount() != 2 {
		t.Fatalf("mark 3: %v", r)
	}
	if r := mark(1); r.GetLastReadSeq() != 3 || r.GetUnreadCount() != 2 {
		t.Fatalf("mark 1 after 3 moved backwards: %v", r)
	}
	if r := mark(99); r.GetLastReadSeq() != 5 || r.GetUnreadCount() != 0 {
		t.Fatalf("mark past the end: %v", r)
	}
	if j := list("bea")[a.GetId()]; j.GetUnreadCount() != 0 || j.GetLastReadSeq() != 5 {
		t.Fatalf("alpha for bea after reading: %v", j)
	}

	// A newcomer starts with the history counted as read.
	if _, err := f.client.JoinChannel(as(t, "cid"), &chatv1.JoinChannelRequest{ChannelId: b.GetId()}); err != nil {
		t.Fatal(err)
	}
	if j := list("cid")[b.GetId()]; j.GetUnreadCount() != 0 || j.GetLastReadSeq() != 1 {
		t.Fatalf("beta for a newcomer: %v", j)
	}

	// Pages of ListChannels.
	for i := range 4 {
		f.mustCreate(t, "dan", "group", fmt.Sprintf("g%d", i))
	}
	var ids []string
	token := ""
	for {
		resp, err := f.client.ListChannels(as(t, "dan"), &chatv1.ListChannelsRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range resp.GetChannels() {
			ids = append(ids, j.GetChannel().GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(ids) != 4 || ids[0] >= ids[1] || ids[1] >= ids[2] || ids[2] >= ids[3] {
		t.Fatalf("paged channel ids %v", ids)
	}
}

func TestBrowseChannels(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"Go gophers", "rustaceans", "gopher holes", "Cooking"} {
		f.mustCreate(t, "owner", "public", name)
	}
	f.mustCreate(t, "owner", "group", "secret gophers")
	browse := func(q string, size int32) []string {
		var names []string
		token := ""
		for {
			resp, err := f.client.BrowseChannels(as(t, "visitor"), &chatv1.BrowseChannelsRequest{Query: q, PageSize: size, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range resp.GetChannels() {
				names = append(names, c.GetName())
			}
			if token = resp.GetNextPageToken(); token == "" {
				return names
			}
		}
	}
	if got := fmt.Sprint(browse("GOPHER", 0)); got != "[Go gophers gopher holes]" {
		t.Fatalf("browse gopher: %s", got)
	}
	if got := fmt.Sprint(browse("", 1)); got != "[Cooking Go gophers gopher holes rustaceans]" {
		t.Fatalf("browse all by 1: %s", got)
	}
	if got := browse("a.b*", 0); len(got) != 0 {
		t.Fatalf("regexp characters are literal: %v", got)
	}
}

// The history cache answers exactly what MongoDB does: the same queries
// against a warm cache, after deleting the cache, and through a service
// without a cache give identical results.
func TestHistoryCacheMatchesMongoDB(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.CacheSize = 200 })
	ch := f.mustCreate(t, "ann", "public", "long history")
	for i := range 260 {
		f.mustSend(t, "ann", ch.GetId(), fmt.Sprintf("message %d", i))
	}
	// An edit and a delete inside the cached range, one outside it.
	for _, seq := range []int64{250, 10} {
		all := f.allMessages(t, "ann", ch.GetId())
		id := all[seq-1].GetId()
		if _, err := f.client.EditMessage(as(t, "ann"), &chatv1.EditMessageRequest{ChannelId: ch.GetId(), MessageId: id, Content: fmt.Sprintf("edited %d", seq)}); err != nil {
			t.Fatal(err)
		}
	}
	all := f.allMessages(t, "ann", ch.GetId())
	if _, err := f.client.DeleteMessage(as(t, "ann"), &chatv1.DeleteMessageRequest{ChannelId: ch.GetId(), MessageId: all[254].GetId()}); err != nil {
		t.Fatal(err)
	}
	queries := []*chatv1.GetMessagesRequest{
		{Limit: 50},
		{Limit: 100},
		{AfterSeq: int64p(0), Limit: 100},
		{AfterSeq: int64p(59), Limit: 100},
		{AfterSeq: int64p(60), Limit: 100},
		{AfterSeq: int64p(200), Limit: 100},
		{AfterSeq: int64p(259)},
		{AfterSeq: int64p(260)},
		{BeforeSeq: int64p(261), Limit: 100},
		{BeforeSeq: int64p(200), Limit: 100},
		{BeforeSeq: int64p(100), Limit: 100},
		{BeforeSeq: int64p(62), Limit: 3},
		{BeforeSeq: int64p(5), Limit: 10},
	}
	read := func(client chatv1.ChatServiceClient) []*chatv1.GetMessagesResponse {
		var out []*chatv1.GetMessagesResponse
		for _, q := range queries {
			q.ChannelId = ch.GetId()
			resp, err := client.GetMessages(as(t, "ann"), q)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, resp)
		}
		return out
	}
	fromMongo := func() []*chatv1.GetMessagesResponse {
		cold := *f
		cold.cfg.DisableCache = true
		cold.start(t)
		defer cold.stop()
		return read(cold.client)
	}()
	warm := read(f.client)
	if err := f.flushCache(t.Context()); err != nil {
		t.Fatal(err)
	}
	refilled := read(f.client)
	again := read(f.client)
	// The cache is bounded and was filled.
	n, err := f.rdb.ZCard(t.Context(), f.cfg.RedisPrefix+"chat:history:{"+ch.GetId()+"}").Result()
	if err != nil || n != 201 { // 200 messages and the marker
		t.Fatalf("cache set has %d members (%v), want 201", n, err)
	}
	for i := range queries {
		for name, got := range map[string]*chatv1.GetMessagesResponse{"warm": warm[i], "refilled": refilled[i], "again": again[i]} {
			if !proto.Equal(got, fromMongo[i]) {
				t.Fatalf("query %v: %s cache gave %d messages (more %v), MongoDB %d (more %v)", queries[i], name,
					len(got.GetMessages()), got.GetHasMore(), len(fromMongo[i].GetMessages()), fromMongo[i].GetHasMore())
			}
		}
	}
}

// A counter that fell behind the stored messages (a restore, FerretDB's
// non-atomic $inc across replicas) costs retries, not duplicate seqs.
func TestSeqCounterBehindIsRepaired(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "ann", "group", "restored")
	for range 3 {
		f.mustSend(t, "ann", ch.GetId(), "before")
	}
	ctx := t.Context()
	if _, err := f.db.Collection("counters").UpdateOne(ctx, bson.D{{Key: "_id", Value: ch.GetId()}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: int64(0)}}}}); err != nil {
		t.Fatal(err)
	}
	if m := f.mustSend(t, "ann", ch.GetId(), "after"); m.GetSeq() != 4 {
		t.Fatalf("seq after the counter reset: %d", m.GetSeq())
	}
	if m := f.mustSend(t, "ann", ch.GetId(), "next"); m.GetSeq() != 5 {
		t.Fatalf("next seq: %d", m.GetSeq())
	}
}

// The service stops within its grace period and can start again on the
// same data.
func TestRestartKeepsData(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "ann", "group", "durable")
	f.mustSend(t, "ann", ch.GetId(), "before restart")
	start := time.Now()
	f.stop()
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("stopping took %s", d)
	}
	f.start(t)
	if m := f.mustSend(t, "ann", ch.GetId(), "after restart"); m.GetSeq() != 2 {
		t.Fatalf("seq after restart: %d", m.GetSeq())
	}
}
