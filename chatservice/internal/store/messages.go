package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/mongoutil"
)

// upsertAttempts bounds retries of a counter upsert that lost the race to
// create the document (two first messages of a channel at once).
const upsertAttempts = 3

// NextSeq increments the channel's counter: FindOneAndUpdate with $inc,
// upsert, returning the new value. In the one-writer mode the counters
// live in memory and one write reserves the next seqBlock seqs of a
// channel (seqmemo.go), so most sends write no counter.
func (s *Store) NextSeq(ctx context.Context, channelID string) (int64, error) {
	if s.seqs == nil {
		return s.incSeq(ctx, channelID)
	}
	unlock := s.seqs.lockChannel(channelID)
	defer unlock()
	if seq, ok := s.seqs.next(channelID); ok {
		return seq, nil
	}
	last, known := s.seqs.last(channelID)
	if !known {
		var err error
		if last, err = s.lastSeq(ctx, channelID); err != nil {
			return 0, err
		}
	}
	r := seqRange{last: last, reserved: last + seqBlock}
	// Urgent at the write gate, with the inserts: the send waits for it.
	if err := s.raiseCounter(ctx, channelID, r.reserved, true); err != nil {
		return 0, fmt.Errorf("reserve seqs of %s: %w", channelID, err)
	}
	s.seqs.set(channelID, r)
	seq, _ := s.seqs.next(channelID)
	return seq, nil
}

// raiseCounter moves the channel's counter document up to at least seq
// ($max, upsert), through the write gate.
func (s *Store) raiseCounter(ctx context.Context, channelID string, seq int64, urgent bool) error {
	unlock, err := s.lockWritesUrgent(ctx, urgent)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.counters.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: channelID}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "seq", Value: seq}}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil && !mongoutil.IsDuplicateKey(err) {
		return fmt.Errorf("raise the counter of %s to %d: %w", channelID, seq, err)
	}
	return nil
}

// lastSeq is the highest seq a channel is known to have used: its counter
// document's or its preview's, whichever is higher (zero for neither).
// The preview counts for data whose counter fell behind (restored, or
// written by another mode); a message above both is refused by the unique
// index and the send path raises the counter past it (RaiseSeq).
func (s *Store) lastSeq(ctx context.Context, channelID string) (int64, error) {
	var c counterDoc
	err := s.counters.FindOne(ctx, bson.D{{Key: "_id", Value: channelID}}).Decode(&c)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return 0, fmt.Errorf("read seq counter of %s: %w", channelID, err)
	}
	preview, err := s.previewSeq(ctx, channelID)
	if err != nil {
		return 0, err
	}
	return max(c.Seq, preview), nil
}

// previewSeq reads a channel's last_seq (zero if the channel is gone).
func (s *Store) previewSeq(ctx context.Context, channelID string) (int64, error) {
	seq, _, err := s.readLastSeq(ctx, channelID)
	return seq, err
}

// readLastSeq reads a channel's last_seq, and whether the channel exists.
func (s *Store) readLastSeq(ctx context.Context, channelID string) (seq int64, exists bool, err error) {
	var ch struct {
		LastSeq int64 `bson:"last_seq"`
	}
	err = s.channels.FindOne(ctx, bson.D{{Key: "_id", Value: channelID}},
		options.FindOne().SetProjection(bson.D{{Key: "last_seq", Value: 1}})).Decode(&ch)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("read last seq of %s: %w", channelID, err)
	}
	if s.behind != nil {
		if m, ok := s.behind.preview(channelID); ok {
			return max(ch.LastSeq, m.Seq), true, nil
		}
	}
	return ch.LastSeq, true, nil
}

// incSeq increments the counter in the database and returns its value.
func (s *Store) incSeq(ctx context.Context, channelID string) (int64, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	opts := options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)
	for range upsertAttempts {
		var d counterDoc
		err = s.counters.FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: channelID}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(1)}}}},
			opts).Decode(&d)
		if err == nil {
			return d.Seq, nil
		}
		if !mongoutil.IsDuplicateKey(err) {
			break
		}
		// A concurrent upsert created the counter first: the document
		// exists now, so the next attempt increments it.
	}
	return 0, fmt.Errorf("increment seq of %s: %w", channelID, err)
}

