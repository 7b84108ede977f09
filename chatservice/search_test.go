package chatservice

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

func TestSearchMessages(t *testing.T) {
	f := newFixture(t)
	kitchen := f.mustCreate(t, "chef", "group", "kitchen", "cook")
	garden := f.mustCreate(t, "chef", "public", "garden")
	cellar := f.mustCreate(t, "sommelier", "group", "cellar") // chef is not in it

	contents := map[string]string{}
	send := func(ch *chatv1.Channel, user, text string) string {
		m := f.mustSend(t, user, ch.GetId(), text)
		contents[m.GetId()] = text
		return m.GetId()
	}
	brulee1 := send(kitchen, "chef", "Crème BRÛLÉE tonight, the café is closed")
	brulee2 := send(kitchen, "cook", "creme brulee needs a blowtorch")
	send(kitchen, "cook", "brûlée alone is not a dessert")
	brulee3 := send(garden, "chef", "We'll eat the CRÈME brûlée in the garden")
	send(cellar, "sommelier", "crème brûlée pairs with Sauternes")
	deleted := send(kitchen, "chef", "crème brûlée, burnt")
	if _, err := f.client.DeleteMessage(as(t, "chef"), &chatv1.DeleteMessageRequest{ChannelId: kitchen.GetId(), MessageId: deleted}); err != nil {
		t.Fatal(err)
	}
	edited := send(kitchen, "cook", "tarte tatin")
	if _, err := f.client.EditMessage(as(t, "cook"), &chatv1.EditMessageRequest{ChannelId: kitchen.GetId(), MessageId: edited, Content: "tarte tatin and creme brulee"}); err != nil {
		t.Fatal(err)
	}
	// chef joins nothing else; garden is public and chef is its owner.

	search := func(user string, req *chatv1.SearchMessagesRequest) []string {
		t.Helper()
		var ids []string
		for {
			resp, err := f.client.SearchMessages(as(t, user), req)
			if err != nil {
				t.Fatalf("search %q: %v", req.GetQuery(), err)
			}
			for _, m := range resp.GetMessages() {
				ids = append(ids, m.GetId())
			}
			if resp.GetNextPageToken() == "" {
				return ids
			}
			if req.GetPageSize() > 0 && len(resp.GetMessages()) != int(req.GetPageSize()) {
				t.Fatalf("a page of %d with page_size %d and a next page", len(resp.GetMessages()), req.GetPageSize())
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	tests := []struct {
		name string
		user string
		req  *chatv1.SearchMessagesRequest
		// want, newest first
		want []string
	}{
		{"accents and case ignored, AND of terms, newest first, deleted excluded", "chef",
			&chatv1.SearchMessagesRequest{Query: "CREME brulee"}, []string{edited, brulee3, brulee2, brulee1}},
		{"paginated by 1", "chef",
			&chatv1.SearchMessagesRequest{Query: "crème brûlée", PageSize: 1}, []string{edited, brulee3, brulee2, brulee1}},
		{"paginated by 3", "chef",
			&chatv1.SearchMessagesRequest{Query: "crème brûlée", PageSize: 3}, []string{edited, brulee3, brulee2, brulee1}},
		{"every term must match", "chef",
			&chatv1.SearchMessagesRequest{Query: "brulee blowtorch"}, []string{brulee2}},
		{"one channel", "chef",
			&chatv1.SearchMessagesRequest{Query: "brulee creme", ChannelId: garden.GetId()}, []string{brulee3}},
		{"a public channel the caller has not joined, when named", "sommelier",
			&chatv1.SearchMessagesRequest{Query: "brulee", ChannelId: garden.GetId()}, []string{brulee3}},
		{"not across channels the caller is not in", "cook",
			&chatv1.SearchMessagesRequest{Query: "creme brulee"}, []string{edited, brulee2, brulee1}},
		{"no match", "chef",
			&chatv1.SearchMessagesRequest{Query: "brulee sauternes"}, nil},
		{"an edit is searchable by its new words", "cook",
			&chatv1.SearchMessagesRequest{Query: "tatin"}, []string{edited}},
		{"punctuation splits words", "chef",
			&chatv1.SearchMessagesRequest{Query: "cafe"}, []string{brulee1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := search(tc.user, tc.req)
			if !slices.Equal(got, tc.want) {
				var texts []string
				for _, id := range got {
					texts = append(texts, contents[id])
				}
				t.Fatalf("found %q", texts)
			}
		})
	}

	_, err := f.client.SearchMessages(as(t, "chef"), &chatv1.SearchMessagesRequest{Query: "brulee", ChannelId: cellar.GetId()})
	wantCode(t, err, codes.PermissionDenied, "search a group channel one is not in")
	_, err = f.client.SearchMessages(as(t, "chef"), &chatv1.SearchMessagesRequest{Query: "a !"})
	wantCode(t, err, codes.InvalidArgument, "a query without a word")
	_, err = f.client.SearchMessages(as(t, "chef"), &chatv1.SearchMessagesRequest{Query: "brulee", PageToken: "not-a-token"})
	wantCode(t, err, codes.InvalidArgument, "a bad page token")
}
