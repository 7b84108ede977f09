// Package channelcache keeps channel documents in memory in front of the
// chat service's channel store.
//
// Every send reads its channel (authorisation: does it exist, what type is
// it), and so does every member listing the notification service makes for
// the same message; on FerretDB each read is a command and a SQLite query.
// A channel's document never changes in the store except for its preview
// (last_seq and last_message), and channels are not deleted, so a cached
// copy is safe for authorisation; the preview is what can go stale.
//
// The cache is a decorator of chat.ChannelStore: GetChannel is served from
// memory, and SetLastMessage and ReplaceLastMessage apply the same change
// to the cached copy as to the store (the same seq rules), so within one
// process the cache is exact. A preview written through another replica
// shows after at most TTL; the chat service therefore leaves the cache off
// unless it is the database's only writer (the all-in-one on its embedded
// FerretDB) or the operator accepts that lag. Lookups that find no channel
// are not cached: a channel created through another replica is visible at
// once.
package channelcache

import (
	"context"
	"sync"
	"time"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// DefaultMaxChannels bounds the cache by default.
const DefaultMaxChannels = 10_000

// Config tunes the cache.
type Config struct {
	// TTL is how long a channel is served without a read; required.
	TTL time.Duration
	// MaxChannels is how many channels are kept (default
	// DefaultMaxChannels); when full, an arbitrary one is dropped.
	MaxChannels int
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Store is a chat.ChannelStore that caches channel documents.
type Store struct {
	chat.ChannelStore
	cfg Config

	mu      sync.Mutex
	entries map[string]*entry
}

var _ chat.ChannelStore = (*Store)(nil)

type entry struct {
	ch      chat.Channel
	expires time.Time
}

// New returns the cache in front of store.
func New(store chat.ChannelStore, cfg Config) *Store {
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{ChannelStore: store, cfg: cfg, entries: make(map[string]*entry)}
}

// GetChannel implements chat.ChannelStore from the cache when it can.
func (s *Store) GetChannel(ctx context.Context, id string) (chat.Channel, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	if e, ok := s.entries[id]; ok && now.Before(e.expires) {
		ch := copyChannel(e.ch)
		s.mu.Unlock()
		return ch, nil
	}
	s.mu.Unlock()

	ch, err := s.ChannelStore.GetChannel(ctx, id)
	if err != nil {
		return ch, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; !ok && len(s.entries) >= s.cfg.MaxChannels {
		for k := range s.entries { // an arbitrary one
			delete(s.entries, k)
			break
		}
	}
	s.entries[id] = &entry{ch: copyChannel(ch), expires: now.Add(s.cfg.TTL)}
	return ch, nil
}

// SetLastMessage implements chat.ChannelStore and records the preview in
// the cached copy too, unless it shows a newer message.
func (s *Store) SetLastMessage(ctx context.Context, m chat.Message) error {
	err := s.ChannelStore.SetLastMessage(ctx, m)
	s.update(m.ChannelID, err, func(ch *chat.Channel) {
		if ch.LastSeq < m.Seq {
			ch.LastSeq, ch.LastMessage = m.Seq, preview(m)
		}
	})
	return err
}

// ReplaceLastMessage implements chat.ChannelStore and refreshes the cached
// preview too if it shows m.
func (s *Store) ReplaceLastMessage(ctx context.Context, m chat.Message) error {
	err := s.ChannelStore.ReplaceLastMessage(ctx, m)
	s.update(m.ChannelID, err, func(ch *chat.Channel) {
		if ch.LastSeq == m.Seq {
			ch.LastMessage = preview(m)
		}
	})
	return err
}

// update applies a store write to the cached copy; after a failed write,
// whose outcome is unknown, the copy is dropped.
func (s *Store) update(channelID string, err error, apply func(*chat.Channel)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[channelID]
	if !ok {
		return
	}
	if err != nil {
		delete(s.entries, channelID)
		return
	}
	apply(&e.ch)
}

// preview is m as the store keeps it on the channel: without search terms,
// with times at the millisecond in UTC (BSON dates).
func preview(m chat.Message) *chat.Message {
	m.Terms = nil
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Millisecond)
	if !m.EditedAt.IsZero() {
		m.EditedAt = m.EditedAt.UTC().Truncate(time.Millisecond)
	}
	return &m
}

// copyChannel copies ch so the caller and the cache do not share the
// preview message.
func copyChannel(ch chat.Channel) chat.Channel {
	if ch.LastMessage != nil {
		m := *ch.LastMessage
		ch.LastMessage = &m
	}
	return ch
}