// RaiseSeq moves the counter up to at least seq, and to the channel
// preview's last_seq if that is higher: the preview shows a stored
// message, so every seq up to it is used, and a counter that fell behind
// (restored data) catches up in one step instead of one collision per
// message. In the one-writer mode the counter in memory moves within its
// reserved block, or is learnt again at the next send if seq is past it.
func (s *Store) RaiseSeq(ctx context.Context, channelID string, seq int64) error {
	preview, err := s.previewSeq(ctx, channelID)
	if err != nil {
		return err
	}
	seq = max(seq, preview)
	if s.seqs != nil {
		unlock := s.seqs.lockChannel(channelID)
		defer unlock()
		s.seqs.raise(channelID, seq)
	}
	return s.raiseCounter(ctx, channelID, seq, false)
}

// ReleaseSeq gives back seq if it is still the counter's value. On
// MongoDB the filter makes that one atomic step. On FerretDB (filters on
// _id alone, see SetLastMessage) it reads, compares and writes by _id; the
// caller holds the channel's seq lock, so no send of this process moves
// the counter meanwhile.
//
// In the one-writer mode only the counter in memory goes back: the
// counter document holds the end of the reserved block, not seq.
func (s *Store) ReleaseSeq(ctx context.Context, channelID string, seq int64) error {
	if s.seqs != nil {
		s.seqs.release(channelID, seq)
		return nil
	}
	if s.idFiltersOnly.Load() {
		var d counterDoc
		err := s.counters.FindOne(ctx, bson.D{{Key: "_id", Value: channelID}}).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return nil
		case err != nil:
			return fmt.Errorf("read seq of %s: %w", channelID, err)
		case d.Seq != seq:
			return nil
		}
		_, err = s.gatedUpdateOne(ctx, s.counters, bson.D{{Key: "_id", Value: channelID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq - 1}}}})
		if err != nil {
			return fmt.Errorf("release seq %d of %s: %w", seq, channelID, err)
		}
		return nil
	}
	_, err := s.gatedUpdateOne(ctx, s.counters,
		bson.D{{Key: "_id", Value: channelID}, {Key: "seq", Value: seq}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(-1)}}}})
	if err != nil {
		return fmt.Errorf("release seq %d of %s: %w", seq, channelID, err)
	}
	return nil
}

// InsertMessage stores a message. A duplicate key is either the id (a
// retried send: chat.ErrMessageExists) or the seq (chat.ErrSeqTaken); which
// one is told by looking the id up, since the error text differs between
// MongoDB and FerretDB's backends.
func (s *Store) InsertMessage(ctx context.Context, m chat.Message) error {
	var err error
	if s.messageInserts != nil {
		err = s.messageInserts.do(ctx, docOfMessage(m))
	} else {
		err = s.gatedInsertOne(ctx, s.messages, docOfMessage(m))
	}
	if err == nil {
		return nil
	}
	if !mongoutil.IsDuplicateKey(err) {
		return fmt.Errorf("insert message %s: %w", m.ID, err)
	}
	n, cerr := s.messages.CountDocuments(ctx, bson.D{{Key: "_id", Value: m.ID}})
	switch {
	case cerr != nil:
		return fmt.Errorf("insert message %s: duplicate, then: %w", m.ID, cerr)
	case n > 0:
		return fmt.Errorf("message %s: %w", m.ID, chat.ErrMessageExists)
	}
	return fmt.Errorf("message %s seq %d in %s: %w", m.ID, m.Seq, m.ChannelID, chat.ErrSeqTaken)
}

// insertMessageBatch inserts queued messages (batch.go).
func (s *Store) insertMessageBatch(ctx context.Context, docs []messageDoc) []error {
	_, err := s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	return perDocErrors(len(docs), err)
}

