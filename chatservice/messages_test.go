package chatservice

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

// allMessages reads a channel's whole history by catching up after seq 0,
// page by page, checking that seqs strictly increase across pages.
func (f *fixture) allMessages(t testing.TB, user, channelID string) []*chatv1.Message {
	t.Helper()
	var out []*chatv1.Message
	after := int64(0)
	for {
		resp, err := f.client.GetMessages(as(t, user), &chatv1.GetMessagesRequest{ChannelId: channelID, AfterSeq: int64p(after), Limit: 100})
		if err != nil {
			t.Fatalf("GetMessages after %d: %v", after, err)
		}
		for _, m := range resp.GetMessages() {
			if m.GetSeq() <= after {
				t.Fatalf("seq %d after %d: not strictly increasing", m.GetSeq(), after)
			}
			after = m.GetSeq()
			out = append(out, m)
		}
		if !resp.GetHasMore() {
			return out
		}
	}
}

// 20 senders x 50 messages into one channel: 1,000 stored messages, unique
// and strictly increasing seqs, each sender's in the order sent, all
// retrievable.
func TestConcurrentSendsGetUniqueIncreasingSeqs(t *testing.T) {
	for i, mode := range storeModes {
		// 1,000 sends with -race take a minute; the second mode makes
		// fewer.
		perSender := 50
		if i > 0 {
			perSender = 15
		}
		t.Run(mode.name, func(t *testing.T) { testConcurrentSends(t, perSender, mode.opts...) })
	}
}

func testConcurrentSends(t *testing.T, perSender int, opts ...option) {
	const senders = 20
	f := newFixture(t, opts...)
	var members []string
	for i := range senders {
		members = append(members, fmt.Sprintf("u%02d", i))
	}
	ch := f.mustCreate(t, "owner", "group", "busy", members...)

	type sent struct {
		sender int
		seqs   []int64
		ids    []string
	}
	results := make([]sent, senders)
	var wg sync.WaitGroup
	errs := make(chan error, senders*perSender)
	for i := range senders {
		wg.Go(func() {
			user := members[i]
			results[i].sender = i
			for j := range perSender {
				resp, err := f.client.SendMessage(as(t, user), &chatv1.SendMessageRequest{
					ChannelId: ch.GetId(), Content: fmt.Sprintf("message %d from %s", j, user),
				})
				if err != nil {
					errs <- fmt.Errorf("%s #%d: %w", user, j, err)
					return
				}
				results[i].seqs = append(results[i].seqs, resp.GetMessage().GetSeq())
				results[i].ids = append(results[i].ids, resp.GetMessage().GetId())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	seen := map[int64]string{}
	for _, r := range results {
		if !slices.IsSorted(r.seqs) {
			t.Errorf("sender %d: seqs not increasing in send order: %v", r.sender, r.seqs)
		}
		for k, seq := range r.seqs {
			if other, dup := seen[seq]; dup {
				t.Fatalf("seq %d given to %s and %s", seq, other, r.ids[k])
			}
			seen[seq] = r.ids[k]
		}
	}
	if len(seen) != senders*perSender {
		t.Fatalf("%d distinct seqs, want %d", len(seen), senders*perSender)
	}
	if n := f.countMessages(t, ch.GetId()); n != int64(senders*perSender) {
		t.Fatalf("%d messages stored, want %d", n, senders*perSender)
	}
	all := f.allMessages(t, "owner", ch.GetId())
	if len(all) != senders*perSender {
		t.Fatalf("history has %d messages, want %d", len(all), senders*perSender)
	}
	for _, m := range all {
		if seen[m.GetSeq()] != m.GetId() {
			t.Fatalf("history seq %d is %s, the sender was told %s", m.GetSeq(), m.GetId(), seen[m.GetSeq()])
		}
	}
}

// A retried send with the same client_msg_id stores one message, whether
// the retries come one after another or all at once.
func TestClientMsgIDMakesSendIdempotent(t *testing.T) {
	for _, mode := range storeModes {
		t.Run(mode.name, func(t *testing.T) { testClientMsgIDMakesSendIdempotent(t, mode.opts...) })
	}
}

func testClientMsgIDMakesSendIdempotent(t *testing.T, opts ...option) {
	f := newFixture(t, opts...)
	ch := f.mustCreate(t, "alice", "group", "retries", "bob")
	req := &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "once only", ClientMsgId: "c-1"}

	first, err := f.client.SendMessage(as(t, "alice"), req)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := f.client.SendMessage(as(t, "alice"), req)
		if err != nil {
			t.Fatal(err)
		}
		if again.GetMessage().GetId() != first.GetMessage().GetId() || again.GetMessage().GetSeq() != first.GetMessage().GetSeq() {
			t.Fatalf("retry returned %v, first %v", again.GetMessage(), first.GetMessage())
		}
	}

	// Concurrent retries of a new message.
	const n = 10
	req2 := &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "raced", ClientMsgId: "c-2"}
	got := make([]*chatv1.Message, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := f.client.SendMessage(as(t, "alice"), req2)
			if err != nil {
				t.Errorf("concurrent retry: %v", err)
				return
			}
			got[i] = resp.GetMessage()
		})
	}
	wg.Wait()
	for _, m := range got {
		if m.GetId() != got[0].GetId() || m.GetSeq() != got[0].GetSeq() {
			t.Fatalf("concurrent retries returned different messages: %v vs %v", m, got[0])
		}
	}
	// The same client_msg_id from another sender is another message.
	other, err := f.client.SendMessage(as(t, "bob"), &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "mine", ClientMsgId: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	if other.GetMessage().GetId() == first.GetMessage().GetId() {
		t.Fatal("bob's c-1 returned alice's message")
	}
	// Retries give back the seqs they drew: the channel's seqs have no
	// holes.
	if seq := other.GetMessage().GetSeq(); seq != 3 {
		t.Fatalf("the third message has seq %d, want 3: retries left holes", seq)
	}
	if c := f.countMessages(t, ch.GetId()); c != 3 {
		t.Fatalf("%d messages stored, want 3", c)
	}
	all := f.allMessages(t, "bob", ch.GetId())
	if len(all) != 3 {
		t.Fatalf("history has %d messages, want 3", len(all))
	}
}

