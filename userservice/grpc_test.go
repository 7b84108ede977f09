package userservice_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/userservice"
)

func TestAccountLifecycle(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)

	reg, err := h.client.Register(ctx, &userv1.RegisterRequest{
		Username: "Alice_W", Email: "Alice@Example.COM", Password: "correct horse", DisplayName: "  Alice W.  ",
	})
	if err != nil {
		t.Fatal(err)
	}
	u := reg.GetUser()
	if u.GetUsername() != "alice_w" || u.GetEmail() != "alice@example.com" || u.GetDisplayName() != "Alice W." || u.GetId() == "" {
		t.Fatalf("registered user = %v", u)
	}
	if reg.GetAccessToken() == "" || reg.GetRefreshToken() == "" {
		t.Fatal("registration returned no tokens")
	}
	if got, want := reg.GetExpiresAt().AsTime(), h.clock.Now().Truncate(time.Second).Add(15*time.Minute); !got.Equal(want) {
		t.Fatalf("expires_at = %v, want %v (15 minutes)", got, want)
	}
	if got := reg.GetRefreshExpiresAt().AsTime().Sub(h.clock.Now()); got < 719*time.Hour || got > 721*time.Hour {
		t.Fatalf("refresh token lifetime = %s, want 30 days", got)
	}

	// Login by username or email, any case.
	for _, login := range []string{"alice_w", "ALICE_W", "alice@example.com", "ALICE@example.com"} {
		resp, err := h.client.Login(ctx, &userv1.LoginRequest{Login: login, Password: "correct horse"})
		if err != nil {
			t.Fatalf("Login(%s): %v", login, err)
		}
		if resp.GetUser().GetId() != u.GetId() || resp.GetUser().GetEmail() == "" {
			t.Fatalf("Login(%s) = %v", login, resp.GetUser())
		}
	}

	// Own profile with the private fields; another's without.
	bob := h.register(t, "bob")
	me, err := h.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if me.GetUser().GetEmail() != "alice@example.com" {
		t.Fatalf("own profile = %v, want the email", me.GetUser())
	}
	for _, id := range []string{"me", u.GetId()} {
		p, err := h.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{UserId: id})
		if err != nil || p.GetUser().GetEmail() == "" {
			t.Fatalf("GetProfile(%s) = %v, %v; want the private view", id, p.GetUser(), err)
		}
	}
	other, err := h.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{UserId: bob.GetUser().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if other.GetUser().GetEmail() != "" || len(other.GetUser().GetRoles()) != 0 || other.GetUser().GetUsername() != "bob" {
		t.Fatalf("other's profile = %v, want public fields only", other.GetUser())
	}
	if _, err := h.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{UserId: "no-such-user"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown user: %v, want NotFound", err)
	}

	// Update: only what is set changes.
	name, avatar, statusMsg := "Alice Wonder", "https://cdn.example.com/alice.png", "down the rabbit hole"
	up, err := h.client.UpdateProfile(bearer(ctx, reg.GetAccessToken()), &userv1.UpdateProfileRequest{DisplayName: &name, AvatarUrl: &avatar})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetUser().GetDisplayName() != name || up.GetUser().GetAvatarUrl() != avatar || up.GetUser().GetStatusMessage() != "" {
		t.Fatalf("after update = %v", up.GetUser())
	}
	up, err = h.client.UpdateProfile(bearer(ctx, reg.GetAccessToken()), &userv1.UpdateProfileRequest{StatusMessage: &statusMsg})
	if err != nil {
		t.Fatal(err)
	}
	if up.GetUser().GetDisplayName() != name || up.GetUser().GetStatusMessage() != statusMsg {
		t.Fatalf("after second update = %v", up.GetUser())
	}
	bad := "http://cdn.example.com/x.png"
	if _, err := h.client.UpdateProfile(bearer(ctx, reg.GetAccessToken()), &userv1.UpdateProfileRequest{AvatarUrl: &bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("http avatar: %v, want InvalidArgument", err)
	}

	// Roles: admin from the configuration.
	root := h.register(t, "root")
	rp, err := h.client.GetProfile(bearer(ctx, root.GetAccessToken()), &userv1.GetProfileRequest{})
	if err != nil || !slices.Equal(rp.GetUser().GetRoles(), []string{auth.RoleAdmin}) {
		t.Fatalf("root roles = %v, %v", rp.GetUser().GetRoles(), err)
	}

	// Batch lookups, by users and by services.
	for name, c := range map[string]func() (*userv1.BatchGetUsersResponse, error){
		"user": func() (*userv1.BatchGetUsersResponse, error) {
			return h.client.BatchGetUsers(bearer(ctx, reg.GetAccessToken()), &userv1.BatchGetUsersRequest{UserIds: []string{u.GetId(), bob.GetUser().GetId(), "nobody", u.GetId()}})
		},
		"service": func() (*userv1.BatchGetUsersResponse, error) {
			return h.client.BatchGetUsers(auth.OutgoingAsService(ctx, "chatservice", h.cfg.ServiceToken), &userv1.BatchGetUsersRequest{UserIds: []string{u.GetId(), bob.GetUser().GetId()}})
		},
	} {
		resp, err := c()
		if err != nil {
			t.Fatalf("BatchGetUsers as %s: %v", name, err)
		}
		if len(resp.GetUsers()) != 2 {
			t.Fatalf("BatchGetUsers as %s = %d users, want 2", name, len(resp.GetUsers()))
		}
		for _, bu := range resp.GetUsers() {
			if bu.GetEmail() != "" {
				t.Fatalf("BatchGetUsers as %s leaked an email: %v", name, bu)
			}
		}
	}
	// A service (the notification service's email digest) reads anyone's
	// address; a user reading another user's profile does not.
	sp, err := h.client.GetProfile(auth.OutgoingAsService(ctx, "notificationservice", h.cfg.ServiceToken), &userv1.GetProfileRequest{UserId: bob.GetUser().GetId()})
	if err != nil || sp.GetUser().GetEmail() == "" {
		t.Fatalf("GetProfile as a service = %v, %v; want bob with his email", sp.GetUser(), err)
	}
	op, err := h.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{UserId: bob.GetUser().GetId()})
	if err != nil || op.GetUser().GetEmail() != "" {
		t.Fatalf("GetProfile of another user = %v, %v; want no email", op.GetUser(), err)
	}
	if _, err := h.client.BatchGetUsers(ctx, &userv1.BatchGetUsersRequest{UserIds: []string{u.GetId()}}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous BatchGetUsers: %v, want Unauthenticated", err)
	}
	if _, err := h.client.AddFriend(auth.OutgoingAsService(ctx, "chatservice", h.cfg.ServiceToken), &userv1.AddFriendRequest{UserId: u.GetId()}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("AddFriend as a service: %v, want PermissionDenied", err)
	}
	if _, err := h.client.BatchGetUsers(auth.OutgoingAsService(ctx, "chatservice", "wrong"), &userv1.BatchGetUsersRequest{UserIds: []string{u.GetId()}}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong service token: %v, want Unauthenticated", err)
	}
}

