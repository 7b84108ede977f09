package presenceservice_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/platform/testenv"

	"github.com/parleyhq/parley/presenceservice"
)

// changeMsg is the JSON the service publishes on NATS.
type changeMsg struct {
	UserID      string     `json:"user_id"`
	Status      string     `json:"status"`
	LastSeen    *time.Time `json:"last_seen"`
	DeviceCount int        `json:"device_count"`
	ChangedAt   time.Time  `json:"changed_at"`
	Version     int64      `json:"version"`
}

// watchNATS subscribes to every presence change the service publishes.
func watchNATS(t *testing.T, s *service) <-chan changeMsg {
	t.Helper()
	nc := s.env.NATS(t)
	ch := make(chan changeMsg, 100)
	sub, err := nc.Subscribe(s.subjectPrefix+"presence.*", func(m *nats.Msg) {
		var c changeMsg
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Errorf("undecodable change on %s: %v", m.Subject, err)
			return
		}
		if m.Subject != s.subjectPrefix+"presence."+c.UserID {
			t.Errorf("change of %s on subject %s", c.UserID, m.Subject)
		}
		ch <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return ch
}

func nextChange(t *testing.T, ch <-chan changeMsg) changeMsg {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no presence change published within 10s")
		return changeMsg{}
	}
}

func TestInternalRPCsAreForServices(t *testing.T) {
	s := start(t, nil)
	connect := &presencev1.ConnectRequest{UserId: "alice", ConnectionId: "c1", NodeId: "gw-1"}
	_, err := s.client.Connect(context.Background(), connect)
	wantCode(t, "Connect without credentials", err, codes.Unauthenticated)
	_, err = s.client.Connect(as("tok-alice"), connect)
	wantCode(t, "Connect as a user", err, codes.PermissionDenied)
	_, err = s.client.Heartbeat(as("tok-alice"), &presencev1.HeartbeatRequest{NodeId: "gw-1"})
	wantCode(t, "Heartbeat as a user", err, codes.PermissionDenied)
	_, err = s.client.Disconnect(as("tok-alice"), &presencev1.DisconnectRequest{UserId: "alice", ConnectionId: "c1", NodeId: "gw-1"})
	wantCode(t, "Disconnect as a user", err, codes.PermissionDenied)
	_, err = s.client.UpdateStatus(asGateway(), &presencev1.UpdateStatusRequest{Status: "away"})
	wantCode(t, "UpdateStatus as a service", err, codes.PermissionDenied)
	_, err = s.client.Connect(asGateway(), &presencev1.ConnectRequest{UserId: "alice", ConnectionId: "c 1", NodeId: "gw-1"})
	wantCode(t, "Connect with a malformed id", err, codes.InvalidArgument)
	resp, err := s.client.Connect(asGateway(), connect)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetPresence(); p.GetStatus() != "online" || p.GetDeviceCount() != 1 || p.GetUserId() != "alice" {
		t.Errorf("Connect returned %v", p)
	}
}

func TestPresenceOverGRPC(t *testing.T) {
	s := start(t, nil)
	changes := watchNATS(t, s)
	gw := asGateway()
	step := func(name string, f func() error) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	connect := func(u, c, n string) func() error {
		return func() error {
			_, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: u, ConnectionId: c, NodeId: n})
			return err
		}
	}
	disconnect := func(u, c, n string) func() error {
		return func() error {
			_, err := s.client.Disconnect(gw, &presencev1.DisconnectRequest{UserId: u, ConnectionId: c, NodeId: n})
			return err
		}
	}
	setStatus := func(tok, st string) func() error {
		return func() error {
			_, err := s.client.UpdateStatus(as(tok), &presencev1.UpdateStatusRequest{Status: st})
			return err
		}
	}
	// Each action that must not publish is followed by one that must: the
	// next change received proves nothing came in between.
	step("alice's phone", connect("alice", "a-phone", "gw-1"))
	if c := nextChange(t, changes); c.UserID != "alice" || c.Status != "online" || c.DeviceCount != 1 {
		t.Errorf("first device: %+v", c)
	}
	step("alice's laptop (no change)", connect("alice", "a-laptop", "gw-2"))
	step("alice away", setStatus("tok-alice", "away"))
	if c := nextChange(t, changes); c.Status != "away" || c.DeviceCount != 2 {
		t.Errorf("away: %+v", c)
	}
	step("away again (no change)", setStatus("tok-alice", "away"))
	step("alice's phone leaves (no change)", disconnect("alice", "a-phone", "gw-1"))
	step("bob", connect("bob", "b1", "gw-1"))
	if c := nextChange(t, changes); c.UserID != "bob" || c.Status != "online" {
		t.Errorf("bob: %+v", c)
	}

	got, err := s.client.GetUserStatus(as("tok-bob"), &presencev1.GetUserStatusRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.GetPresence(); p.GetStatus() != "away" || p.GetDeviceCount() != 1 {
		t.Errorf("bob sees alice as %v", p)
	}

	before := time.Now()
	step("alice's laptop leaves", disconnect("alice", "a-laptop", "gw-2"))
	c := nextChange(t, changes)
	if c.UserID != "alice" || c.Status != "offline" || c.LastSeen == nil || c.LastSeen.Before(before.Truncate(time.Millisecond)) || c.DeviceCount != 0 {
		t.Errorf("offline: %+v", c)
	}
	got, err = s.client.GetUserStatus(as("tok-alice"), &presencev1.GetUserStatusRequest{UserId: "me"})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.GetPresence(); p.GetStatus() != "offline" || !p.GetLastSeen().AsTime().Equal(*c.LastSeen) {
		t.Errorf("alice sees herself as %v, want offline, last seen %v", p, c.LastSeen)
	}
}

