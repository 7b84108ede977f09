package apis

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	eventbusv1 "github.com/parleyhq/parley/apis/gen/go/parley/eventbus/v1"
	notificationv1 "github.com/parleyhq/parley/apis/gen/go/parley/notification/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
)

// validationCase is one request and the verdict expected from protovalidate.
// With field and rule both empty the request must be valid; otherwise some
// violation must match: field is the field path as protovalidate prints it
// (empty for rules on the whole message) and rule, if set, the rule id.
type validationCase struct {
	name  string
	msg   proto.Message
	field string
	rule  string
}

func newValidator(t *testing.T) protovalidate.Validator {
	t.Helper()
	v, err := protovalidate.New()
	if err != nil {
		t.Fatalf("protovalidate.New: %v", err)
	}
	return v
}

func runValidationCases(t *testing.T, cases []validationCase) {
	t.Helper()
	v := newValidator(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(tc.msg)
			if tc.field == "" && tc.rule == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var verr *protovalidate.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("want a validation error on %q (rule %q), got %v", tc.field, tc.rule, err)
			}
			var seen []string
			for _, viol := range verr.Violations {
				field := protovalidate.FieldPathString(viol.Proto.GetField())
				rule := viol.Proto.GetRuleId()
				if field == tc.field && (tc.rule == "" || rule == tc.rule) {
					return
				}
				seen = append(seen, fmt.Sprintf("%q (rule %s)", field, rule))
			}
			t.Fatalf("want a violation on %q (rule %q), got %s", tc.field, tc.rule, strings.Join(seen, ", "))
		})
	}
}

// ids returns n distinct valid ids.
func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("id-%d", i)
	}
	return out
}

func pairs(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}

var (
	tooLongID = strings.Repeat("a", 65)
	longToken = strings.Repeat("t", 513)
)

