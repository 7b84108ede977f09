package peers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	"github.com/parleyhq/parley/platform/testenv"
)

// presenceClient answers GetOnlineUsers from a set of connected users and
// records who was asked about.
type presenceClient struct {
	presencev1.PresenceServiceClient

	mu        sync.Mutex
	connected map[string]bool
	asked     [][]string
}

func (c *presenceClient) GetOnlineUsers(_ context.Context, req *presencev1.GetOnlineUsersRequest, _ ...grpc.CallOption) (*presencev1.GetOnlineUsersResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, slices.Clone(req.GetUserIds()))
	out := &presencev1.GetOnlineUsersResponse{}
	for _, id := range req.GetUserIds() {
		if c.connected[id] {
			out.Presences = append(out.Presences, &presencev1.Presence{UserId: id, DeviceCount: 1})
		}
	}
	return out, nil
}

func (c *presenceClient) set(id string, connected bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connected[id] = connected
}

func (c *presenceClient) lastAsked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.asked) == 0 {
		return nil
	}
	return c.asked[len(c.asked)-1]
}

// Connected reuses answers younger than the TTL, connected and offline
// alike, and asks again for the rest; with no TTL it always asks.
func TestPresenceMemo(t *testing.T) {
	clock := testenv.NewClock(time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC))
	steps := []struct {
		name      string
		advance   time.Duration
		change    map[string]bool
		ids       []string
		wantAsked []string
		want      []string // connected
	}{
		{"first look-up asks", 0, nil, []string{"ann", "bob", "cid"}, []string{"ann", "bob", "cid"}, []string{"ann"}},
		{"within the TTL nothing is asked", time.Second, map[string]bool{"bob": true}, []string{"ann", "bob", "cid"}, nil, []string{"ann"}},
		{"a new user is asked for alone", 0, nil, []string{"ann", "dan"}, []string{"dan"}, []string{"ann"}},
		{"after the TTL the change shows", 1500 * time.Millisecond, nil, []string{"ann", "bob", "cid"}, []string{"ann", "bob", "cid"}, []string{"ann", "bob"}},
	}
	c := &presenceClient{connected: map[string]bool{"ann": true}}
	p := NewPresence(c, "token", time.Second, 2*time.Second)
	p.memo.now = clock.Now
	for _, st := range steps {
		clock.Advance(st.advance)
		for id, on := range st.change {
			c.set(id, on)
		}
		before := len(c.asked)
		got, err := p.Connected(t.Context(), st.ids)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var asked []string
		if len(c.asked) > before {
			asked = c.lastAsked()
		}
		if !slices.Equal(asked, st.wantAsked) {
			t.Errorf("%s: asked about %v, want %v", st.name, asked, st.wantAsked)
		}
		var on []string
		for _, id := range st.ids {
			if got[id] {
				on = append(on, id)
			}
		}
		if !slices.Equal(on, st.want) {
			t.Errorf("%s: connected %v, want %v", st.name, on, st.want)
		}
	}

	t.Run("no TTL", func(t *testing.T) {
		c := &presenceClient{connected: map[string]bool{"ann": true}}
		p := NewPresence(c, "token", time.Second, -1)
		for i := range 3 {
			if _, err := p.Connected(t.Context(), []string{"ann"}); err != nil {
				t.Fatal(err)
			}
			if len(c.asked) != i+1 {
				t.Fatalf("call %d: asked %d times", i+1, len(c.asked))
			}
		}
	})

	t.Run("expired answers are swept", func(t *testing.T) {
		c := &presenceClient{connected: map[string]bool{}}
		p := NewPresence(c, "token", time.Second, time.Second)
		p.memo.now = clock.Now
		ids := make([]string, minPresencePrune)
		for i := range ids {
			ids[i] = fmt.Sprintf("u%d", i)
		}
		if _, err := p.Connected(t.Context(), ids); err != nil {
			t.Fatal(err)
		}
		// Once the memo has doubled, a store sweeps what expired.
		clock.Advance(2 * time.Second)
		for i := range ids {
			ids[i] = fmt.Sprintf("v%d", i)
		}
		if _, err := p.Connected(t.Context(), ids); err != nil {
			t.Fatal(err)
		}
		p.memo.mu.Lock()
		defer p.memo.mu.Unlock()
		if n := len(p.memo.seen); n != len(ids) {
			t.Fatalf("memo holds %d answers, want the %d fresh ones", n, len(ids))
		}
		for id := range p.memo.seen {
			if id[0] != 'v' {
				t.Fatalf("expired answer for %s kept", id)
			}
		}
	})
}