func TestGetOnlineUsersScopes(t *testing.T) {
	s := start(t, nil)
	for _, u := range []string{"bob", "carol", "dave"} {
		if _, err := s.client.Connect(asGateway(), &presencev1.ConnectRequest{UserId: u, ConnectionId: u + "-1", NodeId: "gw"}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		token    string
		req      *presencev1.GetOnlineUsersRequest
		want     []string
		wantCode codes.Code
	}{
		{"given users", "tok-alice", &presencev1.GetOnlineUsersRequest{UserIds: []string{"dave", "alice", "bob"}}, []string{"bob", "dave"}, codes.OK},
		{"friends, through the user service", "tok-alice", &presencev1.GetOnlineUsersRequest{Friends: true}, []string{"bob", "carol"}, codes.OK},
		{"channel members, through the chat service", "tok-bob", &presencev1.GetOnlineUsersRequest{ChannelId: "team"}, []string{"bob", "carol"}, codes.OK},
		{"a channel the caller is not in", "tok-bob", &presencev1.GetOnlineUsersRequest{ChannelId: "secret"}, nil, codes.PermissionDenied},
		{"an unknown channel", "tok-bob", &presencev1.GetOnlineUsersRequest{ChannelId: "nope"}, nil, codes.NotFound},
		{"no scope", "tok-bob", &presencev1.GetOnlineUsersRequest{}, nil, codes.InvalidArgument},
		{"two scopes", "tok-bob", &presencev1.GetOnlineUsersRequest{Friends: true, ChannelId: "team"}, nil, codes.InvalidArgument},
		{"bad page token", "tok-bob", &presencev1.GetOnlineUsersRequest{Friends: true, PageToken: "bogus"}, nil, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.client.GetOnlineUsers(as(tt.token), tt.req)
			wantCode(t, tt.name, err, tt.wantCode)
			if err != nil {
				return
			}
			var ids []string
			for _, p := range resp.GetPresences() {
				ids = append(ids, p.GetUserId())
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("online %v, want %v", ids, tt.want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		var pages [][]string
		token := ""
		for {
			resp, err := s.client.GetOnlineUsers(as("tok-alice"), &presencev1.GetOnlineUsersRequest{
				UserIds: []string{"alice", "bob", "carol", "dave"}, PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range resp.GetPresences() {
				ids = append(ids, p.GetUserId())
			}
			pages = append(pages, ids)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if want := [][]string{{"bob", "carol"}, {"dave"}}; !slices.EqualFunc(pages, want, slices.Equal) {
			t.Errorf("pages %v, want %v", pages, want)
		}
	})
	t.Run("without the other services", func(t *testing.T) {
		bare := start(t, func(c *presenceservice.Config) { c.UserService, c.ChatService = nil, nil })
		for _, req := range []*presencev1.GetOnlineUsersRequest{{Friends: true}, {ChannelId: "team"}} {
			_, err := bare.client.GetOnlineUsers(as("tok-alice"), req)
			wantCode(t, fmt.Sprint(req), err, codes.FailedPrecondition)
		}
	})
}

func TestNodeCrashSweepWithInjectedClock(t *testing.T) {
	const interval = time.Second
	clock := testenv.NewClock(time.UnixMilli(1_800_000_000_000))
	s := start(t, func(c *presenceservice.Config) {
		c.HeartbeatInterval = interval // the sweeper looks every 250ms of real time
		c.Clock = clock.Now
	})
	changes := watchNATS(t, s)
	gw := asGateway()
	for _, u := range []string{"alice", "bob"} {
		if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: u, ConnectionId: u + "-1", NodeId: "node-a"}); err != nil {
			t.Fatal(err)
		}
		nextChange(t, changes)
	}
	lastBeat := clock.Advance(300 * time.Millisecond)
	if _, err := s.client.Heartbeat(gw, &presencev1.HeartbeatRequest{NodeId: "node-a", ConnectionIds: []string{"alice-1", "bob-1"}}); err != nil {
		t.Fatal(err)
	}
	// node-a dies. Two heartbeat intervals later both users are offline,
	// last seen at node-a's last heartbeat.
	clock.Advance(2 * interval)
	offline := map[string]changeMsg{}
	for range 2 {
		c := nextChange(t, changes)
		offline[c.UserID] = c
	}
	for _, u := range []string{"alice", "bob"} {
		c, ok := offline[u]
		if !ok || c.Status != "offline" || c.LastSeen == nil || !c.LastSeen.Equal(lastBeat) {
			t.Errorf("%s: %+v, want offline with last seen %v", u, c, lastBeat)
		}
		resp, err := s.client.GetUserStatus(as("tok-carol"), &presencev1.GetUserStatusRequest{UserId: u})
		if err != nil {
			t.Fatal(err)
		}
		if p := resp.GetPresence(); p.GetStatus() != "offline" || !p.GetLastSeen().AsTime().Equal(lastBeat) {
			t.Errorf("GetUserStatus(%s) = %v", u, p)
		}
	}
}

func TestNodeCrashSweepInRealTime(t *testing.T) {
	const interval = 2 * time.Second
	s := start(t, func(c *presenceservice.Config) { c.HeartbeatInterval = interval })
	changes := watchNATS(t, s)
	gw := asGateway()
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "alice", ConnectionId: "a1", NodeId: "node-a"}); err != nil {
		t.Fatal(err)
	}
	nextChange(t, changes)
	beatStart := time.Now()
	if _, err := s.client.Heartbeat(gw, &presencev1.HeartbeatRequest{NodeId: "node-a", ConnectionIds: []string{"a1"}}); err != nil {
		t.Fatal(err)
	}
	beatEnd := time.Now()
	// No more heartbeats: node-a is dead.
	select {
	case c := <-changes:
		took := time.Since(beatStart)
		if c.UserID != "alice" || c.Status != "offline" || c.LastSeen == nil {
			t.Fatalf("got %+v, want alice offline", c)
		}
		if took > 2*interval {
			t.Errorf("offline %v after the last heartbeat, want within %v", took, 2*interval)
		}
		if c.LastSeen.Before(beatStart.Truncate(time.Millisecond)) || c.LastSeen.After(beatEnd) {
			t.Errorf("last seen %v, want the last heartbeat (between %v and %v)", c.LastSeen, beatStart, beatEnd)
		}
	case <-time.After(4 * interval):
		t.Fatal("a dead node's user still online after 4 heartbeat intervals")
	}
}

func TestSubscribeOverGRPC(t *testing.T) {
	s := start(t, nil)
	gw := asGateway()
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "bob", ConnectionId: "b1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	// Warm up the connections the stream's work opens lazily (to the user
	// service, the MongoDB database), so that everything running now may
	// stay and what the stream starts must be gone once it ends.
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "warm", ConnectionId: "w1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.Disconnect(gw, &presencev1.DisconnectRequest{UserId: "warm", ConnectionId: "w1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.GetOnlineUsers(as("tok-alice"), &presencev1.GetOnlineUsersRequest{Friends: true}); err != nil {
		t.Fatal(err)
	}
	ignore := []goleak.Option{
		goleak.IgnoreCurrent(),
		// The embedded Redis serves each pooled client connection with a
		// goroutine; the pool may grow while the stream runs.
		goleak.IgnoreTopFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer.func2"),
	}

	ctx, cancel := context.WithCancel(as("tok-alice"))
	defer cancel()
	stream, err := s.client.SubscribeToPresence(ctx, &presencev1.SubscribeToPresenceRequest{UserIds: []string{"dave"}, Friends: true})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() string {
		t.Helper()
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		u := m.GetUpdate()
		if u.GetChangedAt() == nil {
			t.Errorf("update without changed_at: %v", u)
		}
		return u.GetUserId() + ":" + u.GetStatus()
	}
	var snapshot []string
	for range 3 {
		snapshot = append(snapshot, recv())
	}
	if want := []string{"bob:online", "carol:offline", "dave:offline"}; !slices.Equal(snapshot, want) {
		t.Fatalf("snapshot %v, want %v", snapshot, want)
	}
	actions := []struct {
		name string
		do   func() error
	}{
		{"carol connects", func() error {
			_, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "carol", ConnectionId: "c1", NodeId: "gw"})
			return err
		}},
		{"carol is busy", func() error {
			_, err := s.client.UpdateStatus(as("tok-carol"), &presencev1.UpdateStatusRequest{Status: "busy"})
			return err
		}},
		{"carol's second device (no change)", func() error {
			_, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "carol", ConnectionId: "c2", NodeId: "gw"})
			return err
		}},
		{"eve (not watched) connects", func() error {
			_, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "eve", ConnectionId: "e1", NodeId: "gw"})
			return err
		}},
		{"bob leaves", func() error {
			_, err := s.client.Disconnect(gw, &presencev1.DisconnectRequest{UserId: "bob", ConnectionId: "b1", NodeId: "gw"})
			return err
		}},
		{"dave connects", func() error {
			_, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "dave", ConnectionId: "d1", NodeId: "gw"})
			return err
		}},
		{"carol is away", func() error {
			_, err := s.client.UpdateStatus(as("tok-carol"), &presencev1.UpdateStatusRequest{Status: "away"})
			return err
		}},
	}
	for _, a := range actions {
		if err := a.do(); err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
	}
	var got []string
	for range 5 {
		got = append(got, recv())
	}
	if want := []string{"carol:online", "carol:busy", "bob:offline", "dave:online", "carol:away"}; !slices.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}

	// The client goes away: the stream ends and leaves nothing behind.
	cancel()
	if _, err := stream.Recv(); err == nil {
		t.Error("stream still delivering after the client left")
	}
	goleak.VerifyNone(t, ignore...)
}