func TestUserServiceValidation(t *testing.T) {
	register := func(edit func(*userv1.RegisterRequest)) *userv1.RegisterRequest {
		r := &userv1.RegisterRequest{Username: "Alice_1.x", Email: "alice@example.com", Password: "correct horse", DisplayName: "Alice A."}
		edit(r)
		return r
	}
	same := func(*userv1.RegisterRequest) {}
	runValidationCases(t, []validationCase{
		{name: "register valid", msg: register(same)},
		{name: "register empty", msg: &userv1.RegisterRequest{}, field: "username"},
		{name: "register username too short", msg: register(func(r *userv1.RegisterRequest) { r.Username = "al" }), field: "username"},
		{name: "register username too long", msg: register(func(r *userv1.RegisterRequest) { r.Username = strings.Repeat("a", 33) }), field: "username"},
		{name: "register username with space", msg: register(func(r *userv1.RegisterRequest) { r.Username = "al ice" }), field: "username"},
		{name: "register username with operator", msg: register(func(r *userv1.RegisterRequest) { r.Username = "$where" }), field: "username"},
		{name: "register bad email", msg: register(func(r *userv1.RegisterRequest) { r.Email = "alice.example.com" }), field: "email"},
		{name: "register email too long", msg: register(func(r *userv1.RegisterRequest) {
			r.Email = strings.Repeat("a", 64) + "@" + strings.Repeat(strings.Repeat("b", 63)+".", 3) + "com"
		}), field: "email", rule: "string.max_len"},
		{name: "register password too short", msg: register(func(r *userv1.RegisterRequest) { r.Password = "1234567" }), field: "password"},
		{name: "register password too long", msg: register(func(r *userv1.RegisterRequest) { r.Password = strings.Repeat("p", 129) }), field: "password"},
		{name: "register empty display name", msg: register(func(r *userv1.RegisterRequest) { r.DisplayName = "" }), field: "display_name"},
		{name: "register display name too long", msg: register(func(r *userv1.RegisterRequest) { r.DisplayName = strings.Repeat("é", 65) }), field: "display_name"},
		{name: "register display name with control character", msg: register(func(r *userv1.RegisterRequest) { r.DisplayName = "Al\x00ice" }), field: "display_name"},

		{name: "login with username", msg: &userv1.LoginRequest{Login: "alice", Password: "x"}},
		{name: "login with email", msg: &userv1.LoginRequest{Login: "Alice@Example.com", Password: "x"}},
		{name: "login empty", msg: &userv1.LoginRequest{Password: "x"}, field: "login"},
		// A JSON object sent as the login arrives as this string: it is
		// neither a username nor an email, so it never reaches a query.
		{name: "login mongo operator", msg: &userv1.LoginRequest{Login: `{"$gt": ""}`, Password: "x"}, field: "login", rule: "login.username_or_email"},
		{name: "login mongo operator too long", msg: &userv1.LoginRequest{Login: strings.Repeat(`{"$ne": null}`, 30), Password: "x"}, field: "login", rule: "string.max_len"},
		{name: "login password empty", msg: &userv1.LoginRequest{Login: "alice"}, field: "password"},
		{name: "login password too long", msg: &userv1.LoginRequest{Login: "alice", Password: strings.Repeat("p", 129)}, field: "password"},

		{name: "refresh valid", msg: &userv1.RefreshTokenRequest{RefreshToken: "rt_abc"}},
		{name: "refresh empty", msg: &userv1.RefreshTokenRequest{}, field: "refresh_token"},
		{name: "refresh too long", msg: &userv1.RefreshTokenRequest{RefreshToken: strings.Repeat("r", 1025)}, field: "refresh_token"},
		{name: "logout empty", msg: &userv1.LogoutRequest{}, field: "refresh_token"},

		{name: "get profile of caller", msg: &userv1.GetProfileRequest{}},
		{name: "get profile me", msg: &userv1.GetProfileRequest{UserId: "me"}},
		{name: "get profile by id", msg: &userv1.GetProfileRequest{UserId: "u_01HZX-9"}},
		{name: "get profile path traversal", msg: &userv1.GetProfileRequest{UserId: "../admin"}, field: "user_id"},
		{name: "get profile id too long", msg: &userv1.GetProfileRequest{UserId: tooLongID}, field: "user_id"},

		{name: "update profile nothing set", msg: &userv1.UpdateProfileRequest{}, rule: "update_profile.not_empty"},
		{name: "update profile display name", msg: &userv1.UpdateProfileRequest{DisplayName: proto.String("Al")}},
		{name: "update profile empty display name", msg: &userv1.UpdateProfileRequest{DisplayName: proto.String("")}, field: "display_name"},
		{name: "update profile clear avatar", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("")}},
		{name: "update profile https avatar", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("https://cdn.example.com/a.png")}},
		{name: "update profile site avatar", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("/v1/attachments/att-1")}},
		{name: "update profile javascript avatar", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("javascript:alert(1)")}, field: "avatar_url", rule: "avatar_url.http_or_path"},
		{name: "update profile protocol-relative avatar", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("//evil.example/a.png")}, field: "avatar_url"},
		{name: "update profile avatar too long", msg: &userv1.UpdateProfileRequest{AvatarUrl: proto.String("https://e.example/" + strings.Repeat("a", 2048))}, field: "avatar_url", rule: "string.max_len"},
		{name: "update profile status too long", msg: &userv1.UpdateProfileRequest{StatusMessage: proto.String(strings.Repeat("s", 141))}, field: "status_message"},

		{name: "search valid", msg: &userv1.SearchUsersRequest{Query: "ali", PageSize: 100, PageToken: "abc"}},
		{name: "search empty query", msg: &userv1.SearchUsersRequest{}, field: "query"},
		{name: "search page size too big", msg: &userv1.SearchUsersRequest{Query: "a", PageSize: 101}, field: "page_size"},
		{name: "search negative page size", msg: &userv1.SearchUsersRequest{Query: "a", PageSize: -1}, field: "page_size"},
		{name: "search page token too long", msg: &userv1.SearchUsersRequest{Query: "a", PageToken: longToken}, field: "page_token"},

		{name: "add friend valid", msg: &userv1.AddFriendRequest{UserId: "u1"}},
		{name: "add friend empty", msg: &userv1.AddFriendRequest{}, field: "user_id"},
		{name: "list friends all", msg: &userv1.ListFriendsRequest{}},
		{name: "list friends incoming", msg: &userv1.ListFriendsRequest{State: "incoming"}},
		{name: "list friends bad state", msg: &userv1.ListFriendsRequest{State: "blocked"}, field: "state", rule: "string.in"},
		{name: "remove friend empty", msg: &userv1.RemoveFriendRequest{}, field: "user_id"},

		{name: "batch get valid", msg: &userv1.BatchGetUsersRequest{UserIds: ids(100)}},
		{name: "batch get none", msg: &userv1.BatchGetUsersRequest{}, field: "user_ids"},
		{name: "batch get too many", msg: &userv1.BatchGetUsersRequest{UserIds: ids(101)}, field: "user_ids"},
		{name: "batch get bad id", msg: &userv1.BatchGetUsersRequest{UserIds: []string{"u1", "u 2"}}, field: "user_ids[1]"},
		{name: "jwks", msg: &userv1.GetJWKSRequest{}},
	})
}