// Bad input is refused with InvalidArgument and stores nothing.
func TestSendMessageRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "group", "strict")
	f.mustSend(t, "alice", ch.GetId(), "the one good message")

	bigMeta := map[string]string{}
	for i := range 17 {
		bigMeta[fmt.Sprintf("k%d", i)] = "v"
	}
	tests := []struct {
		name string
		req  *chatv1.SendMessageRequest
	}{
		{"empty content", &chatv1.SendMessageRequest{ChannelId: ch.GetId()}},
		{"whitespace content", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: " \t\n  "}},
		{"4001 characters", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: strings.Repeat("é", 4001)}},
		{"4001 characters after trimming", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: strings.Repeat("a", 4001) + "   "}},
		{"bad type", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", Type: "video"}},
		{"too many metadata pairs", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", Metadata: bigMeta}},
		{"metadata value too long", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", Metadata: map[string]string{"k": strings.Repeat("v", 1025)}}},
		{"metadata key with a space", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", Metadata: map[string]string{"a b": "v"}}},
		{"bad channel id", &chatv1.SendMessageRequest{ChannelId: "no/such", Content: "x"}},
		{"empty channel id", &chatv1.SendMessageRequest{Content: "x"}},
		{"bad client_msg_id", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", ClientMsgId: "a b"}},
		{"unknown attachment", &chatv1.SendMessageRequest{ChannelId: ch.GetId(), Content: "x", AttachmentId: "a0000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.SendMessage(as(t, "alice"), tc.req)
			wantCode(t, err, codes.InvalidArgument, tc.name)
		})
	}
	if n := f.countMessages(t, ch.GetId()); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}

	// GetMessages with both bounds, or a limit over 100.
	_, err := f.client.GetMessages(as(t, "alice"), &chatv1.GetMessagesRequest{ChannelId: ch.GetId(), BeforeSeq: int64p(5), AfterSeq: int64p(1)})
	wantCode(t, err, codes.InvalidArgument, "both before_seq and after_seq")
	_, err = f.client.GetMessages(as(t, "alice"), &chatv1.GetMessagesRequest{ChannelId: ch.GetId(), Limit: 101})
	wantCode(t, err, codes.InvalidArgument, "limit 101")
}

// Content is stored trimmed; 4000 characters (not bytes) is the limit.
func TestSendMessageTrimsAndCountsCharacters(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "group", "lengths")
	m := f.mustSend(t, "alice", ch.GetId(), "  padded  ")
	if m.GetContent() != "padded" || m.GetType() != "text" {
		t.Fatalf("stored %q of type %q", m.GetContent(), m.GetType())
	}
	long := strings.Repeat("é", 4000) // 8000 bytes, 4000 characters
	if got := f.mustSend(t, "alice", ch.GetId(), long); got.GetContent() != long {
		t.Fatal("4000 characters were not stored as sent")
	}
}

func TestGetMessagesPagination(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "public", "pages")
	for i := 1; i <= 25; i++ {
		f.mustSend(t, "alice", ch.GetId(), fmt.Sprintf("m%d", i))
	}
	seqs := func(ms []*chatv1.Message) []int64 {
		var out []int64
		for _, m := range ms {
			out = append(out, m.GetSeq())
		}
		return out
	}
	rng := func(from, to int64) []int64 {
		var out []int64
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		name     string
		req      *chatv1.GetMessagesRequest
		want     []int64
		wantMore bool
	}{
		{"latest page", &chatv1.GetMessagesRequest{Limit: 10}, rng(16, 25), true},
		{"default limit covers all", &chatv1.GetMessagesRequest{}, rng(1, 25), false},
		{"latest page exactly all", &chatv1.GetMessagesRequest{Limit: 25}, rng(1, 25), false},
		{"before 16", &chatv1.GetMessagesRequest{BeforeSeq: int64p(16), Limit: 10}, rng(6, 15), true},
		{"before 6", &chatv1.GetMessagesRequest{BeforeSeq: int64p(6), Limit: 10}, rng(1, 5), false},
		{"before 11 limit 10 reaches the start", &chatv1.GetMessagesRequest{BeforeSeq: int64p(11), Limit: 10}, rng(1, 10), false},
		{"before 1", &chatv1.GetMessagesRequest{BeforeSeq: int64p(1), Limit: 10}, nil, false},
		{"before beyond the end", &chatv1.GetMessagesRequest{BeforeSeq: int64p(1000), Limit: 3}, rng(23, 25), true},
		{"after 0", &chatv1.GetMessagesRequest{AfterSeq: int64p(0), Limit: 10}, rng(1, 10), true},
		{"after 15 limit 10 reaches the end", &chatv1.GetMessagesRequest{AfterSeq: int64p(15), Limit: 10}, rng(16, 25), false},
		{"after 20", &chatv1.GetMessagesRequest{AfterSeq: int64p(20), Limit: 10}, rng(21, 25), false},
		{"after the last", &chatv1.GetMessagesRequest{AfterSeq: int64p(25), Limit: 10}, nil, false},
		{"limit 1", &chatv1.GetMessagesRequest{AfterSeq: int64p(3), Limit: 1}, []int64{4}, true},
	}
	for _, cache := range []string{"warm cache", "cold cache"} {
		for _, tc := range tests {
			t.Run(cache+"/"+tc.name, func(t *testing.T) {
				if cache == "cold cache" {
					if err := f.flushCache(as(t, "x")); err != nil {
						t.Fatal(err)
					}
				}
				tc.req.ChannelId = ch.GetId()
				resp, err := f.client.GetMessages(as(t, "bob"), tc.req) // bob: not a member of the public channel
				if err != nil {
					t.Fatal(err)
				}
				if got := seqs(resp.GetMessages()); !slices.Equal(got, tc.want) || resp.GetHasMore() != tc.wantMore {
					t.Fatalf("seqs %v has_more %v, want %v %v", got, resp.GetHasMore(), tc.want, tc.wantMore)
				}
			})
		}
	}
}
