package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// step is one operation on the store in a transition test.
type step struct {
	op     string // connect, disconnect, status, message
	user   string // default "u"
	conn   string
	node   string // default "n1"
	status presence.Status
	at     time.Duration

	// Expected transition of the step's user.
	changed     bool
	visible     presence.Status
	devices     int
	wentOffline bool
	lastSeen    time.Duration // -1: never seen
	chosen      presence.Status
	// others is the number of other users' transitions (connect only).
	others int
}

func TestTransitions(t *testing.T) {
	never := time.Duration(-1)
	tests := []struct {
		name  string
		steps []step
	}{
		{"first device brings the user online, last one takes them offline", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "disconnect", conn: "c1", at: 5 * time.Second, changed: true, visible: "offline", wentOffline: true, lastSeen: 5 * time.Second},
		}},
		{"second device changes nothing others see", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "connect", conn: "c2", node: "n2", at: time.Second, visible: "online", devices: 2, lastSeen: never},
			{op: "disconnect", conn: "c1", at: 2 * time.Second, visible: "online", devices: 1, lastSeen: never},
			{op: "disconnect", conn: "c2", node: "n2", at: 3 * time.Second, changed: true, visible: "offline", wentOffline: true, lastSeen: 3 * time.Second},
		}},
		{"chosen status holds while connected and resets after", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "status", status: "away", at: time.Second, changed: true, visible: "away", devices: 1, lastSeen: never, chosen: "away"},
			{op: "status", status: "away", at: 2 * time.Second, visible: "away", devices: 1, lastSeen: never, chosen: "away"},
			{op: "connect", conn: "c2", at: 3 * time.Second, visible: "away", devices: 2, lastSeen: never, chosen: "away"},
			{op: "status", status: "busy", at: 4 * time.Second, changed: true, visible: "busy", devices: 2, lastSeen: never, chosen: "busy"},
			{op: "disconnect", conn: "c1", at: 5 * time.Second, visible: "busy", devices: 1, lastSeen: never, chosen: "busy"},
			{op: "disconnect", conn: "c2", at: 6 * time.Second, changed: true, visible: "offline", wentOffline: true, lastSeen: 6 * time.Second},
			{op: "connect", conn: "c3", at: 7 * time.Second, changed: true, visible: "online", devices: 1, lastSeen: 6 * time.Second},
		}},
		{"invisible: offline to others, last seen when hidden, kept on disconnect", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "status", status: "offline", at: time.Second, changed: true, visible: "offline", wentOffline: true, devices: 1, lastSeen: time.Second, chosen: "offline"},
			{op: "connect", conn: "c2", at: 2 * time.Second, visible: "offline", devices: 2, lastSeen: time.Second, chosen: "offline"},
			{op: "disconnect", conn: "c1", at: 3 * time.Second, visible: "offline", devices: 1, lastSeen: time.Second, chosen: "offline"},
			{op: "disconnect", conn: "c2", at: 4 * time.Second, visible: "offline", lastSeen: time.Second},
			{op: "connect", conn: "c3", at: 5 * time.Second, changed: true, visible: "online", devices: 1, lastSeen: time.Second},
		}},
		{"invisible user becoming visible", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "status", status: "offline", at: time.Second, changed: true, visible: "offline", wentOffline: true, devices: 1, lastSeen: time.Second, chosen: "offline"},
			{op: "status", status: "online", at: 2 * time.Second, changed: true, visible: "online", devices: 1, lastSeen: time.Second, chosen: "online"},
		}},
		{"status chosen while disconnected applies from the next connection", []step{
			{op: "status", status: "busy", visible: "offline", lastSeen: never, chosen: "busy"},
			{op: "connect", conn: "c1", at: time.Second, changed: true, visible: "busy", devices: 1, lastSeen: never, chosen: "busy"},
		}},
		{"coming online invisibly publishes nothing", []step{
			{op: "status", status: "offline", visible: "offline", lastSeen: never, chosen: "offline"},
			{op: "connect", conn: "c1", at: time.Second, visible: "offline", devices: 1, lastSeen: never, chosen: "offline"},
		}},
		{"unknown disconnect changes nothing", []step{
			{op: "disconnect", conn: "c9", visible: "offline", lastSeen: never},
		}},
		{"repeated connect of one connection counts it once", []step{
			{op: "connect", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "connect", conn: "c1", at: time.Second, visible: "online", devices: 1, lastSeen: never},
		}},
		{"connection id taken over by another user", []step{
			{op: "connect", user: "a", conn: "c1", changed: true, visible: "online", devices: 1, lastSeen: never},
			{op: "connect", user: "b", conn: "c1", at: time.Second, changed: true, visible: "online", devices: 1, lastSeen: never, others: 1},
			{op: "disconnect", user: "a", conn: "c1", at: 2 * time.Second, visible: "offline", lastSeen: time.Second},
		}},
	}
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := testenv.Unique("user")
			for i, st := range tt.steps {
				user := base + "_" + cmpOr(st.user, "u")
				node := cmpOr(st.node, "n1")
				conn := base + "_" + st.conn
				var got presence.Transition
				var others []presence.Transition
				var err error
				switch st.op {
				case "connect":
					var ts []presence.Transition
					ts, err = s.Connect(ctx, user, conn, node, at(st.at))
					if err == nil {
						got, others = ts[len(ts)-1], ts[:len(ts)-1]
					}
				case "disconnect":
					got, err = s.Disconnect(ctx, user, conn, node, at(st.at))
				case "status":
					got, err = s.SetStatus(ctx, user, st.status, nil, at(st.at))
				default:
					t.Fatalf("unknown op %q", st.op)
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", i, st.op, err)
				}
				r := got.Record
				if r.UserID != user || got.Changed != st.changed || r.Visible() != st.visible || r.Devices != st.devices ||
					got.WentOffline != st.wentOffline || r.Chosen != st.chosen || len(others) != st.others {
					t.Errorf("step %d %s %s: got changed=%v visible=%s devices=%d wentOffline=%v chosen=%q others=%d user=%s, want %v %s %d %v %q %d",
						i, st.op, st.conn, got.Changed, r.Visible(), r.Devices, got.WentOffline, r.Chosen, len(others), r.UserID,
						st.changed, st.visible, st.devices, st.wentOffline, st.chosen, st.others)
				}
				wantLS := time.Time{}
				if st.lastSeen >= 0 {
					wantLS = at(st.lastSeen)
				}
				if !r.LastSeen.Equal(wantLS) {
					t.Errorf("step %d %s: last seen %v, want %v", i, st.op, r.LastSeen, wantLS)
				}
				// Load must agree with what the script returned.
				rs, err := s.Load(ctx, []string{user})
				if err != nil {
					t.Fatal(err)
				}
				if l := rs[0]; l.Visible() != r.Visible() || l.Devices != r.Devices || !l.LastSeen.Equal(r.LastSeen) || l.Version != r.Version {
					t.Errorf("step %d: Load %+v disagrees with transition %+v", i, l, r)
				}
			}
			if err := s.Verify(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestVersionsGrowWithEveryChange(t *testing.T) {
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	var versions []int64
	var times []time.Time
	record := func(tr presence.Transition, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if tr.Changed {
			versions = append(versions, tr.Record.Version)
			times = append(times, tr.Record.ChangedAt)
		}
	}
	ts, err := s.Connect(ctx, "u", "c1", "n1", at(0))
	record(ts[0], err)
	record(s.SetStatus(ctx, "u", presence.StatusAway, nil, at(time.Second)))
	// A replica with a clock behind must not move changed_at back.
	record(s.SetStatus(ctx, "u", presence.StatusBusy, nil, at(-time.Minute)))
	record(s.Disconnect(ctx, "u", "c1", "n1", at(2*time.Second)))
	if want := []int64{1, 2, 3, 4}; !slices.Equal(versions, want) {
		t.Errorf("versions %v, want %v", versions, want)
	}
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Errorf("changed_at went back: %v", times)
		}
	}
}