func TestChatServiceValidation(t *testing.T) {
	send := func(edit func(*chatv1.SendMessageRequest)) *chatv1.SendMessageRequest {
		r := &chatv1.SendMessageRequest{ChannelId: "c1", Content: "hello", Type: "text", ClientMsgId: "6f1c2a5e-0d7b-4a43-9a57-1f4f6f0b9c11", Metadata: map[string]string{"reply_to": "m1"}}
		edit(r)
		return r
	}
	runValidationCases(t, []validationCase{
		{name: "create public", msg: &chatv1.CreateChannelRequest{Name: "general", Type: "public", Description: "Everything"}},
		{name: "create group with members", msg: &chatv1.CreateChannelRequest{Name: "team", Type: "group", MemberIds: ids(256)}},
		{name: "create private without name", msg: &chatv1.CreateChannelRequest{Type: "private", MemberIds: []string{"u2"}}},
		{name: "create public without name", msg: &chatv1.CreateChannelRequest{Type: "public"}, rule: "create_channel.name_required"},
		{name: "create empty type", msg: &chatv1.CreateChannelRequest{Name: "x"}, field: "type", rule: "string.in"},
		{name: "create upper-case type", msg: &chatv1.CreateChannelRequest{Name: "x", Type: "PUBLIC"}, field: "type", rule: "string.in"},
		{name: "create name too long", msg: &chatv1.CreateChannelRequest{Name: strings.Repeat("n", 81), Type: "public"}, field: "name"},
		{name: "create too many members", msg: &chatv1.CreateChannelRequest{Name: "x", Type: "group", MemberIds: ids(257)}, field: "member_ids"},
		{name: "create duplicate members", msg: &chatv1.CreateChannelRequest{Name: "x", Type: "group", MemberIds: []string{"u1", "u1"}}, field: "member_ids", rule: "repeated.unique"},
		{name: "create bad member id", msg: &chatv1.CreateChannelRequest{Name: "x", Type: "group", MemberIds: []string{"u1", "u/2"}}, field: "member_ids[1]"},
		{name: "create description too long", msg: &chatv1.CreateChannelRequest{Name: "x", Type: "public", Description: strings.Repeat("d", 501)}, field: "description"},

		{name: "list channels", msg: &chatv1.ListChannelsRequest{PageSize: 10}},
		{name: "list channels page size", msg: &chatv1.ListChannelsRequest{PageSize: 1000}, field: "page_size"},
		{name: "browse", msg: &chatv1.BrowseChannelsRequest{Query: "gen"}},
		{name: "browse query too long", msg: &chatv1.BrowseChannelsRequest{Query: strings.Repeat("q", 81)}, field: "query"},
		{name: "browse page token too long", msg: &chatv1.BrowseChannelsRequest{PageToken: longToken}, field: "page_token"},
		{name: "get channel empty id", msg: &chatv1.GetChannelRequest{}, field: "channel_id"},
		{name: "get channel id with operator", msg: &chatv1.GetChannelRequest{ChannelId: `{"$ne":1}`}, field: "channel_id"},

		{name: "join self", msg: &chatv1.JoinChannelRequest{ChannelId: "c1"}},
		{name: "join other", msg: &chatv1.JoinChannelRequest{ChannelId: "c1", UserId: "u2"}},
		{name: "join bad user", msg: &chatv1.JoinChannelRequest{ChannelId: "c1", UserId: tooLongID}, field: "user_id"},
		{name: "leave empty", msg: &chatv1.LeaveChannelRequest{}, field: "channel_id"},
		{name: "remove member me", msg: &chatv1.RemoveMemberRequest{ChannelId: "c1", UserId: "me"}},
		{name: "remove member empty", msg: &chatv1.RemoveMemberRequest{ChannelId: "c1"}, field: "user_id"},
		{name: "set role", msg: &chatv1.SetMemberRoleRequest{ChannelId: "c1", UserId: "u2", Role: "admin"}},
		{name: "set role unknown", msg: &chatv1.SetMemberRoleRequest{ChannelId: "c1", UserId: "u2", Role: "superuser"}, field: "role", rule: "string.in"},

		{name: "send valid", msg: send(func(*chatv1.SendMessageRequest) {})},
		{name: "send default type", msg: send(func(r *chatv1.SendMessageRequest) { r.Type = "" })},
		{name: "send max content", msg: send(func(r *chatv1.SendMessageRequest) { r.Content = strings.Repeat("ü", 4000) })},
		{name: "send attachment only", msg: send(func(r *chatv1.SendMessageRequest) { r.Content, r.Type, r.AttachmentId = "", "image", "att-1" })},
		{name: "send empty", msg: send(func(r *chatv1.SendMessageRequest) { r.Content = "" }), rule: "send_message.content_or_attachment"},
		{name: "send content too long", msg: send(func(r *chatv1.SendMessageRequest) { r.Content = strings.Repeat("c", 4001) }), field: "content"},
		{name: "send bad type", msg: send(func(r *chatv1.SendMessageRequest) { r.Type = "video" }), field: "type", rule: "string.in"},
		{name: "send no channel", msg: send(func(r *chatv1.SendMessageRequest) { r.ChannelId = "" }), field: "channel_id"},
		{name: "send client id too long", msg: send(func(r *chatv1.SendMessageRequest) { r.ClientMsgId = tooLongID }), field: "client_msg_id"},
		{name: "send 16 metadata pairs", msg: send(func(r *chatv1.SendMessageRequest) { r.Metadata = pairs(16) })},
		{name: "send 17 metadata pairs", msg: send(func(r *chatv1.SendMessageRequest) { r.Metadata = pairs(17) }), field: "metadata", rule: "map.max_pairs"},
		{name: "send empty metadata key", msg: send(func(r *chatv1.SendMessageRequest) { r.Metadata = map[string]string{"": "v"} }), field: `metadata[""]`, rule: "string.min_len"},
		{name: "send metadata key with operator", msg: send(func(r *chatv1.SendMessageRequest) { r.Metadata = map[string]string{"$set": "v"} }), field: `metadata["$set"]`, rule: "string.pattern"},
		{name: "send metadata value too long", msg: send(func(r *chatv1.SendMessageRequest) { r.Metadata = map[string]string{"k": strings.Repeat("v", 1025)} }), field: `metadata["k"]`, rule: "string.max_len"},
		{name: "send bad attachment id", msg: send(func(r *chatv1.SendMessageRequest) { r.AttachmentId = "a b" }), field: "attachment_id"},

		{name: "history latest", msg: &chatv1.GetMessagesRequest{ChannelId: "c1"}},
		{name: "history before", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", BeforeSeq: proto.Int64(100), Limit: 100}},
		{name: "history from start", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", AfterSeq: proto.Int64(0)}},
		{name: "history before and after", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", BeforeSeq: proto.Int64(10), AfterSeq: proto.Int64(2)}, rule: "get_messages.before_xor_after"},
		{name: "history before zero", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", BeforeSeq: proto.Int64(0)}, field: "before_seq"},
		{name: "history negative after", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", AfterSeq: proto.Int64(-1)}, field: "after_seq"},
		{name: "history limit too big", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", Limit: 101}, field: "limit"},
		{name: "history negative limit", msg: &chatv1.GetMessagesRequest{ChannelId: "c1", Limit: -5}, field: "limit"},

		{name: "edit valid", msg: &chatv1.EditMessageRequest{ChannelId: "c1", MessageId: "m1", Content: "fixed"}},
		{name: "edit empty content", msg: &chatv1.EditMessageRequest{ChannelId: "c1", MessageId: "m1"}, field: "content"},
		{name: "edit no message id", msg: &chatv1.EditMessageRequest{ChannelId: "c1", Content: "x"}, field: "message_id"},
		{name: "delete valid", msg: &chatv1.DeleteMessageRequest{ChannelId: "c1", MessageId: "m1"}},
		{name: "delete no ids", msg: &chatv1.DeleteMessageRequest{}, field: "message_id"},
		{name: "mark read", msg: &chatv1.MarkReadRequest{ChannelId: "c1", Seq: 42}},
		{name: "mark read negative", msg: &chatv1.MarkReadRequest{ChannelId: "c1", Seq: -1}, field: "seq"},

		{name: "search everywhere", msg: &chatv1.SearchMessagesRequest{Query: "lunch"}},
		{name: "search one channel", msg: &chatv1.SearchMessagesRequest{Query: "lunch", ChannelId: "c1", PageSize: 20}},
		{name: "search empty query", msg: &chatv1.SearchMessagesRequest{}, field: "query"},
		{name: "search query too long", msg: &chatv1.SearchMessagesRequest{Query: strings.Repeat("q", 201)}, field: "query"},
		{name: "search bad channel", msg: &chatv1.SearchMessagesRequest{Query: "q", ChannelId: "c#1"}, field: "channel_id"},

		{name: "check access", msg: &chatv1.CheckAccessRequest{ChannelId: "c1", UserId: "u1"}},
		{name: "check access no user", msg: &chatv1.CheckAccessRequest{ChannelId: "c1"}, field: "user_id"},
		{name: "get attachment", msg: &chatv1.GetAttachmentRequest{AttachmentId: "att-1"}},
		{name: "get attachment empty", msg: &chatv1.GetAttachmentRequest{}, field: "attachment_id"},
		{name: "download empty", msg: &chatv1.DownloadAttachmentRequest{}, field: "attachment_id"},
	})
}

func TestUploadAttachmentValidation(t *testing.T) {
	info := func(edit func(*chatv1.UploadAttachmentInfo)) *chatv1.UploadAttachmentRequest {
		i := &chatv1.UploadAttachmentInfo{ChannelId: "c1", Filename: "cat photo (1).png", ContentType: "image/png", Size: 1234}
		edit(i)
		return &chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Info{Info: i}}
	}
	chunk := func(n int) *chatv1.UploadAttachmentRequest {
		return &chatv1.UploadAttachmentRequest{Payload: &chatv1.UploadAttachmentRequest_Chunk{Chunk: make([]byte, n)}}
	}
	runValidationCases(t, []validationCase{
		{name: "info valid", msg: info(func(*chatv1.UploadAttachmentInfo) {})},
		{name: "info with parameters", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.ContentType = "text/plain; charset=utf-8" })},
		{name: "chunk valid", msg: chunk(64 << 10)},
		{name: "no payload", msg: &chatv1.UploadAttachmentRequest{}, field: "payload", rule: "required"},
		{name: "chunk too big", msg: chunk(64<<10 + 1), field: "chunk"},
		{name: "chunk empty", msg: chunk(0), field: "chunk"},
		{name: "info path in filename", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.Filename = "../../etc/passwd" }), field: "info.filename"},
		{name: "info windows path in filename", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.Filename = `C:\x.exe` }), field: "info.filename"},
		{name: "info filename too long", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.Filename = strings.Repeat("f", 256) }), field: "info.filename"},
		{name: "info bad content type", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.ContentType = "image" }), field: "info.content_type"},
		{name: "info zero size", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.Size = 0 }), field: "info.size"},
		{name: "info no channel", msg: info(func(i *chatv1.UploadAttachmentInfo) { i.ChannelId = "" }), field: "info.channel_id"},
	})
}

