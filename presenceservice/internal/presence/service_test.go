package presence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

var (
	alice = presence.Caller{UserID: "alice", Token: "t-alice"}
	bob   = presence.Caller{UserID: "bob", Token: "t-bob"}
	gw    = presence.Caller{UserID: "service:gateway", Service: true}
)

func TestMultiDeviceOnlineOffline(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	p := must[presence.Presence](t)(f.svc.Connect(ctx, "alice", "phone", "gw-1"))
	if p.Status != presence.StatusOnline || p.DeviceCount != 1 {
		t.Errorf("after the first device: %+v", p)
	}
	wantChanges(t, "first device", f.pub.take(), "alice:online")

	f.clock.Advance(time.Second)
	p = must[presence.Presence](t)(f.svc.Connect(ctx, "alice", "laptop", "gw-2"))
	if p.DeviceCount != 2 {
		t.Errorf("after the second device: %+v", p)
	}
	wantChanges(t, "second device", f.pub.take())

	f.clock.Advance(time.Second)
	must[presence.Presence](t)(f.svc.Disconnect(ctx, "alice", "phone", "gw-1"))
	wantChanges(t, "one of two devices leaves", f.pub.take())
	seen := must[presence.Presence](t)(f.svc.GetStatus(ctx, bob, "alice"))
	if seen.Status != presence.StatusOnline || seen.DeviceCount != 1 {
		t.Errorf("bob sees %+v, want online on 1 device", seen)
	}

	left := f.clock.Advance(time.Second)
	must[presence.Presence](t)(f.svc.Disconnect(ctx, "alice", "laptop", "gw-2"))
	cs := f.pub.take()
	wantChanges(t, "last device leaves", cs, "alice:offline")
	if len(cs) == 1 && (!cs[0].LastSeen.Equal(left) || cs[0].DeviceCount != 0) {
		t.Errorf("offline change %+v, want last seen %v and no devices", cs[0], left)
	}
	for _, c := range []presence.Caller{alice, bob} {
		got := must[presence.Presence](t)(f.svc.GetStatus(ctx, c, "alice"))
		if got.Status != presence.StatusOffline || !got.LastSeen.Equal(left) || got.DeviceCount != 0 {
			t.Errorf("%s sees %+v, want offline, last seen %v", c.UserID, got, left)
		}
	}
	// The durable copy has it too.
	ds := must[map[string]presence.Durable](t)(f.durable.Load(ctx, []string{"alice"}))
	if !ds["alice"].LastSeen.Equal(left) {
		t.Errorf("durable last seen %v, want %v", ds["alice"].LastSeen, left)
	}
}

func TestStatusOverride(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	type step struct {
		name      string
		do        func() error
		publishes []string
		// what bob and alice see afterwards
		others, self       presence.Status
		othersDev, selfDev int
	}
	connect := func(c string) func() error {
		return func() error { _, err := f.svc.Connect(ctx, "alice", c, "gw-1"); return err }
	}
	disconnect := func(c string) func() error {
		return func() error { _, err := f.svc.Disconnect(ctx, "alice", c, "gw-1"); return err }
	}
	set := func(st string) func() error {
		return func() error { _, err := f.svc.UpdateStatus(ctx, alice, st, nil); return err }
	}
	steps := []step{
		{"connect", connect("c1"), []string{"alice:online"}, "online", "online", 1, 1},
		{"away", set("away"), []string{"alice:away"}, "away", "away", 1, 1},
		{"away again", set("away"), nil, "away", "away", 1, 1},
		{"second device keeps away", connect("c2"), nil, "away", "away", 2, 2},
		{"busy", set("busy"), []string{"alice:busy"}, "busy", "busy", 2, 2},
		{"invisible", set("offline"), []string{"alice:offline"}, "offline", "offline", 0, 2},
		{"invisible again", set("offline"), nil, "offline", "offline", 0, 2},
		{"one device leaves while invisible", disconnect("c1"), nil, "offline", "offline", 0, 1},
		{"last device leaves while invisible", disconnect("c2"), nil, "offline", "offline", 0, 0},
		{"back: the chosen status was reset", connect("c3"), []string{"alice:online"}, "online", "online", 1, 1},
	}
	for _, st := range steps {
		f.clock.Advance(time.Second)
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		wantChanges(t, st.name, f.pub.take(), st.publishes...)
		o := must[presence.Presence](t)(f.svc.GetStatus(ctx, bob, "alice"))
		s := must[presence.Presence](t)(f.svc.GetStatus(ctx, alice, "me"))
		if o.Status != st.others || s.Status != st.self || o.DeviceCount != st.othersDev || s.DeviceCount != st.selfDev {
			t.Errorf("%s: bob sees %s/%d, alice sees %s/%d; want %s/%d and %s/%d",
				st.name, o.Status, o.DeviceCount, s.Status, s.DeviceCount, st.others, st.othersDev, st.self, st.selfDev)
		}
	}
}