// TestConcurrentRegistration: 20 registrations of one username race;
// exactly one wins, the others get AlreadyExists.
func TestConcurrentRegistration(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	const n = 20
	codesSeen := make([]codes.Code, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := h.client.Register(ctx, &userv1.RegisterRequest{
				Username: "racer", Email: fmt.Sprintf("racer%d@example.com", i), Password: "password1", DisplayName: "Racer",
			})
			codesSeen[i] = status.Code(err)
		})
	}
	wg.Wait()
	var ok, exists, winner int
	for i, c := range codesSeen {
		switch c {
		case codes.OK:
			ok++
			winner = i
		case codes.AlreadyExists:
			exists++
		default:
			t.Errorf("registration %d: %v", i, c)
		}
	}
	if ok != 1 || exists != n-1 {
		t.Fatalf("%d succeeded and %d got AlreadyExists; want 1 and %d", ok, exists, n-1)
	}
	// Different case, same name: taken too.
	_, err := h.client.Register(ctx, &userv1.RegisterRequest{Username: "RACER", Email: "x@example.com", Password: "password1", DisplayName: "R"})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("RACER: %v, want AlreadyExists", err)
	}
	// And the winner's email, in other case, with another username.
	_, err = h.client.Register(ctx, &userv1.RegisterRequest{
		Username: "racer2", Email: fmt.Sprintf("RACER%d@Example.com", winner), Password: "password1", DisplayName: "R",
	})
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("reused email: %v, want AlreadyExists", err)
	}
	n64, err := h.db.Collection("users").CountDocuments(ctx, map[string]any{"username": "racer"})
	if err != nil || n64 != 1 {
		t.Fatalf("%d users named racer stored, %v", n64, err)
	}
}