func TestPresenceServiceValidation(t *testing.T) {
	runValidationCases(t, []validationCase{
		{name: "status away", msg: &presencev1.UpdateStatusRequest{Status: "away", StatusMessage: proto.String("lunch")}},
		{name: "status invisible", msg: &presencev1.UpdateStatusRequest{Status: "offline"}},
		{name: "status unknown", msg: &presencev1.UpdateStatusRequest{Status: "invisible"}, field: "status", rule: "string.in"},
		{name: "status upper-case", msg: &presencev1.UpdateStatusRequest{Status: "Online"}, field: "status", rule: "string.in"},
		{name: "status empty", msg: &presencev1.UpdateStatusRequest{}, field: "status"},
		{name: "status message too long", msg: &presencev1.UpdateStatusRequest{Status: "busy", StatusMessage: proto.String(strings.Repeat("m", 141))}, field: "status_message"},

		{name: "user status me", msg: &presencev1.GetUserStatusRequest{UserId: "me"}},
		{name: "user status empty", msg: &presencev1.GetUserStatusRequest{}, field: "user_id"},

		{name: "online by ids", msg: &presencev1.GetOnlineUsersRequest{UserIds: ids(500)}},
		{name: "online by channel", msg: &presencev1.GetOnlineUsersRequest{ChannelId: "c1", PageSize: 50}},
		{name: "online friends", msg: &presencev1.GetOnlineUsersRequest{Friends: true}},
		{name: "online no scope", msg: &presencev1.GetOnlineUsersRequest{}, rule: "get_online_users.one_scope"},
		{name: "online two scopes", msg: &presencev1.GetOnlineUsersRequest{ChannelId: "c1", Friends: true}, rule: "get_online_users.one_scope"},
		{name: "online too many ids", msg: &presencev1.GetOnlineUsersRequest{UserIds: ids(501)}, field: "user_ids"},
		{name: "online page size", msg: &presencev1.GetOnlineUsersRequest{Friends: true, PageSize: 101}, field: "page_size"},

		{name: "subscribe friends and users", msg: &presencev1.SubscribeToPresenceRequest{UserIds: []string{"u1"}, Friends: true}},
		{name: "subscribe nothing", msg: &presencev1.SubscribeToPresenceRequest{}, rule: "subscribe_to_presence.scope"},
		{name: "subscribe bad id", msg: &presencev1.SubscribeToPresenceRequest{UserIds: []string{""}}, field: "user_ids[0]"},

		{name: "connect", msg: &presencev1.ConnectRequest{UserId: "u1", ConnectionId: "conn-1", NodeId: "gateway-7f9c.parley:8080"}},
		{name: "connect no node", msg: &presencev1.ConnectRequest{UserId: "u1", ConnectionId: "conn-1"}, field: "node_id"},
		{name: "disconnect no connection", msg: &presencev1.DisconnectRequest{UserId: "u1", NodeId: "n1"}, field: "connection_id"},
		{name: "heartbeat empty node", msg: &presencev1.HeartbeatRequest{NodeId: "n1"}},
		{name: "heartbeat bad connection", msg: &presencev1.HeartbeatRequest{NodeId: "n1", ConnectionIds: []string{"ok", "not ok"}}, field: "connection_ids[1]"},
		{name: "heartbeat no node", msg: &presencev1.HeartbeatRequest{}, field: "node_id"},
	})
}

