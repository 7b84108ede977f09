package chatservice

import (
	"testing"

	"google.golang.org/grpc/codes"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

// The authorisation matrix: for each channel type, what a member, a
// non-member and a removed member may do. Removal takes effect with the
// very next request.
func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	channels := map[string]*chatv1.Channel{
		"public":  f.mustCreate(t, "owner", "public", "town square", "member", "removed"),
		"group":   f.mustCreate(t, "owner", "group", "inner circle", "member", "removed"),
		"private": f.mustCreate(t, "owner", "private", "", "member"),
	}
	for typ, ch := range channels {
		f.mustSend(t, "owner", ch.GetId(), "secret plans for "+typ)
	}
	// "removed" was a member of public and group until now; in the private
	// channel, "member" leaves instead (nobody can be removed from a DM).
	for _, typ := range []string{"public", "group"} {
		// Prove access first, so the matrix shows it is lost, not absent.
		if _, err := f.client.GetMessages(as(t, "removed"), &chatv1.GetMessagesRequest{ChannelId: channels[typ].GetId()}); err != nil {
			t.Fatalf("%s: removed user could not read before removal: %v", typ, err)
		}
		if _, err := f.client.RemoveMember(as(t, "owner"), &chatv1.RemoveMemberRequest{ChannelId: channels[typ].GetId(), UserId: "removed"}); err != nil {
			t.Fatalf("remove from %s: %v", typ, err)
		}
	}

	type action struct {
		name string
		call func(user, channelID string) error
	}
	actions := []action{
		{"read", func(u, id string) error {
			_, err := f.client.GetMessages(as(t, u), &chatv1.GetMessagesRequest{ChannelId: id})
			return err
		}},
		{"get channel", func(u, id string) error {
			_, err := f.client.GetChannel(as(t, u), &chatv1.GetChannelRequest{ChannelId: id})
			return err
		}},
		{"list members", func(u, id string) error {
			_, err := f.client.ListMembers(as(t, u), &chatv1.ListMembersRequest{ChannelId: id})
			return err
		}},
		{"send", func(u, id string) error {
			_, err := f.client.SendMessage(as(t, u), &chatv1.SendMessageRequest{ChannelId: id, Content: "hi"})
			return err
		}},
		{"search the channel", func(u, id string) error {
			_, err := f.client.SearchMessages(as(t, u), &chatv1.SearchMessagesRequest{Query: "secret", ChannelId: id})
			return err
		}},
		{"mark read", func(u, id string) error {
			_, err := f.client.MarkRead(as(t, u), &chatv1.MarkReadRequest{ChannelId: id, Seq: 1})
			return err
		}},
	}
	ok, denied := codes.OK, codes.PermissionDenied
	// want[channel type][actor][action]
	want := map[string]map[string]map[string]codes.Code{
		"public": {
			"member":   {"read": ok, "get channel": ok, "list members": ok, "send": ok, "search the channel": ok, "mark read": ok},
			"stranger": {"read": ok, "get channel": ok, "list members": ok, "send": denied, "search the channel": ok, "mark read": denied},
			"removed":  {"read": ok, "get channel": ok, "list members": ok, "send": denied, "search the channel": ok, "mark read": denied},
		},
		"group": {
			"member":   {"read": ok, "get channel": ok, "list members": ok, "send": ok, "search the channel": ok, "mark read": ok},
			"stranger": {"read": denied, "get channel": denied, "list members": denied, "send": denied, "search the channel": denied, "mark read": denied},
			"removed":  {"read": denied, "get channel": denied, "list members": denied, "send": denied, "search the channel": denied, "mark read": denied},
		},
		"private": {
			"member":   {"read": ok, "get channel": ok, "list members": ok, "send": ok, "search the channel": ok, "mark read": ok},
			"stranger": {"read": denied, "get channel": denied, "list members": denied, "send": denied, "search the channel": denied, "mark read": denied},
		},
	}
	for typ, actors := range want {
		for actor, acts := range actors {
			for _, a := range actions {
				t.Run(typ+"/"+actor+"/"+a.name, func(t *testing.T) {
					wantCode(t, a.call(actor, channels[typ].GetId()), acts[a.name], a.name)
				})
			}
		}
	}

	// Searching everywhere never finds messages of channels one is not in.
	for _, u := range []string{"stranger", "removed"} {
		resp, err := f.client.SearchMessages(as(t, u), &chatv1.SearchMessagesRequest{Query: "secret plans"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetMessages()) != 0 {
			t.Fatalf("%s found %d messages of channels they are not in", u, len(resp.GetMessages()))
		}
	}

	// The DM member leaves and loses access at once.
	if _, err := f.client.LeaveChannel(as(t, "member"), &chatv1.LeaveChannelRequest{ChannelId: channels["private"].GetId()}); err != nil {
		t.Fatal(err)
	}
	for _, a := range actions {
		wantCode(t, a.call("member", channels["private"].GetId()), denied, "private after leaving: "+a.name)
	}
}

// Who may add, remove and promote members.
func TestMembershipRules(t *testing.T) {
	f := newFixture(t)
	group := f.mustCreate(t, "owner", "group", "team", "admin", "member")
	public := f.mustCreate(t, "owner", "public", "lobby")
	dm := f.mustCreate(t, "owner", "private", "", "friend")
	id := group.GetId()

	join := func(by, channelID, user string) error {
		_, err := f.client.JoinChannel(as(t, by), &chatv1.JoinChannelRequest{ChannelId: channelID, UserId: user})
		return err
	}
	setRole := func(by, user, role string) error {
		_, err := f.client.SetMemberRole(as(t, by), &chatv1.SetMemberRoleRequest{ChannelId: id, UserId: user, Role: role})
		return err
	}
	remove := func(by, channelID, user string) error {
		_, err := f.client.RemoveMember(as(t, by), &chatv1.RemoveMemberRequest{ChannelId: channelID, UserId: user})
		return err
	}

	steps := []struct {
		name string
		err  func() error
		want codes.Code
	}{
		{"owner makes admin an admin", func() error { return setRole("owner", "admin", "admin") }, codes.OK},
		{"a member cannot add to a group", func() error { return join("member", id, "newbie") }, codes.PermissionDenied},
		{"a stranger cannot join a group", func() error { return join("stranger", id, "") }, codes.PermissionDenied},
		{"an admin adds to a group", func() error { return join("admin", id, "newbie") }, codes.OK},
		{"adding twice is harmless", func() error { return join("admin", id, "newbie") }, codes.OK},
		{"a member cannot remove", func() error { return remove("member", id, "newbie") }, codes.PermissionDenied},
		{"a member cannot promote", func() error { return setRole("member", "member", "admin") }, codes.PermissionDenied},
		{"an admin cannot make owners", func() error { return setRole("admin", "member", "owner") }, codes.PermissionDenied},
		{"an admin cannot remove the owner", func() error { return remove("admin", id, "owner") }, codes.PermissionDenied},
		{"an admin removes a member", func() error { return remove("admin", id, "newbie") }, codes.OK},
		{"removing a non-member", func() error { return remove("admin", id, "newbie") }, codes.NotFound},
		{"the last owner cannot step down", func() error { return setRole("owner", "owner", "member") }, codes.FailedPrecondition},
		{"anyone joins a public channel", func() error { return join("stranger", public.GetId(), "") }, codes.OK},
		{"a member of a public channel cannot add others", func() error { return join("stranger", public.GetId(), "someone") }, codes.PermissionDenied},
		{"nobody joins someone else's DM", func() error { return join("stranger", dm.GetId(), "") }, codes.PermissionDenied},
		{"a DM gets no third member", func() error { return join("owner", dm.GetId(), "stranger") }, codes.FailedPrecondition},
		{"nobody is removed from a DM", func() error { return remove("owner", dm.GetId(), "friend") }, codes.FailedPrecondition},
		{"unknown channel", func() error { return join("owner", "c0000000", "") }, codes.NotFound},
	}
	for _, s := range steps {
		wantCode(t, s.err(), s.want, s.name)
	}

	// When the only owner leaves, the longest-standing admin takes over.
	if _, err := f.client.LeaveChannel(as(t, "owner"), &chatv1.LeaveChannelRequest{ChannelId: id}); err != nil {
		t.Fatal(err)
	}
	members, err := f.client.ListMembers(as(t, "member"), &chatv1.ListMembersRequest{ChannelId: id})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, m := range members.GetMembers() {
		roles[m.GetUserId()] = m.GetRole()
	}
	if roles["admin"] != "owner" || roles["member"] != "member" || len(roles) != 2 {
		t.Fatalf("after the owner left: %v", roles)
	}

	// CheckAccess is for services only.
	_, err = f.client.CheckAccess(as(t, "member"), &chatv1.CheckAccessRequest{ChannelId: id, UserId: "member"})
	wantCode(t, err, codes.PermissionDenied, "CheckAccess as a user")
	acc, err := f.client.CheckAccess(asService(t), &chatv1.CheckAccessRequest{ChannelId: id, UserId: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	if !acc.GetCanRead() || !acc.GetCanWrite() || !acc.GetIsMember() || acc.GetRole() != "owner" || acc.GetChannelType() != "group" {
		t.Fatalf("CheckAccess(admin) = %v", acc)
	}
	acc, err = f.client.CheckAccess(asService(t), &chatv1.CheckAccessRequest{ChannelId: public.GetId(), UserId: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if !acc.GetCanRead() || acc.GetCanWrite() || acc.GetIsMember() || acc.GetChannelType() != "public" {
		t.Fatalf("CheckAccess(public, nobody) = %v", acc)
	}
	// Services may list members (the notification service does).
	if _, err := f.client.ListMembers(asService(t), &chatv1.ListMembersRequest{ChannelId: id}); err != nil {
		t.Fatalf("ListMembers as a service: %v", err)
	}
	// No token at all.
	_, err = f.client.GetChannel(t.Context(), &chatv1.GetChannelRequest{ChannelId: id})
	wantCode(t, err, codes.Unauthenticated, "no token")
}

// A private channel is one per pair: creating it again, from either side
// and even concurrently, returns the same channel.
func TestDirectChannelIsUniquePerPair(t *testing.T) {
	f := newFixture(t)
	first := f.mustCreate(t, "ann", "private", "", "ben")
	again := f.mustCreate(t, "ben", "private", "", "ann")
	if again.GetId() != first.GetId() {
		t.Fatalf("second DM %s, first %s", again.GetId(), first.GetId())
	}
	if again.GetMemberCount() != 2 {
		t.Fatalf("member count %d", again.GetMemberCount())
	}
	ids := make(chan string, 8)
	for i := range 8 {
		go func() {
			a, b := "cat", "dan"
			if i%2 == 1 {
				a, b = b, a
			}
			resp, err := f.client.CreateChannel(as(t, a), &chatv1.CreateChannelRequest{Type: "private", MemberIds: []string{b}})
			if err != nil {
				t.Errorf("concurrent create: %v", err)
				ids <- ""
				return
			}
			ids <- resp.GetChannel().GetId()
		}()
	}
	var got []string
	for range 8 {
		got = append(got, <-ids)
	}
	for _, id := range got {
		if id == "" || id != got[0] {
			t.Fatalf("concurrent creations returned %v", got)
		}
	}
	for _, bad := range [][]string{nil, {"x", "y"}, {"ann"}} {
		_, err := f.client.CreateChannel(as(t, "ann"), &chatv1.CreateChannelRequest{Type: "private", MemberIds: bad})
		wantCode(t, err, codes.InvalidArgument, "private channel with members "+stringsOf(bad))
	}
	// A participant who left comes back by creating it again.
	if _, err := f.client.LeaveChannel(as(t, "ann"), &chatv1.LeaveChannelRequest{ChannelId: first.GetId()}); err != nil {
		t.Fatal(err)
	}
	back := f.mustCreate(t, "ann", "private", "", "ben")
	if back.GetId() != first.GetId() || back.GetMemberCount() != 2 {
		t.Fatalf("after leaving and creating again: %v", back)
	}
}

func stringsOf(ss []string) string {
	out := "["
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out + "]"
}

// With a user directory, unknown users cannot be added.
func TestUnknownUsersAreRefused(t *testing.T) {
	f := newFixture(t, withUsers("alice", "bob"))
	_, err := f.client.CreateChannel(as(t, "alice"), &chatv1.CreateChannelRequest{Name: "g", Type: "group", MemberIds: []string{"bob", "ghost"}})
	wantCode(t, err, codes.InvalidArgument, "create with an unknown member")
	ch := f.mustCreate(t, "alice", "group", "g", "bob")
	_, err = f.client.JoinChannel(as(t, "alice"), &chatv1.JoinChannelRequest{ChannelId: ch.GetId(), UserId: "ghost"})
	wantCode(t, err, codes.InvalidArgument, "add an unknown user")
}