func TestSearchAndFriends(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ann := h.register(t, "ann")
	var ids []string
	for i := range 5 {
		ids = append(ids, h.register(t, fmt.Sprintf("sam%d", i)).GetUser().GetId())
	}
	carl := h.register(t, "carl")
	name := "Samantha Carl"
	if _, err := h.client.UpdateProfile(bearer(ctx, carl.GetAccessToken()), &userv1.UpdateProfileRequest{DisplayName: &name}); err != nil {
		t.Fatal(err)
	}
	actx := bearer(ctx, ann.GetAccessToken())

	// Prefix on username and display name, case-insensitive, paginated.
	var found []string
	tok := ""
	for page := 0; ; page++ {
		resp, err := h.client.SearchUsers(actx, &userv1.SearchUsersRequest{Query: "SAM", PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetUsers()) > 2 {
			t.Fatalf("page of %d, want at most 2", len(resp.GetUsers()))
		}
		for _, u := range resp.GetUsers() {
			if u.GetEmail() != "" {
				t.Fatalf("search leaked an email: %v", u)
			}
			found = append(found, u.GetUsername())
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if want := []string{"carl", "sam0", "sam1", "sam2", "sam3", "sam4"}; !slices.Equal(found, want) {
		t.Fatalf("search = %v, want %v", found, want)
	}
	if _, err := h.client.SearchUsers(actx, &userv1.SearchUsersRequest{Query: "sam", PageToken: "forged"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("forged page token: %v", err)
	}
	if _, err := h.client.SearchUsers(ctx, &userv1.SearchUsersRequest{Query: "sam"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous search: %v", err)
	}

	// Friends: request, accept, list, remove.
	sam0 := h.register(t, "sam0x")
	sctx := bearer(ctx, sam0.GetAccessToken())
	add, err := h.client.AddFriend(actx, &userv1.AddFriendRequest{UserId: sam0.GetUser().GetId()})
	if err != nil || add.GetFriend().GetState() != "outgoing" || add.GetFriend().GetUser().GetEmail() != "" {
		t.Fatalf("AddFriend = %v, %v", add, err)
	}
	inc, err := h.client.ListFriends(sctx, &userv1.ListFriendsRequest{State: "incoming"})
	if err != nil || len(inc.GetFriends()) != 1 || inc.GetFriends()[0].GetUser().GetId() != ann.GetUser().GetId() {
		t.Fatalf("incoming = %v, %v", inc, err)
	}
	acc, err := h.client.AddFriend(sctx, &userv1.AddFriendRequest{UserId: ann.GetUser().GetId()})
	if err != nil || acc.GetFriend().GetState() != "friend" {
		t.Fatalf("accept = %v, %v", acc, err)
	}
	for _, c := range []struct {
		name   string
		caller *userv1.RegisterResponse
		other  string
	}{{"ann", ann, sam0.GetUser().GetId()}, {"sam0x", sam0, ann.GetUser().GetId()}} {
		l, err := h.client.ListFriends(bearer(ctx, c.caller.GetAccessToken()), &userv1.ListFriendsRequest{State: "friend"})
		if err != nil || len(l.GetFriends()) != 1 || l.GetFriends()[0].GetUser().GetId() != c.other || l.GetFriends()[0].GetSince() == nil {
			t.Fatalf("%s's friends = %v, %v", c.name, l, err)
		}
	}
	if _, err := h.client.AddFriend(actx, &userv1.AddFriendRequest{UserId: ann.GetUser().GetId()}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("befriend self: %v", err)
	}
	if _, err := h.client.AddFriend(actx, &userv1.AddFriendRequest{UserId: "ghost"}); status.Code(err) != codes.NotFound {
		t.Fatalf("befriend unknown: %v", err)
	}
	for _, id := range ids[:3] {
		if _, err := h.client.AddFriend(actx, &userv1.AddFriendRequest{UserId: id}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := h.client.ListFriends(actx, &userv1.ListFriendsRequest{PageSize: 3})
	if err != nil || len(all.GetFriends()) != 3 || all.GetNextPageToken() == "" {
		t.Fatalf("first page = %v, %v", all, err)
	}
	rest, err := h.client.ListFriends(actx, &userv1.ListFriendsRequest{PageSize: 3, PageToken: all.GetNextPageToken()})
	if err != nil || len(rest.GetFriends()) != 1 || rest.GetNextPageToken() != "" {
		t.Fatalf("second page = %v, %v", rest, err)
	}
	if _, err := h.client.RemoveFriend(sctx, &userv1.RemoveFriendRequest{UserId: ann.GetUser().GetId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.RemoveFriend(sctx, &userv1.RemoveFriendRequest{UserId: ann.GetUser().GetId()}); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	l, err := h.client.ListFriends(actx, &userv1.ListFriendsRequest{State: "friend"})
	if err != nil || len(l.GetFriends()) != 0 {
		t.Fatalf("friends after removal = %v, %v", l, err)
	}
}

// TestRestartKeepsKeysAndAccounts: with a key directory (the dev setup),
// a restarted service still accepts the tokens it issued before.
func TestRestartKeepsKeysAndAccounts(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, func(c *userservice.Config) { c.SigningKeyFiles, c.KeyDir = nil, dir })
	reg := h.register(t, "dora")
	h2 := &harness{cfg: h.cfg, clock: h.clock, db: h.db}
	h2.start(t) // a second replica/restart on the same data and key dir
	ctx := ctxT(t)
	if _, err := h2.client.GetProfile(bearer(ctx, reg.GetAccessToken()), &userv1.GetProfileRequest{}); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if _, err := h2.client.Login(ctx, &userv1.LoginRequest{Login: "dora", Password: "password-dora"}); err != nil {
		t.Fatalf("login after restart: %v", err)
	}
	j1, err := h.client.GetJWKS(ctx, &userv1.GetJWKSRequest{})
	if err != nil {
		t.Fatal(err)
	}
	j2, err := h2.client.GetJWKS(ctx, &userv1.GetJWKSRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(j1.GetKeys()) != 1 || j1.GetKeys()[0].GetKid() != j2.GetKeys()[0].GetKid() {
		t.Fatalf("key sets differ across restarts: %v vs %v", j1, j2)
	}
}