func TestNotificationServiceValidation(t *testing.T) {
	prefs := func(edit func(*notificationv1.NotificationPreferences)) *notificationv1.UpdateNotificationPreferencesRequest {
		p := &notificationv1.NotificationPreferences{
			Direct: true, Mentions: true,
			MutedChannels: []*notificationv1.MutedChannel{{ChannelId: "c1"}, {ChannelId: "c2", Until: timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))}},
			QuietHours:    &notificationv1.QuietHours{Enabled: true, Start: "22:00", End: "07:30", TimeZone: "America/Argentina/Buenos_Aires"},
		}
		edit(p)
		return &notificationv1.UpdateNotificationPreferencesRequest{Preferences: p}
	}
	push := &notificationv1.WebPushSubscription{
		Endpoint: "https://fcm.googleapis.com/fcm/send/abc:def",
		P256Dh:   "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
		Auth:     "tBHItJI5svbpez7KI4CCXg",
	}
	runValidationCases(t, []validationCase{
		{name: "push valid", msg: &notificationv1.SendPushNotificationRequest{UserId: "u1", Title: "Hi", Body: "there", Priority: "high", Data: pairs(16), NotificationId: "n-1"}},
		{name: "push no title", msg: &notificationv1.SendPushNotificationRequest{UserId: "u1"}, field: "title"},
		{name: "push no user", msg: &notificationv1.SendPushNotificationRequest{Title: "t"}, field: "user_id"},
		{name: "push bad priority", msg: &notificationv1.SendPushNotificationRequest{UserId: "u1", Title: "t", Priority: "urgent"}, field: "priority", rule: "string.in"},
		{name: "push too much data", msg: &notificationv1.SendPushNotificationRequest{UserId: "u1", Title: "t", Data: pairs(17)}, field: "data"},
		{name: "push body too long", msg: &notificationv1.SendPushNotificationRequest{UserId: "u1", Title: "t", Body: strings.Repeat("b", 2001)}, field: "body"},

		{name: "email to user", msg: &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_UserId{UserId: "u1"}, Subject: "Hello", TextBody: "hi"}},
		{name: "email to address", msg: &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_To{To: "bob@example.org"}, Subject: "Hello", HtmlBody: "<p>hi</p>"}},
		{name: "email no recipient", msg: &notificationv1.SendEmailRequest{Subject: "s", TextBody: "b"}, field: "recipient", rule: "required"},
		{name: "email bad address", msg: &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_To{To: "bob"}, Subject: "s", TextBody: "b"}, field: "to"},
		{name: "email header injection", msg: &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_UserId{UserId: "u1"}, Subject: "hi\r\nBcc: all@example.org", TextBody: "b"}, field: "subject"},
		{name: "email no body", msg: &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_UserId{UserId: "u1"}, Subject: "s"}, rule: "send_email.body_required"},

		{name: "history", msg: &notificationv1.GetNotificationHistoryRequest{PageSize: 100}},
		{name: "history page size", msg: &notificationv1.GetNotificationHistoryRequest{PageSize: 101}, field: "page_size"},
		{name: "history page token", msg: &notificationv1.GetNotificationHistoryRequest{PageToken: longToken}, field: "page_token"},

		{name: "preferences valid", msg: prefs(func(*notificationv1.NotificationPreferences) {})},
		{name: "preferences without quiet hours", msg: prefs(func(p *notificationv1.NotificationPreferences) { p.QuietHours = nil })},
		{name: "preferences quiet hours disabled and empty", msg: prefs(func(p *notificationv1.NotificationPreferences) { p.QuietHours = &notificationv1.QuietHours{} })},
		{name: "preferences missing", msg: &notificationv1.UpdateNotificationPreferencesRequest{}, field: "preferences", rule: "required"},
		{name: "preferences quiet hours without times", msg: prefs(func(p *notificationv1.NotificationPreferences) {
			p.QuietHours = &notificationv1.QuietHours{Enabled: true}
		}), field: "preferences.quiet_hours", rule: "quiet_hours.times_required"},
		{name: "preferences bad start", msg: prefs(func(p *notificationv1.NotificationPreferences) { p.QuietHours.Start = "24:00" }), field: "preferences.quiet_hours.start"},
		{name: "preferences bad end", msg: prefs(func(p *notificationv1.NotificationPreferences) { p.QuietHours.End = "7:30" }), field: "preferences.quiet_hours.end"},
		{name: "preferences bad time zone", msg: prefs(func(p *notificationv1.NotificationPreferences) { p.QuietHours.TimeZone = "Europe/Paris; DROP" }), field: "preferences.quiet_hours.time_zone"},
		{name: "preferences channel muted twice", msg: prefs(func(p *notificationv1.NotificationPreferences) {
			p.MutedChannels = append(p.MutedChannels, &notificationv1.MutedChannel{ChannelId: "c1"})
		}), field: "preferences.muted_channels", rule: "muted_channels.unique"},
		{name: "preferences muted channel without id", msg: prefs(func(p *notificationv1.NotificationPreferences) {
			p.MutedChannels = []*notificationv1.MutedChannel{{}}
		}), field: "preferences.muted_channels[0].channel_id"},
		{name: "preferences mute beyond year 9999", msg: prefs(func(p *notificationv1.NotificationPreferences) {
			p.MutedChannels[0].Until = &timestamppb.Timestamp{Seconds: 253402300800}
		}), field: "preferences.muted_channels[0].until"},
		{name: "preferences too many muted channels", msg: prefs(func(p *notificationv1.NotificationPreferences) {
			p.MutedChannels = nil
			for _, id := range ids(501) {
				p.MutedChannels = append(p.MutedChannels, &notificationv1.MutedChannel{ChannelId: id})
			}
		}), field: "preferences.muted_channels", rule: "repeated.max_items"},

		{name: "device fcm", msg: &notificationv1.RegisterDeviceRequest{Platform: "fcm", FcmToken: "dGVzdA:APA91b-token_1"}},
		{name: "device webpush", msg: &notificationv1.RegisterDeviceRequest{Platform: "webpush", WebPush: push}},
		{name: "device unknown platform", msg: &notificationv1.RegisterDeviceRequest{Platform: "apns", FcmToken: "t"}, field: "platform", rule: "string.in"},
		{name: "device fcm without token", msg: &notificationv1.RegisterDeviceRequest{Platform: "fcm"}, rule: "register_device.fcm_token"},
		{name: "device fcm with subscription", msg: &notificationv1.RegisterDeviceRequest{Platform: "fcm", FcmToken: "t", WebPush: push}, rule: "register_device.web_push"},
		{name: "device webpush without subscription", msg: &notificationv1.RegisterDeviceRequest{Platform: "webpush"}, rule: "register_device.web_push"},
		{name: "device webpush with token", msg: &notificationv1.RegisterDeviceRequest{Platform: "webpush", WebPush: push, FcmToken: "t"}, rule: "register_device.fcm_token"},
		{name: "device webpush over http", msg: &notificationv1.RegisterDeviceRequest{Platform: "webpush", WebPush: &notificationv1.WebPushSubscription{
			Endpoint: "http://push.example/x", P256Dh: push.P256Dh, Auth: push.Auth,
		}}, field: "web_push.endpoint", rule: "endpoint.https"},
		{name: "device webpush bad key", msg: &notificationv1.RegisterDeviceRequest{Platform: "webpush", WebPush: &notificationv1.WebPushSubscription{
			Endpoint: push.Endpoint, P256Dh: "not base64!", Auth: push.Auth,
		}}, field: "web_push.p256dh"},
		{name: "device fcm token with spaces", msg: &notificationv1.RegisterDeviceRequest{Platform: "fcm", FcmToken: "a b"}, field: "fcm_token"},
		{name: "unregister device empty", msg: &notificationv1.UnregisterDeviceRequest{}, field: "device_id"},
	})
}