func TestUpdateStatusRules(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	msg := "in a meeting"
	tests := []struct {
		name    string
		caller  presence.Caller
		status  string
		message *string
		wantErr error
	}{
		{"a service has no status", gw, "away", nil, presence.ErrForbidden},
		{"unknown status", alice, "invisible", nil, presence.ErrInvalidStatus},
		{"status and message", alice, "busy", &msg, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.svc.UpdateStatus(ctx, tt.caller, tt.status, tt.message)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (p.StatusMessage != *tt.message || p.UserID != tt.caller.UserID) {
				t.Errorf("presence %+v", p)
			}
		})
	}
}

func TestNodeCrashSweep(t *testing.T) {
	const interval = 10 * time.Second
	f := newFixture(t, func(c *presence.Config) { c.HeartbeatInterval = interval })
	ctx := context.Background()
	if limit := f.svc.NodeTimeout() + f.svc.SweepInterval(); limit > 2*interval {
		t.Fatalf("worst case %v until a dead node's users are offline exceeds 2 heartbeat intervals", limit)
	}
	for _, c := range []struct{ user, conn, node string }{
		{"alice", "a1", "node-a"}, {"bob", "b1", "node-a"}, {"bob", "b2", "node-b"},
	} {
		must[presence.Presence](t)(f.svc.Connect(ctx, c.user, c.conn, c.node))
	}
	f.pub.take()
	lastBeat := f.clock.Advance(time.Second)
	must[[]string](t)(f.svc.Heartbeat(ctx, "node-a", []string{"a1", "b1"}))
	must[[]string](t)(f.svc.Heartbeat(ctx, "node-b", []string{"b2"}))

	// node-a dies; node-b keeps beating.
	tests := []struct {
		advance    time.Duration
		wantSwept  int
		wantOnline []string
	}{
		{advance: 10 * time.Second, wantSwept: 0, wantOnline: []string{"alice", "bob"}},
		{advance: 4 * time.Second, wantSwept: 0, wantOnline: []string{"alice", "bob"}}, // 14s: one missed beat is tolerated
		{advance: 1001 * time.Millisecond, wantSwept: 1, wantOnline: []string{"bob"}},  // 15.001s > 1.5 intervals
		{advance: 10 * time.Second, wantSwept: 0, wantOnline: []string{"bob"}},         // nothing left to sweep
	}
	for i, tt := range tests {
		f.clock.Advance(tt.advance)
		must[[]string](t)(f.svc.Heartbeat(ctx, "node-b", []string{"b2"}))
		n, err := f.svc.Sweep(ctx)
		if err != nil || n != tt.wantSwept {
			t.Fatalf("round %d: swept %d (%v), want %d", i, n, err, tt.wantSwept)
		}
		page := must[presence.Page](t)(f.svc.OnlineUsers(ctx, bob, presence.Scope{UserIDs: []string{"alice", "bob"}}, 0, ""))
		var online []string
		for _, p := range page.Presences {
			online = append(online, p.UserID)
		}
		if !slices.Equal(online, tt.wantOnline) {
			t.Errorf("round %d: online %v, want %v", i, online, tt.wantOnline)
		}
	}
	cs := f.pub.take()
	wantChanges(t, "sweep", cs, "alice:offline")
	if len(cs) == 1 && !cs[0].LastSeen.Equal(lastBeat) {
		t.Errorf("alice last seen %v, want node-a's last heartbeat %v", cs[0].LastSeen, lastBeat)
	}
	got := must[presence.Presence](t)(f.svc.GetStatus(ctx, bob, "alice"))
	if !got.LastSeen.Equal(lastBeat) {
		t.Errorf("GetStatus last seen %v, want %v", got.LastSeen, lastBeat)
	}
	// The swept node comes back: its heartbeat reports its connections as
	// unknown, so the gateway connects them again.
	unknown := must[[]string](t)(f.svc.Heartbeat(ctx, "node-a", []string{"a1", "b1"}))
	slices.Sort(unknown)
	if !slices.Equal(unknown, []string{"a1", "b1"}) {
		t.Errorf("returning node's unknown connections %v, want a1 b1", unknown)
	}
	if err := f.state.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestSweepersDoNotDoubleSweep(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for i := range 50 {
		must[presence.Presence](t)(f.svc.Connect(ctx, fmt.Sprintf("u%02d", i), fmt.Sprintf("c%02d", i), "node-a"))
	}
	f.pub.take()
	f.clock.Advance(time.Minute)
	// Replicas sweeping at once: the node is swept once, each user's
	// offline change published once.
	var wg sync.WaitGroup
	total := make(chan int, 4)
	for range 4 {
		wg.Go(func() {
			n, err := f.svc.Sweep(ctx)
			if err != nil {
				t.Error(err)
			}
			total <- n
		})
	}
	wg.Wait()
	close(total)
	sum := 0
	for n := range total {
		sum += n
	}
	if sum != 1 {
		t.Errorf("node swept %d times, want 1", sum)
	}
	if cs := f.pub.take(); len(cs) != 50 {
		t.Errorf("%d changes published, want 50 (one per user)", len(cs))
	}
}

func TestHeartbeatPrunesLostDisconnects(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	must[presence.Presence](t)(f.svc.Connect(ctx, "alice", "a1", "gw"))
	must[presence.Presence](t)(f.svc.Connect(ctx, "bob", "b1", "gw"))
	f.pub.take()
	// The gateway lost alice's Disconnect; its next heartbeats no longer
	// list a1. Within one interval of connecting it is left alone (it may
	// have been connected after the gateway made its list).
	f.clock.Advance(5 * time.Second)
	must[[]string](t)(f.svc.Heartbeat(ctx, "gw", []string{"b1"}))
	wantChanges(t, "young connection", f.pub.take())
	now := f.clock.Advance(10 * time.Second)
	must[[]string](t)(f.svc.Heartbeat(ctx, "gw", []string{"b1", "b1"}))
	cs := f.pub.take()
	wantChanges(t, "lost disconnect", cs, "alice:offline")
	if len(cs) == 1 && !cs[0].LastSeen.Equal(now) {
		t.Errorf("last seen %v, want %v", cs[0].LastSeen, now)
	}
}

func TestConcurrentConnectDisconnect(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	const (
		users        = 100
		connsPerUser = 10 // 1,000 connect/disconnect pairs
		nodes        = 4
	)
	type conn struct {
		user, id, node string
		keep           bool // connected at the end
	}
	var all []conn
	wantDevices := map[string]int{}
	for u := range users {
		user := fmt.Sprintf("user%03d", u)
		for c := range connsPerUser {
			// Users divisible by 3 keep their 7th connection open.
			keep := u%3 == 0 && c == 7
			all = append(all, conn{user, fmt.Sprintf("%s-c%d", user, c), fmt.Sprintf("node-%d", (u+c)%nodes), keep})
			if keep {
				wantDevices[user]++
			}
		}
	}
	// All pairs run at once, interleaving freely; at most 64 calls are in
	// flight, like a gateway's bounded client, because the embedded
	// miniredis runs scripts one at a time and slowly (gopher-lua, -race):
	// an unbounded queue would hit Redis timeouts instead of testing
	// consistency.
	inFlight := make(chan struct{}, 64)
	call := func(f func() error) error {
		inFlight <- struct{}{}
		defer func() { <-inFlight }()
		return f()
	}
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() {
			err := call(func() error { _, err := f.svc.Connect(ctx, c.user, c.id, c.node); return err })
			if err != nil {
				t.Error(err)
				return
			}
			if c.keep {
				return
			}
			if err := call(func() error { _, err := f.svc.Disconnect(ctx, c.user, c.id, c.node); return err }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	if err := f.state.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, users)
	for u := range users {
		ids = append(ids, fmt.Sprintf("user%03d", u))
	}
	rs := must[[]presence.Record](t)(f.state.Load(ctx, ids))
	for _, r := range rs {
		want := wantDevices[r.UserID]
		wantStatus := presence.StatusOffline
		if want > 0 {
			wantStatus = presence.StatusOnline
		}
		if r.Devices != want || r.Visible() != wantStatus {
			t.Errorf("%s: %d devices, %s; want %d, %s", r.UserID, r.Devices, r.Visible(), want, wantStatus)
		}
		if want == 0 && r.LastSeen.IsZero() {
			t.Errorf("%s is offline without a last-seen time", r.UserID)
		}
	}
	// Exactly one publisher per change: each user's changes carry versions
	// 1..n without gaps or repeats, alternate online/offline, and end in
	// the final state.
	byUser := map[string][]presence.Change{}
	for _, c := range f.pub.take() {
		byUser[c.UserID] = append(byUser[c.UserID], c)
	}
	for _, r := range rs {
		cs := byUser[r.UserID]
		slices.SortFunc(cs, func(a, b presence.Change) int { return int(a.Version - b.Version) })
		for i, c := range cs {
			want := presence.StatusOnline
			if i%2 == 1 {
				want = presence.StatusOffline
			}
			if c.Version != int64(i+1) || c.Status != want {
				t.Errorf("%s change %d: version %d status %s; want version %d status %s", r.UserID, i, c.Version, c.Status, i+1, want)
				break
			}
		}
		if len(cs) == 0 || cs[len(cs)-1].Status != r.Visible() || cs[len(cs)-1].Version != r.Version {
			t.Errorf("%s: %d changes, last %+v; final state %s v%d", r.UserID, len(cs), cs[len(cs)-1:], r.Visible(), r.Version)
		}
	}
}

func TestLastSeenSurvivesRedisFlush(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	msg := "gone fishing"
	must[presence.Presence](t)(f.svc.Connect(ctx, "alice", "a1", "gw"))
	must[presence.Presence](t)(f.svc.UpdateStatus(ctx, alice, "away", &msg))
	left := f.clock.Advance(time.Minute)
	must[presence.Presence](t)(f.svc.Disconnect(ctx, "alice", "a1", "gw"))

	deletePrefix(t, f.rdb, f.state.Prefix()) // the flush, limited to this test's keys
	if rs := must[[]presence.Record](t)(f.state.Load(ctx, []string{"alice"})); !rs[0].LastSeen.IsZero() {
		t.Fatalf("flush left state behind: %+v", rs[0])
	}

	for i := range 2 { // the second read is served by the re-hydrated Redis
		got := must[presence.Presence](t)(f.svc.GetStatus(ctx, bob, "alice"))
		if got.Status != presence.StatusOffline || !got.LastSeen.Equal(left) || got.StatusMessage != msg {
			t.Errorf("read %d after the flush: %+v, want offline, last seen %v, message %q", i, got, left, msg)
		}
	}
	rs := must[[]presence.Record](t)(f.state.Load(ctx, []string{"alice"}))
	if !rs[0].Hydrated || !rs[0].LastSeen.Equal(left) {
		t.Errorf("Redis not re-hydrated: %+v", rs[0])
	}
	// Someone never seen stays never seen.
	got := must[presence.Presence](t)(f.svc.GetStatus(ctx, bob, "nobody"))
	if got.Status != presence.StatusOffline || !got.LastSeen.IsZero() {
		t.Errorf("unknown user: %+v", got)
	}
}

func TestGetStatusOfMe(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	must[presence.Presence](t)(f.svc.Connect(ctx, "alice", "a1", "gw"))
	got := must[presence.Presence](t)(f.svc.GetStatus(ctx, alice, "me"))
	if got.UserID != "alice" || got.Status != presence.StatusOnline {
		t.Errorf("alice's own status: %+v", got)
	}
	if _, err := f.svc.GetStatus(ctx, gw, "me"); !errors.Is(err, presence.ErrInvalidArgument) {
		t.Errorf("a service asking for itself: %v, want ErrInvalidArgument", err)
	}
}
