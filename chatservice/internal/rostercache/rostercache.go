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
// SetMemberRole) drop the channel's list (in the Exact mode below they
// update it in place), and MarkRead updates the cached read position in
// place, so within one process the cache is exact.
// Writes made by another replica show after at most TTL, so by default
// authorisation never reads the cache: membership checks look the member
// up by _id. A process that is its database's only writer (Config.Exact,
// the all-in-one) answers those from the lists too, and raises a read
// position without reading it first.
package rostercache

import (
	"container/list"
	"context"
	"fmt"
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
	// Exact declares this process the only writer of the memberships
	// (the all-in-one on its embedded database): every change passes
	// through the cache, so a cached list is the truth, and GetMember
	// (every send's membership check) and MarkRead are answered from it.
	// Without it GetMember always asks the store.
	Exact bool
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
	// changes are the memberships written while the load ran in the
	// Exact mode (by channel, in order), applied to the result before it
	// is kept instead of marking it stale: joins come in bursts, and
	// each would otherwise cost another load.
	changes map[string][]change
}

// change is a membership written through the cache in the Exact mode: a
// member added or changed, or (removed) taken out.
type change struct {
	member  chat.Member
	removed bool
}

func newFill() *fill {
	return &fill{done: make(chan struct{}), stale: map[string]bool{}, reads: map[string]map[string]int64{}, changes: map[string][]change{}}
}