func TestEventBusServiceValidation(t *testing.T) {
	at := func(h int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2026, 11, 28, h, 0, 0, 0, time.UTC))
	}
	runValidationCases(t, []validationCase{
		{name: "list all", msg: &eventbusv1.ListEventsRequest{}},
		{name: "list filtered", msg: &eventbusv1.ListEventsRequest{Type: "message.sent", Source: "chatservice", SubjectId: "c1", StartTime: at(1), EndTime: at(2), PageSize: 100}},
		{name: "list open-ended", msg: &eventbusv1.ListEventsRequest{StartTime: at(1)}},
		{name: "list reversed range", msg: &eventbusv1.ListEventsRequest{StartTime: at(2), EndTime: at(1)}, rule: "list_events.time_range"},
		{name: "list empty range", msg: &eventbusv1.ListEventsRequest{StartTime: at(2), EndTime: at(2)}, rule: "list_events.time_range"},
		{name: "list bad type", msg: &eventbusv1.ListEventsRequest{Type: "Message Sent"}, field: "type"},
		{name: "list bad subject", msg: &eventbusv1.ListEventsRequest{SubjectId: "a/b"}, field: "subject_id"},
		{name: "list negative time", msg: &eventbusv1.ListEventsRequest{StartTime: &timestamppb.Timestamp{Seconds: -1}}, field: "start_time"},
		{name: "list page size", msg: &eventbusv1.ListEventsRequest{PageSize: 500}, field: "page_size"},
		{name: "get event", msg: &eventbusv1.GetEventRequest{EventId: "01HZXABCDEF"}},
		{name: "get event empty", msg: &eventbusv1.GetEventRequest{}, field: "event_id"},
		{name: "dead letters", msg: &eventbusv1.ListDeadLettersRequest{PageSize: 20}},
		{name: "dead letters page token", msg: &eventbusv1.ListDeadLettersRequest{PageToken: longToken}, field: "page_token"},
		{name: "retry empty", msg: &eventbusv1.RetryDeadLetterRequest{}, field: "dead_letter_id"},
		{name: "discard too long", msg: &eventbusv1.DiscardDeadLetterRequest{DeadLetterId: tooLongID}, field: "dead_letter_id"},
	})
}

// TestEveryMessageHasUsableRules builds the rules of every message of every
// Parley package, so that a broken CEL expression or rule anywhere fails here
// rather than as an Internal error in a service.
func TestEveryMessageHasUsableRules(t *testing.T) {
	// Importing the packages registered their files.
	_ = []proto.Message{&userv1.User{}, &chatv1.Message{}, &presencev1.Presence{}, &notificationv1.Notification{}, &eventbusv1.Event{}}
	v := newValidator(t)
	checked := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		name := string(mt.Descriptor().FullName())
		if !strings.HasPrefix(name, "parley.") {
			return true
		}
		checked++
		err := v.Validate(mt.New().Interface())
		var verr *protovalidate.ValidationError
		if err != nil && !errors.As(err, &verr) {
			t.Errorf("%s: rules do not work: %v", name, err)
		}
		return true
	})
	if checked < 100 {
		t.Fatalf("checked only %d Parley messages; are the packages registered?", checked)
	}
}