func TestStatusMessage(t *testing.T) {
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	msg := "on holiday"
	tr, err := s.SetStatus(ctx, "u", presence.StatusOnline, &msg, at(0))
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Record.HasMessage || tr.Record.Message != msg {
		t.Errorf("message %q (has %v), want %q", tr.Record.Message, tr.Record.HasMessage, msg)
	}
	// Absent keeps it, empty clears it.
	if tr, err = s.SetStatus(ctx, "u", presence.StatusAway, nil, at(time.Second)); err != nil || tr.Record.Message != msg {
		t.Errorf("after status without message: %q, %v", tr.Record.Message, err)
	}
	empty := ""
	if tr, err = s.SetStatus(ctx, "u", presence.StatusAway, &empty, at(2*time.Second)); err != nil || tr.Record.Message != "" || !tr.Record.HasMessage {
		t.Errorf("after clearing: %q (has %v), %v", tr.Record.Message, tr.Record.HasMessage, err)
	}
}

func TestHeartbeat(t *testing.T) {
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	for _, c := range []string{"c1", "c2"} {
		if _, err := s.Connect(ctx, "u", c, "n1", at(0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Connect(ctx, "v", "c5", "n1", at(0)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		conns       []string
		now, prune  time.Duration
		connectAt   time.Duration // connect "c4" of "u" before the heartbeat when > 0
		wantUnknown []string
		// wantPruned lists the users of pruned connections, and which of
		// them went offline.
		wantPruned  []string
		wantOffline []string
		wantDevices map[string]int
	}{
		{
			name: "all reported", conns: []string{"c1", "c2", "c5"}, now: 10 * time.Second, prune: 0,
			wantDevices: map[string]int{"u": 2, "v": 1},
		},
		{
			name: "unknown reported, missing old ones pruned", conns: []string{"c1", "c3"}, now: 20 * time.Second, prune: 10 * time.Second,
			wantUnknown: []string{"c3"}, wantPruned: []string{"u", "v"}, wantOffline: []string{"v"},
			wantDevices: map[string]int{"u": 1, "v": 0},
		},
		{
			name: "young connections are not pruned", conns: nil, now: 40 * time.Second, prune: 30 * time.Second, connectAt: 35 * time.Second,
			wantPruned: []string{"u"}, wantOffline: nil, wantDevices: map[string]int{"u": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.connectAt > 0 {
				if _, err := s.Connect(ctx, "u", "c4", "n1", at(tt.connectAt)); err != nil {
					t.Fatal(err)
				}
			}
			unknown, pruned, err := s.Heartbeat(ctx, "n1", tt.conns, at(tt.now), at(tt.prune))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(unknown, tt.wantUnknown) && len(unknown)+len(tt.wantUnknown) > 0 {
				t.Errorf("unknown %v, want %v", unknown, tt.wantUnknown)
			}
			var users, offline []string
			for _, p := range pruned {
				users = append(users, p.Record.UserID)
				if p.WentOffline {
					offline = append(offline, p.Record.UserID)
					if !p.Record.LastSeen.Equal(at(tt.now)) {
						t.Errorf("%s last seen %v, want the heartbeat time %v", p.Record.UserID, p.Record.LastSeen, at(tt.now))
					}
				}
			}
			slices.Sort(users)
			if !slices.Equal(users, tt.wantPruned) || !slices.Equal(offline, tt.wantOffline) {
				t.Errorf("pruned users %v offline %v, want %v %v", users, offline, tt.wantPruned, tt.wantOffline)
			}
			for u, n := range tt.wantDevices {
				rs, err := s.Load(ctx, []string{u})
				if err != nil {
					t.Fatal(err)
				}
				if rs[0].Devices != n {
					t.Errorf("%s has %d devices, want %d", u, rs[0].Devices, n)
				}
			}
			stale, err := s.StaleNodes(ctx, at(tt.now-time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if len(stale) != 0 {
				t.Errorf("a node that just heartbeated is stale: %v", stale)
			}
			if err := s.Verify(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSweepNode(t *testing.T) {
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	connect := func(u, c, n string) {
		t.Helper()
		if _, err := s.Connect(ctx, u, c, n, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	connect("u1", "c1", "n1")
	connect("u1", "c2", "n2")
	connect("u2", "c3", "n1")
	connect("u3", "c4", "n3")
	beat := func(n string, when time.Duration, conns ...string) {
		t.Helper()
		if _, _, err := s.Heartbeat(ctx, n, conns, at(when), at(0)); err != nil {
			t.Fatal(err)
		}
	}
	beat("n1", 5*time.Second, "c1", "c3")
	beat("n2", 12*time.Second, "c2")
	beat("n3", 6*time.Second, "c4")

	stale, err := s.StaleNodes(ctx, at(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(stale))
	for _, n := range stale {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"n1", "n3"}) || !stale[0].LastBeat.Equal(at(5*time.Second)) {
		t.Fatalf("stale nodes %v, want n1 (at 5s) and n3", stale)
	}

	// n3 comes back between the listing and the sweep: nothing happens.
	beat("n3", 15*time.Second, "c4")
	ts, err := s.SweepNode(ctx, "n3", at(10*time.Second), at(16*time.Second))
	if err != nil || len(ts) != 0 {
		t.Fatalf("sweeping a node that came back: %v, %v", ts, err)
	}
	if rs, _ := s.Load(ctx, []string{"u3"}); rs[0].Devices != 1 {
		t.Errorf("u3 lost its connection on a live node")
	}

	ts, err = s.SweepNode(ctx, "n1", at(10*time.Second), at(16*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]presence.Transition{}
	for _, tr := range ts {
		got[tr.Record.UserID] = tr
	}
	if tr := got["u2"]; !tr.Changed || !tr.WentOffline || !tr.Record.LastSeen.Equal(at(5*time.Second)) {
		t.Errorf("u2: %+v, want offline with last seen = n1's last heartbeat (5s)", tr)
	}
	if tr := got["u1"]; tr.Changed || tr.Record.Devices != 1 {
		t.Errorf("u1 is still connected through n2: %+v", tr)
	}
	stale, err = s.StaleNodes(ctx, at(10*time.Second))
	if err != nil || len(stale) != 0 {
		t.Errorf("after the sweep stale nodes are %v, %v", stale, err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestSweepLargeNodeInChunks(t *testing.T) {
	s, rdb := newState(t, RedisConfig{})
	ctx := context.Background()
	const n = 2*sweepChunk + 17
	seedConnections(t, rdb, s, "big", n, at(0))
	ts, err := s.SweepNode(ctx, "big", at(time.Minute), at(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	offline := 0
	for _, tr := range ts {
		if tr.WentOffline {
			offline++
		}
	}
	if offline != n {
		t.Errorf("%d users went offline, want %d", offline, n)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

// seedConnections connects n users with one connection each to node, in
// pipelined batches of plain commands (the keys the connect script would
// write, fast enough for 100,000 connections even on miniredis, whose Lua
// is slow), and returns the connection ids.
func seedConnections(t testing.TB, rdb *redis.Client, s *RedisState, node string, n int, now time.Time) []string {
	t.Helper()
	ctx := context.Background()
	conns := make([]string, n)
	for i := range conns {
		conns[i] = fmt.Sprintf("%s-c%06d", node, i)
	}
	p := s.cfg.Prefix
	const batch = 1000
	for i := 0; i < n; i += batch {
		_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			fields := make([]any, 0, 2*batch)
			for j := i; j < min(i+batch, n); j++ {
				u := fmt.Sprintf("%s-u%06d", node, j)
				fields = append(fields, conns[j], u+"|"+ms(now))
				pipe.SAdd(ctx, p+"uc:"+u, node+"/"+conns[j])
			}
			pipe.HSet(ctx, p+"nc:"+node, fields...)
			return nil
		})
		if err != nil {
			t.Fatalf("seed connections: %v", err)
		}
	}
	if err := rdb.ZAdd(ctx, p+"nodes", redis.Z{Score: float64(now.UnixMilli()), Member: node}).Err(); err != nil {
		t.Fatal(err)
	}
	return conns
}

func TestLockNode(t *testing.T) {
	s, _ := newState(t, RedisConfig{})
	ctx := context.Background()
	unlock, ok, err := s.LockNode(ctx, "n1", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first lock: ok=%v err=%v", ok, err)
	}
	if _, ok, err := s.LockNode(ctx, "n1", time.Minute); err != nil || ok {
		t.Fatalf("second lock while held: ok=%v err=%v, want refused", ok, err)
	}
	if _, ok, err := s.LockNode(ctx, "n2", time.Minute); err != nil || !ok {
		t.Fatalf("another node's lock: ok=%v err=%v", ok, err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LockNode(ctx, "n1", time.Minute); err != nil || !ok {
		t.Fatalf("lock after unlock: ok=%v err=%v", ok, err)
	}
	// A stale unlock (the lock expired and someone else took it) must not
	// release the new holder's lock.
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LockNode(ctx, "n1", time.Minute); err != nil || ok {
		t.Fatalf("stale unlock released another holder's lock: ok=%v err=%v", ok, err)
	}
}

func TestLoadAndHydrate(t *testing.T) {
	s, rdb := newState(t, RedisConfig{})
	ctx := context.Background()
	rs, err := s.Load(ctx, []string{"ghost"})
	if err != nil {
		t.Fatal(err)
	}
	if r := rs[0]; r.UserID != "ghost" || r.Hydrated || r.Devices != 0 || r.Visible() != presence.StatusOffline {
		t.Fatalf("unknown user: %+v", r)
	}

	// A user who went offline in Redis after the durable copy was written:
	// hydration must not move last_seen back.
	if _, err := s.Connect(ctx, "u", "c1", "n1", at(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Disconnect(ctx, "u", "c1", "n1", at(time.Hour)); err != nil {
		t.Fatal(err)
	}
	err = s.Hydrate(ctx, []presence.Durable{
		{UserID: "u", LastSeen: at(time.Minute), Message: "old line", HasMessage: true},
		{UserID: "ghost"},
		{UserID: "flushed", LastSeen: at(time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rs, err = s.Load(ctx, []string{"u", "ghost", "flushed"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		lastSeen time.Time
		message  string
	}{{at(time.Hour), "old line"}, {time.Time{}, ""}, {at(time.Minute), ""}}
	for i, r := range rs {
		if !r.Hydrated || !r.LastSeen.Equal(want[i].lastSeen) || r.Message != want[i].message {
			t.Errorf("%s: %+v, want hydrated, last seen %v, message %q", r.UserID, r, want[i].lastSeen, want[i].message)
		}
	}
	// Offline users' state expires; unknown users' sooner.
	for _, tt := range []struct {
		key string
		max time.Duration
	}{{"u:u", DefaultRetention}, {"u:ghost", DefaultUnknownTTL}, {"u:flushed", DefaultRetention}} {
		ttl, err := rdb.PTTL(ctx, s.Prefix()+tt.key).Result()
		if err != nil || ttl <= 0 || ttl > tt.max {
			t.Errorf("%s TTL %v (%v), want in (0, %v]", tt.key, ttl, err, tt.max)
		}
	}
	// A connected user's state does not expire.
	if _, err := s.Connect(ctx, "u", "c2", "n1", at(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(ctx, s.Prefix()+"u:u").Result(); err != nil || ttl != -1 {
		t.Errorf("connected user's TTL %v (%v), want none", ttl, err)
	}
}

func TestNodeLivenessKeyExpires(t *testing.T) {
	s, rdb := newState(t, RedisConfig{NodeTimeout: 15 * time.Second})
	ctx := context.Background()
	if _, _, err := s.Heartbeat(ctx, "n1", nil, at(0), at(0)); err != nil {
		t.Fatal(err)
	}
	ttl, err := rdb.PTTL(ctx, s.Prefix()+"n:n1").Result()
	if err != nil || ttl <= 0 || ttl > 15*time.Second {
		t.Errorf("node key TTL %v (%v), want in (0, 15s]", ttl, err)
	}
}