// ReadRaiser is implemented by stores that can raise a read position
// without reading it (the chat store's RaiseReadSeq). In the Exact mode
// the cache knows the position, and MarkRead uses it.
type ReadRaiser interface {
	// RaiseReadSeq raises the member's read position to seq with $max.
	RaiseReadSeq(ctx context.Context, channelID, userID string, seq int64) error
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

// AddMember implements chat.ChannelStore and drops the channel's list, or
// in the Exact mode adds the member to it. After an error the list is
// dropped in both modes: the write may have happened.
func (s *Store) AddMember(ctx context.Context, m chat.Member) (chat.Member, bool, error) {
	stored, created, err := s.ChannelStore.AddMember(ctx, m)
	switch {
	case err != nil || !s.cfg.Exact:
		s.forget(m.ChannelID)
	case created:
		s.written(change{member: stored})
	}
	return stored, created, err
}

// DeleteMember implements chat.ChannelStore and drops the channel's list,
// or in the Exact mode takes the member out of it.
func (s *Store) DeleteMember(ctx context.Context, channelID, userID string) (bool, error) {
	existed, err := s.ChannelStore.DeleteMember(ctx, channelID, userID)
	switch {
	case err != nil || !s.cfg.Exact:
		s.forget(channelID)
	case existed:
		s.written(change{member: chat.Member{ChannelID: channelID, UserID: userID}, removed: true})
	}
	return existed, err
}

// SetMemberRole implements chat.ChannelStore and drops the channel's list,
// or in the Exact mode updates it.
func (s *Store) SetMemberRole(ctx context.Context, channelID, userID, role string) (chat.Member, error) {
	m, err := s.ChannelStore.SetMemberRole(ctx, channelID, userID, role)
	if err != nil || !s.cfg.Exact {
		s.forget(channelID)
	} else {
		s.written(change{member: m})
	}
	return m, err
}

// written applies a membership write of the Exact mode to the cached list
// and records it in the loads in flight, which apply it to their result.
func (s *Store) written(c change) {
	s.mu.Lock()
	defer s.mu.Unlock()
	channelID := c.member.ChannelID
	for _, f := range s.inFlight(channelID) {
		f.changes[channelID] = append(f.changes[channelID], c)
	}
	if e := s.entries[channelID]; e != nil && !e.tooBig {
		e.members = applyChange(e.members, c)
		if len(e.members) > s.cfg.MaxMembers {
			s.drop(e) // reloaded, and then kept as too big
		}
	}
}

// applyChange applies c to a list sorted by user id. A change that the
// list already shows (a load that read it) leaves the list as it is, so
// changes can be applied to a load whether or not it saw them.
func applyChange(members []chat.Member, c change) []chat.Member {
	i, found := indexOf(members, c.member.UserID)
	switch {
	case c.removed && found:
		return slices.Delete(members, i, i+1)
	case c.removed:
		return members
	case found:
		// A read position raised meanwhile is not undone.
		c.member.LastReadSeq = max(c.member.LastReadSeq, members[i].LastReadSeq)
		members[i] = c.member
		return members
	default:
		return slices.Insert(members, i, c.member)
	}
}

// GetMember implements chat.ChannelStore: from the cached list in the
// Exact mode, from the store otherwise.
func (s *Store) GetMember(ctx context.Context, channelID, userID string) (chat.Member, error) {
	if s.cfg.Exact {
		m, found, cached, err := s.cachedMember(ctx, channelID, userID)
		switch {
		case err != nil:
			return chat.Member{}, err
		case cached && !found:
			return chat.Member{}, fmt.Errorf("member %s of %s: %w", userID, channelID, chat.ErrNotFound)
		case cached:
			return m, nil
		}
	}
	return s.ChannelStore.GetMember(ctx, channelID, userID)
}

// cachedMember looks a member up in the channel's list, loading it if
// needed; cached is false if the list is not kept (too big, or dropped by
// a write since the load).
func (s *Store) cachedMember(ctx context.Context, channelID, userID string) (m chat.Member, found, cached bool, err error) {
	if err := s.load(ctx, channelID); err != nil {
		return chat.Member{}, false, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.fresh(channelID)
	if e == nil || e.tooBig {
		return chat.Member{}, false, false, nil
	}
	i, found := indexOf(e.members, userID)
	if !found {
		return chat.Member{}, false, true, nil
	}
	return e.members[i], true, true, nil
}

// MarkRead implements chat.ChannelStore and updates the cached read
// position; a send marks the sender's own message read, so dropping the
// list here would empty the cache of every busy channel. In the Exact
// mode a cached member's position is compared in memory and only raised
// in the store if it moves, without the store's read.
func (s *Store) MarkRead(ctx context.Context, channelID, userID string, seq int64) (int64, error) {
	if raiser, ok := s.ChannelStore.(ReadRaiser); ok && s.cfg.Exact {
		m, found, cached, err := s.cachedMember(ctx, channelID, userID)
		switch {
		case err != nil:
			return 0, err
		case cached && !found:
			return 0, fmt.Errorf("member %s of %s: %w", userID, channelID, chat.ErrNotFound)
		case cached && m.LastReadSeq >= seq:
			return m.LastReadSeq, nil
		case cached:
			if err := raiser.RaiseReadSeq(ctx, channelID, userID, seq); err != nil {
				return 0, err // see below: the cached position stays
			}
			return s.noteRead(channelID, userID, seq), nil
		}
	}
	stored, err := s.ChannelStore.MarkRead(ctx, channelID, userID, seq)
	if err != nil {
		// The position may or may not have moved. A cached position that
		// is too low is harmless (unread counts and notifications err on
		// the side of unread) and is corrected by the next read or load;
		// dropping lists here would empty the cache whenever the store is
		// slow, when loads cost the most.
		return stored, err
	}
	return s.noteRead(channelID, userID, stored), nil
}

// MarkSenderRead implements chat.ChannelStore and updates the cached read
// position like MarkRead. In the Exact mode a cached position that is at
// seq already is not raised again, and a member the list does not have is
// not looked for in the store.
func (s *Store) MarkSenderRead(ctx context.Context, channelID, userID string, seq int64) error {
	if s.cfg.Exact {
		m, found, cached, err := s.cachedMember(ctx, channelID, userID)
		switch {
		case err != nil:
			return err
		case cached && !found:
			return nil
		case cached && m.LastReadSeq >= seq:
			return nil
		}
	}
	if err := s.ChannelStore.MarkSenderRead(ctx, channelID, userID, seq); err != nil {
		return err // the cached position stays, as in MarkRead
	}
	s.noteRead(channelID, userID, seq)
	return nil
}

// noteRead records a stored read position in the cached list and in the
// loads in flight, and returns the cached position (a concurrent raise
// may have gone higher), or stored if the member's list is not cached.
func (s *Store) noteRead(channelID, userID string, stored int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.inFlight(channelID) {
		if f.reads[channelID] == nil {
			f.reads[channelID] = map[string]int64{}
		}
		f.reads[channelID][userID] = max(f.reads[channelID][userID], stored)
	}
	if e := s.entries[channelID]; e != nil && !e.tooBig {
		if i, found := indexOf(e.members, userID); found {
			e.members[i].LastReadSeq = max(e.members[i].LastReadSeq, stored)
			return e.members[i].LastReadSeq
		}
		s.drop(e) // a member the list does not know: the list is wrong
	}
	return stored
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
// during the load (in the Exact mode with the writes applied instead),
// with the read positions stored meanwhile. s.mu is held.
func (s *Store) keepLoaded(f *fill, channelID string, members []chat.Member) {
	if f.stale[channelID] {
		return
	}
	for _, c := range f.changes[channelID] {
		members = applyChange(members, c)
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