func TestSubscribeValidationOverGRPC(t *testing.T) {
	s := start(t, nil)
	stream, err := s.client.SubscribeToPresence(as("tok-alice"), &presencev1.SubscribeToPresenceRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "no users", err, codes.InvalidArgument)
	stream, err = s.client.SubscribeToPresence(context.Background(), &presencev1.SubscribeToPresenceRequest{UserIds: []string{"bob"}})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, "no credentials", err, codes.Unauthenticated)
}

func TestStreamsEndOnShutdown(t *testing.T) {
	s := start(t, nil)
	stream, err := s.client.SubscribeToPresence(as("tok-alice"), &presencev1.SubscribeToPresenceRequest{UserIds: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the snapshot
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	_, err = stream.Recv()
	wantCode(t, "stream at shutdown", err, codes.Unavailable)
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestLastSeenSurvivesRedisFlushOverGRPC(t *testing.T) {
	prefix := testenv.Unique("flush") + ":"
	s := start(t, func(c *presenceservice.Config) { c.RedisPrefix = prefix })
	gw := asGateway()
	msg := "back at 3"
	if _, err := s.client.Connect(gw, &presencev1.ConnectRequest{UserId: "alice", ConnectionId: "a1", NodeId: "gw"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.UpdateStatus(as("tok-alice"), &presencev1.UpdateStatusRequest{Status: "away", StatusMessage: &msg}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.client.Disconnect(gw, &presencev1.DisconnectRequest{UserId: "alice", ConnectionId: "a1", NodeId: "gw"})
	if err != nil {
		t.Fatal(err)
	}
	lastSeen := resp.GetPresence().GetLastSeen().AsTime()

	rdb := s.env.Redis(t)
	keys, err := rdb.Keys(context.Background(), prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys before the flush: %v, %v", keys, err)
	}
	if err := rdb.Del(context.Background(), keys...).Err(); err != nil {
		t.Fatal(err)
	}

	got, err := s.client.GetUserStatus(as("tok-bob"), &presencev1.GetUserStatusRequest{UserId: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if p := got.GetPresence(); p.GetStatus() != "offline" || !p.GetLastSeen().AsTime().Equal(lastSeen) || p.GetStatusMessage() != msg {
		t.Errorf("after the flush: %v, want offline, last seen %v, message %q", p, lastSeen, msg)
	}
}
