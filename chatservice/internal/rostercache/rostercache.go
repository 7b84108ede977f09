// Package rostercache keeps channel member lists in memory in front of the
// chat service's channel store.
//
// Listing a channel's members is the chat service's most frequent query
// that is not a lookup by _id: the notification service lists the members
// of a channel for every message sent, and every gateway for each channel
// its connections join. On FerretDB v1, which pushes down only a filter on
// _id alone, each listing decodes the whole members collection (10,000
// documents for 100 channels of 100); at 200 messages/s that alone would
// need more than the machine.
//
// The cache is a decorator of chat.ChannelStore. It serves ListMembers and
// CountMembers from a channel's cached list and passes every other call
// through. Writes that go through it (AddMember, DeleteMember,
// SetMemberRole) drop the channel's list, and MarkRead updates the cached
// read position in place, so within one process the cache is exact.
// Writes made by another replica show after at most TTL. Authorisation
// never reads the cache: membership checks look the member up by _id.
package rostercache

import (
	"container/list"
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// Defaults of Config.
const (
	DefaultTTL         = 30 * time.Second
	DefaultMaxChannels = 1024
	DefaultMaxMembers  = 10_000
	// fillTimeout bounds a fill, which runs on behalf of every caller
	// waiting for it and so does not use any one caller's deadline.
	fillTimeout = 30 * time.Second
)

// Config tunes the cache; zero values take the defaults.
type Config struct {
	// TTL bounds how long a list stays without being refreshed: the lag
	// behind writes made by another replica.
	TTL time.Duration
	// MaxChannels is how many channels' lists are kept (least recently
	// used are dropped first).
	MaxChannels int
	// MaxMembers is the largest list kept; bigger channels are listed
	// from the store every time.
	MaxMembers int
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Store is a chat.ChannelStore that caches member lists.
type Store struct {
	chat.ChannelStore
	cfg Config

	mu      sync.Mutex
	entries map[string]*entry
	lru     *list.List // of *entry, most recently used first
	fills   map[string]*fill
	bulk    *fill // a load of every channel in flight, if any
}

var _ chat.ChannelStore = (*Store)(nil)

// entry is one channel's cached list, sorted by user id.
type entry struct {
	channelID string
	members   []chat.Member
	// tooBig marks a channel over MaxMembers: listed from the store every
	// time, but known to be, so a bulk load is not repeated for it.
	tooBig  bool
	expires time.Time
	elem    *list.Element
}

// fill is a load in flight, of one channel's list or (bulk) of every
// channel's; concurrent readers wait for it instead of loading again.
type fill struct {
	done chan struct{}
	err  error
	// stale holds the channels whose membership was written while the
	// load ran: the result may miss the write, so it is not kept for them.
	stale map[string]bool
	// reads are read positions stored while the load ran (channel, then
	// user), applied to the result before it is kept: sends mark read all
	// the time, so treating them as stale would rarely let a busy
	// channel's list in.
	reads map[string]map[string]int64
}

func newFill() *fill {
	return &fill{done: make(chan struct{}), stale: map[string]bool{}, reads: map[string]map[string]int64{}}
}

// BulkLister is implemented by stores whose query for one channel's
// members reads every membership anyway (FerretDB v1 filters in memory
// after reading the whole collection). The cache then loads every
// channel's list in one read instead of one such read per channel.
type BulkLister interface {
	// ScansAllMembers reports whether a query by channel reads every
	// membership.
	ScansAllMembers() bool
	// AllMembers returns every channel's members, each sorted by user id.
	AllMembers(ctx context.Context) (map[string][]chat.Member, error)
}

// New wraps inner.
func New(inner chat.ChannelStore, cfg Config) *Store {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.MaxMembers <= 0 {
		cfg.MaxMembers = DefaultMaxMembers
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{
		ChannelStore: inner,
		cfg:          cfg,
		entries:      map[string]*entry{},
		lru:          list.New(),
		fills:        map[string]*fill{},
	}
}

// ListMembers implements chat.ChannelStore from the cached list.
func (s *Store) ListMembers(ctx context.Context, channelID, afterUserID string, limit int) ([]chat.Member, error) {
	if err := s.load(ctx, channelID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e := s.fresh(channelID)
	if e == nil || e.tooBig {
		// Too big to keep, or dropped by a write since the load.
		s.mu.Unlock()
		return s.ChannelStore.ListMembers(ctx, channelID, afterUserID, limit)
	}
	i := sort.Search(len(e.members), func(i int) bool { return e.members[i].UserID > afterUserID })
	end := len(e.members)
	if limit > 0 {
		end = min(end, i+limit)
	}
	page := slices.Clone(e.members[i:end])
	s.mu.Unlock()
	return page, nil
}

// CountMembers implements chat.ChannelStore: cached channels are counted
// from their lists, the others by the store.
func (s *Store) CountMembers(ctx context.Context, channelIDs []string) (map[string]int64, error) {
	counts := make(map[string]int64, len(channelIDs))
	var rest []string
	s.mu.Lock()
	for _, id := range channelIDs {
		if e := s.fresh(id); e != nil && !e.tooBig {
			counts[id] = int64(len(e.members))
		} else {
			rest = append(rest, id)
		}
	}
	s.mu.Unlock()
	if len(rest) == 0 {
		return counts, nil
	}
	more, err := s.ChannelStore.CountMembers(ctx, rest)
	if err != nil {
		return nil, err
	}
	for id, n := range more {
		counts[id] = n
	}
	return counts, nil
}

// AddMember implements chat.ChannelStore and drops the channel's list.
func (s *Store) AddMember(ctx context.Context, m chat.Member) (chat.Member, bool, error) {
	stored, created, err := s.ChannelStore.AddMember(ctx, m)
	s.forget(m.ChannelID) // also after an error: the write may have happened
	return stored, created, err
}

// DeleteMember implements chat.ChannelStore and drops the channel's list.
func (s *Store) DeleteMember(ctx context.Context, channelID, userID string) (bool, error) {
	existed, err := s.ChannelStore.DeleteMember(ctx, channelID, userID)
	s.forget(channelID)
	return existed, err
}

// SetMemberRole implements chat.ChannelStore and drops the channel's list.
func (s *Store) SetMemberRole(ctx context.Context, channelID, userID, role string) (chat.Member, error) {
	m, err := s.ChannelStore.SetMemberRole(ctx, channelID, userID, role)
	s.forget(channelID)
	return m, err
}

// MarkRead implements chat.ChannelStore and updates the cached read
// position; a send marks the sender's own message read, so dropping the
// list here would empty the cache of every busy channel.
func (s *Store) MarkRead(ctx context.Context, channelID, userID string, seq int64) (int64, error) {
	stored, err := s.ChannelStore.MarkRead(ctx, channelID, userID, seq)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The position may or may not have moved. A cached position that
		// is too low is harmless (unread counts and notifications err on
		// the side of unread) and is corrected by the next read or load;
		// dropping lists here would empty the cache whenever the store is
		// slow, when loads cost the most.
		return stored, err
	}
	for _, f := range s.inFlight(channelID) {
		if f.reads[channelID] == nil {
			f.reads[channelID] = map[string]int64{}
		}
		f.reads[channelID][userID] = max(f.reads[channelID][userID], stored)
	}
	if e := s.entries[channelID]; e != nil && !e.tooBig {
		if i, found := indexOf(e.members, userID); found {
			e.members[i].LastReadSeq = max(e.members[i].LastReadSeq, stored)
		} else {
			s.drop(e) // a member the list does not know: the list is wrong
		}
	}
	return stored, err
}

// indexOf finds a user in a list sorted by user id.
func indexOf(members []chat.Member, userID string) (int, bool) {
	return slices.BinarySearchFunc(members, userID, func(m chat.Member, id string) int {
		return strings.Compare(m.UserID, id)
	})
}

// load makes sure a fresh list of the channel is cached, unless it is too
// big, loading it (once for all concurrent callers) if needed.
func (s *Store) load(ctx context.Context, channelID string) error {
	bulk, _ := s.ChannelStore.(BulkLister)
	if bulk != nil && !bulk.ScansAllMembers() {
		bulk = nil
	}
	waitedForBulk := false
	for {
		s.mu.Lock()
		if s.fresh(channelID) != nil {
			s.mu.Unlock()
			return nil
		}
		f, single := s.fills[channelID], true
		if f == nil && bulk != nil && !waitedForBulk && s.bulk != nil {
			f, single, waitedForBulk = s.bulk, false, true
		}
		if f != nil {
			s.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if single || f.err != nil {
				return f.err
			}
			continue // the bulk load may have left this channel out
		}
		f = newFill()
		useBulk := bulk != nil && !waitedForBulk
		if useBulk {
			s.bulk = f
		} else {
			s.fills[channelID] = f
		}
		s.mu.Unlock()
		return s.run(ctx, f, channelID, bulk, useBulk)
	}
}

// run performs a load and keeps what it may.
func (s *Store) run(ctx context.Context, f *fill, channelID string, bulk BulkLister, useBulk bool) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
	var all map[string][]chat.Member
	var err error
	if useBulk {
		all, err = bulk.AllMembers(fctx)
	} else {
		var members []chat.Member
		members, err = s.ChannelStore.ListMembers(fctx, channelID, "", s.cfg.MaxMembers+1)
		all = map[string][]chat.Member{channelID: members}
	}
	cancel()

	s.mu.Lock()
	if useBulk {
		s.bulk = nil
	} else {
		delete(s.fills, channelID)
	}
	f.err = err
	if err == nil {
		// Every channel whose list is expired (they expire together after
		// a bulk load, and each would otherwise take a bulk load of its
		// own) or missing while there is room: the others never evict a
		// list. The channel asked for last, so it is the most recently
		// used.
		now := s.cfg.Now()
		for id, members := range all {
			if id == channelID {
				continue
			}
			e := s.entries[id]
			if (e != nil && !now.Before(e.expires)) || (e == nil && s.lru.Len() < s.cfg.MaxChannels) {
				s.keepLoaded(f, id, members)
			}
		}
		s.keepLoaded(f, channelID, all[channelID]) // none listed: no members
	}
	s.mu.Unlock()
	close(f.done)
	return err
}

// keepLoaded keeps a loaded list unless it is too big or was written to
// during the load, with the read positions stored meanwhile. s.mu is held.
func (s *Store) keepLoaded(f *fill, channelID string, members []chat.Member) {
	if f.stale[channelID] {
		return
	}
	if len(members) > s.cfg.MaxMembers {
		s.keep(channelID, nil)
		s.entries[channelID].tooBig = true
		return
	}
	for userID, seq := range f.reads[channelID] {
		if i, found := indexOf(members, userID); found {
			members[i].LastReadSeq = max(members[i].LastReadSeq, seq)
		}
	}
	s.keep(channelID, members)
}

// inFlight returns the loads that may cover the channel. s.mu is held.
func (s *Store) inFlight(channelID string) []*fill {
	var fs []*fill
	if f := s.fills[channelID]; f != nil {
		fs = append(fs, f)
	}
	if s.bulk != nil {
		fs = append(fs, s.bulk)
	}
	return fs
}

// fresh returns the channel's unexpired entry, marking it used. s.mu is
// held.
func (s *Store) fresh(channelID string) *entry {
	e := s.entries[channelID]
	if e == nil {
		return nil
	}
	if !s.cfg.Now().Before(e.expires) {
		s.drop(e)
		return nil
	}
	s.lru.MoveToFront(e.elem)
	return e
}

// keep caches a channel's list, dropping the least recently used beyond
// MaxChannels. s.mu is held.
func (s *Store) keep(channelID string, members []chat.Member) {
	if old := s.entries[channelID]; old != nil {
		s.drop(old)
	}
	e := &entry{channelID: channelID, members: members, expires: s.cfg.Now().Add(s.cfg.TTL)}
	e.elem = s.lru.PushFront(e)
	s.entries[channelID] = e
	for s.lru.Len() > s.cfg.MaxChannels {
		s.drop(s.lru.Back().Value.(*entry))
	}
}

// forget drops a channel's list after a write, and keeps a load in flight
// from caching what it read before the write.
func (s *Store) forget(channelID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.inFlight(channelID) {
		f.stale[channelID] = true
	}
	if e := s.entries[channelID]; e != nil {
		s.drop(e)
	}
}

// drop removes an entry. s.mu is held.
func (s *Store) drop(e *entry) {
	s.lru.Remove(e.elem)
	delete(s.entries, e.channelID)
}

// Len reports how many channels' lists are cached.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.entries {
		if !e.tooBig {
			n++
		}
	}
	return n
}