// GetMessage returns a message or chat.ErrNotFound.
func (s *Store) GetMessage(ctx context.Context, id string) (chat.Message, error) {
	var d messageDoc
	if err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return chat.Message{}, fmt.Errorf("find message %s: %w", id, notFound(err))
	}
	return fromDocMessage(d), nil
}

// UpdateMessage stores the mutable fields of m.
func (s *Store) UpdateMessage(ctx context.Context, m chat.Message) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	d := docOfMessage(m)
	set := bson.D{
		{Key: "content", Value: d.Content},
		{Key: "type", Value: d.Type},
		{Key: "terms", Value: d.Terms},
		{Key: "deleted", Value: d.Deleted},
	}
	var unset bson.D
	optional := []struct {
		key   string
		value any
		set   bool
	}{
		{"metadata", d.Metadata, d.Metadata != nil},
		{"attachment", d.Attachment, d.Attachment != nil},
		{"edited_at", d.EditedAt, d.EditedAt != nil},
	}
	for _, f := range optional {
		if f.set {
			set = append(set, bson.E{Key: f.key, Value: f.value})
		} else {
			unset = append(unset, bson.E{Key: f.key, Value: ""})
		}
	}
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	res, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ID}}, update)
	if err != nil {
		return fmt.Errorf("update message %s: %w", m.ID, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update message %s: %w", m.ID, chat.ErrNotFound)
	}
	return nil
}

// ListMessages answers a history query with the unique (channel_id, seq)
// index on MongoDB.
func (s *Store) ListMessages(ctx context.Context, q chat.HistoryQuery) ([]chat.Message, error) {
	filter := bson.D{{Key: "channel_id", Value: q.ChannelID}}
	var bounds bson.D
	if q.AfterSeq > 0 {
		bounds = append(bounds, bson.E{Key: "$gt", Value: q.AfterSeq})
	}
	if q.BeforeSeq > 0 {
		bounds = append(bounds, bson.E{Key: "$lt", Value: q.BeforeSeq})
	}
	if len(bounds) > 0 {
		filter = append(filter, bson.E{Key: "seq", Value: bounds})
	}
	dir := 1
	if q.Descending {
		dir = -1
	}
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: dir}})
	if q.Limit > 0 {
		opts.SetLimit(int64(q.Limit))
	}
	return s.findMessages(ctx, filter, opts)
}

// SearchMessages finds non-deleted messages holding every term, newest
// first, after the cursor.
func (s *Store) SearchMessages(ctx context.Context, q chat.SearchQuery) ([]chat.Message, error) {
	filter := bson.D{
		{Key: "channel_id", Value: bson.D{{Key: "$in", Value: q.ChannelIDs}}},
		{Key: "terms", Value: bson.D{{Key: "$all", Value: q.Terms}}},
		{Key: "deleted", Value: false},
	}
	if c := q.After; c != nil {
		// (created_at, seq, _id) < cursor, in descending order.
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: c.CreatedAt}}}},
			bson.D{{Key: "created_at", Value: c.CreatedAt}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: c.Seq}}}},
			bson.D{{Key: "created_at", Value: c.CreatedAt}, {Key: "seq", Value: c.Seq}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: c.ID}}}},
		}})
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "seq", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(q.Limit))
	return s.findMessages(ctx, filter, opts)
}

func (s *Store) findMessages(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]chat.Message, error) {
	cur, err := s.messages.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	out := make([]chat.Message, len(docs))
	for i, d := range docs {
		out[i] = fromDocMessage(d)
	}
	return out, nil
}

// InsertMessages stores messages in bulk, unordered, ignoring ones already
// stored: for seeding benchmarks and imports, not for the send path.
func (s *Store) InsertMessages(ctx context.Context, ms []chat.Message) error {
	docs := make([]any, len(ms))
	for i, m := range ms {
		docs[i] = docOfMessage(m)
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = s.messages.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0 {
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 && !mongoutil.IsDuplicateKey(we) {
				return fmt.Errorf("insert messages: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("insert messages: %w", err)
}
