// Package store is the chat service's MongoDB adapter: it implements the
// chat domain's ChannelStore, MessageStore, OutboxStore and AttachmentStore
// on the collections channels, members, messages, counters, outbox and the
// GridFS bucket attachments.
//
// Everything here works on real MongoDB and on FerretDB v1: no
// transactions, no change streams, no text or TTL indexes, $group only with
// $sum. Uniqueness (message ids, seqs, direct channels, memberships) is
// decided by _id and unique indexes, which both enforce atomically.
//
// Shard keys for real MongoDB (documented, not applied by the service):
//
//	messages  {channel_id: 1, seq: 1}  history reads and the unique seq index stay on one shard
//	members   {channel_id: 1}          membership checks and member lists by channel
//	channels  {_id: "hashed"}          looked up by id only
//	counters  {_id: "hashed"}          one document per channel
//	outbox    unsharded                small and short-lived
//	attachments.chunks {files_id: 1, n: 1}  the GridFS convention
package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/mongoutil"
)

// Collection names.
const (
	ChannelsCollection = "channels"
	MembersCollection  = "members"
	MessagesCollection = "messages"
	CountersCollection = "counters"
	OutboxCollection   = "outbox"
	// AttachmentsBucket is the GridFS bucket: attachments.files and
	// attachments.chunks.
	AttachmentsBucket = "attachments"
)

// Store implements the chat domain's store interfaces on one database.
type Store struct {
	db       *mongo.Database
	channels *mongo.Collection
	members  *mongo.Collection
	messages *mongo.Collection
	counters *mongo.Collection
	outbox   *mongo.Collection
	files    *mongo.Collection
	chunks   *mongo.Collection

	// idFiltersOnly is set on FerretDB, whose v1 query planner pushes down
	// only a filter on _id alone: hot paths then avoid compound filters.
	idFiltersOnly atomic.Bool
	// previews serialize the read-compare-write of a channel's preview on
	// FerretDB, striped by channel id, and remember the last_seq seen.
	previews [64]previewStripe
	now      func() time.Time
	// writeGate, when set, lets one write at a time through (see
	// OneWriter).
	writeGate *gate
	// With the write gate, concurrent writes of these kinds go in batches
	// (batch.go); nil otherwise.
	outboxPuts     *batcher[outboxDoc]
	messageInserts *batcher[messageDoc]
	memberUpdates  *batcher[mongo.WriteModel]
	// behind queues the previews, the senders' read positions and the
	// outbox deletions in the one-writer mode (behind.go); nil otherwise.
	behind         *behind
	behindInterval time.Duration
	log            *slog.Logger
	// seqs remembers the counters in the one-writer mode; nil otherwise.
	seqs *seqMemo
}

// Option configures a Store.
type Option func(*Store)

// OneWriter queues the store's writes in the process, one at a time, for a
// database that admits one writer at a time: the embedded FerretDB keeps
// each database in one SQLite file. Concurrent writers there wait in
// SQLite's busy handler, which sleeps 1, 2, 5, ... up to 100 ms between
// tries while the CPU idles, and lets a newcomer overtake a writer that
// has waited long; under load that cost more throughput than any query,
// and put seconds into the tail latency of a send. Reads are not queued.
// Writes of one kind that queue together are written as one command
// (group commit, see batch.go): outbox entries, messages and read
// positions.
//
// OneWriter also declares the store the database's only writer (the
// all-in-one's embedded FerretDB is reachable from its own process only),
// which lets it keep the seq counters in memory and reserve seqs in
// blocks (seqmemo.go): most sends write no counter. And it lets the
// store write a send's last writes behind (behind.go): channel previews,
// the sender's read position and the deletion of the outbox entry wait
// in memory, reads see them, and they are written together every
// DefaultWriteBehind (see WriteBehind), or by Flush and Close.
func OneWriter() Option {
	return func(s *Store) { s.writeGate = &gate{} }
}

// WriteBehind sets, for the one-writer mode, how long queued writes wait
// (DefaultWriteBehind if not positive) and where a failed flush is logged
// (slog.Default if nil).
func WriteBehind(interval time.Duration, log *slog.Logger) Option {
	return func(s *Store) { s.behindInterval, s.log = interval, log }
}

// lockWrites waits for the write gate, or for ctx, and returns its
// release. A write method holds it around its writes and never calls
// another write method while holding it.
func (s *Store) lockWrites(ctx context.Context) (func(), error) {
	return s.lockWritesUrgent(ctx, false)
}

// lockWritesUrgent is lockWrites, ahead of the writes that are not urgent
// if urgent (see gate).
func (s *Store) lockWritesUrgent(ctx context.Context, urgent bool) (func(), error) {
	if s.writeGate == nil {
		return func() {}, nil
	}
	return s.writeGate.lock(ctx, urgent)
}

var (
	_ chat.ChannelStore    = (*Store)(nil)
	_ chat.MessageStore    = (*Store)(nil)
	_ chat.OutboxStore     = (*Store)(nil)
	_ chat.AttachmentStore = (*Store)(nil)
)

