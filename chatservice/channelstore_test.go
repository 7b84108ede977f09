package chatservice

import (
	"testing"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/channelcache"
	"github.com/parleyhq/parley/chatservice/internal/rostercache"
	"github.com/parleyhq/parley/chatservice/internal/store"
	"github.com/parleyhq/parley/platform/testenv"
)

// The member-list cache sits right on the store, where it finds the bulk
// load it needs on FerretDB (a decorator in between hid it, and every
// member list became a scan of all memberships); the channel cache, when
// on, goes in front.
func TestChannelStoreLayers(t *testing.T) {
	st := store.New(testenv.New(t).Mongo(t))
	for _, c := range []struct {
		name         string
		ttl          time.Duration
		channelCache bool
	}{
		{"without the channel cache", 0, false},
		{"with the channel cache", time.Hour, true},
	} {
		got := channelStore(st, Config{ChannelCacheTTL: c.ttl})
		if cc, ok := got.(*channelcache.Store); ok != c.channelCache {
			t.Fatalf("%s: outer layer %T", c.name, got)
		} else if ok {
			got = cc.ChannelStore
		}
		rc, ok := got.(*rostercache.Store)
		if !ok {
			t.Fatalf("%s: member-list cache missing, got %T", c.name, got)
		}
		if inner, ok := rc.ChannelStore.(*store.Store); !ok || inner != st {
			t.Fatalf("%s: the member-list cache is on %T, want the store itself", c.name, rc.ChannelStore)
		}
		// What the cache's Exact mode (OneWriter) needs of the store.
		if _, ok := rc.ChannelStore.(rostercache.ReadRaiser); !ok {
			t.Fatalf("%s: the store cannot raise a read position without reading it", c.name)
		}
	}
}