// New returns a store on db. Call EnsureIndexes once at start-up.
func New(db *mongo.Database, opts ...Option) *Store {
	s := &Store{
		db:       db,
		channels: db.Collection(ChannelsCollection),
		members:  db.Collection(MembersCollection),
		messages: db.Collection(MessagesCollection),
		counters: db.Collection(CountersCollection),
		outbox:   db.Collection(OutboxCollection),
		files:    db.Collection(AttachmentsBucket + ".files"),
		chunks:   db.Collection(AttachmentsBucket + ".chunks"),
		now:      time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.writeGate != nil {
		s.outboxPuts = newBatcher(s, "insert outbox entries", s.insertOutboxBatch)
		s.outboxPuts.urgent = true
		s.messageInserts = newBatcher(s, "insert messages", s.insertMessageBatch)
		s.messageInserts.urgent = true
		s.memberUpdates = newBatcher(s, "update members", bulkUpdates(s.members))
		if s.behindInterval <= 0 {
			s.behindInterval = DefaultWriteBehind
		}
		if s.log == nil {
			s.log = slog.Default()
		}
		s.behind = newBehind(s.behindInterval)
		s.seqs = &seqMemo{}
	}
	return s
}

// Index names, so a test (and an operator) can find them.
const (
	IndexMessagesSeq    = "channel_seq"
	IndexMessagesTerms  = "channel_terms"
	IndexMembersUser    = "user_channel"
	IndexMembersChannel = "channel_user"
	IndexChannelsBrowse = "type_name"
	IndexChannelsDMKey  = "dm_key"
	IndexOutboxDue      = "next_attempt_at"
)

// EnsureIndexes creates the indexes the service relies on. The unique ones
// are correctness (one message per seq, one direct channel per pair);
// FerretDB v1 enforces them but does not use secondary indexes for queries,
// which is why recent history is served from Redis.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	ferret, err := mongoutil.IsFerretDB(ctx, s.db)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.idFiltersOnly.Store(ferret)
	type spec struct {
		coll   *mongo.Collection
		models []mongo.IndexModel
	}
	specs := []spec{
		{s.messages, []mongo.IndexModel{
			{Keys: bson.D{{Key: "channel_id", Value: 1}, {Key: "seq", Value: 1}},
				Options: options.Index().SetName(IndexMessagesSeq).SetUnique(true)},
			// Multikey on real MongoDB: search by channel and terms.
			{Keys: bson.D{{Key: "channel_id", Value: 1}, {Key: "terms", Value: 1}},
				Options: options.Index().SetName(IndexMessagesTerms)},
		}},
		{s.members, []mongo.IndexModel{
			{Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "channel_id", Value: 1}},
				Options: options.Index().SetName(IndexMembersUser)},
			{Keys: bson.D{{Key: "channel_id", Value: 1}, {Key: "user_id", Value: 1}},
				Options: options.Index().SetName(IndexMembersChannel)},
		}},
		{s.channels, []mongo.IndexModel{
			{Keys: bson.D{{Key: "type", Value: 1}, {Key: "name_lc", Value: 1}, {Key: "_id", Value: 1}},
				Options: options.Index().SetName(IndexChannelsBrowse)},
			// Sparse on MongoDB so channels without a DM key do not collide
			// on null; FerretDB ignores "sparse" and never indexes a missing
			// field as a duplicate anyway.
			{Keys: bson.D{{Key: "dm_key", Value: 1}},
				Options: options.Index().SetName(IndexChannelsDMKey).SetUnique(true).SetSparse(true)},
		}},
		{s.outbox, []mongo.IndexModel{
			{Keys: bson.D{{Key: "next_attempt_at", Value: 1}},
				Options: options.Index().SetName(IndexOutboxDue)},
		}},
		// The GridFS convention, created here rather than by the driver on
		// the first upload.
		{s.files, []mongo.IndexModel{
			{Keys: bson.D{{Key: "filename", Value: 1}, {Key: "uploadDate", Value: 1}}},
		}},
		{s.chunks, []mongo.IndexModel{
			{Keys: bson.D{{Key: "files_id", Value: 1}, {Key: "n", Value: 1}},
				Options: options.Index().SetUnique(true)},
		}},
	}
	for _, sp := range specs {
		// One at a time: FerretDB v1.24 crashes the connection on a
		// createIndexes of several indexes that all exist already (every
		// restart), while a single existing index is a no-op.
		for _, m := range sp.models {
			if _, err := sp.coll.Indexes().CreateOne(ctx, m); err != nil {
				return fmt.Errorf("create index on %s: %w", sp.coll.Name(), err)
			}
		}
	}
	return nil
}

// cleanupTimeout bounds clean-up writes that run after the caller gave up.
const cleanupTimeout = 10 * time.Second

// gatedUpdateOne is UpdateOne through the write gate.
func (s *Store) gatedUpdateOne(ctx context.Context, c *mongo.Collection, filter, update any) (*mongo.UpdateResult, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return c.UpdateOne(ctx, filter, update)
}

// gatedInsertOne is InsertOne through the write gate.
func (s *Store) gatedInsertOne(ctx context.Context, c *mongo.Collection, doc any) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = c.InsertOne(ctx, doc)
	return err
}

// Database returns the database the store writes to.
func (s *Store) Database() *mongo.Database { return s.db }

// bsonTime converts a stored date to UTC (the driver decodes to local).
func bsonTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
