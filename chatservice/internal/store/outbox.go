package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/mongoutil"
)

// PutOutbox stores an outbox entry.
func (s *Store) PutOutbox(ctx context.Context, e chat.OutboxEntry) error {
	d, err := docOfOutbox(e)
	if err != nil {
		return err
	}
	if s.outboxPuts != nil {
		err = s.outboxPuts.do(ctx, d)
	} else {
		err = s.gatedInsertOne(ctx, s.outbox, d)
	}
	if err != nil {
		if mongoutil.IsDuplicateKey(err) {
			return fmt.Errorf("outbox entry %s: %w", e.ID, chat.ErrDuplicate)
		}
		return fmt.Errorf("insert outbox entry %s: %w", e.ID, err)
	}
	return nil
}

// insertOutboxBatch inserts queued outbox entries (batch.go).
func (s *Store) insertOutboxBatch(ctx context.Context, docs []outboxDoc) []error {
	_, err := s.outbox.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	return perDocErrors(len(docs), err)
}

// DeleteOutbox removes an entry. In the one-writer mode the deletion is
// queued behind the writes queued before it (behind.go).
func (s *Store) DeleteOutbox(ctx context.Context, id string) error {
	if s.behind != nil {
		s.behind.deleteOutbox(s, id)
		return nil
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.outbox.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete outbox entry %s: %w", id, err)
	}
	return nil
}

// DueOutbox lists entries due at now, oldest first.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]chat.OutboxEntry, error) {
	opts := options.Find().SetSort(bson.D{{Key: "next_attempt_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit))
	cur, err := s.outbox.Find(ctx, bson.D{{Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: now}}}}, opts)
	if err != nil {
		return nil, fmt.Errorf("find due outbox entries: %w", err)
	}
	var docs []outboxDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read outbox entries: %w", err)
	}
	out := make([]chat.OutboxEntry, len(docs))
	for i, d := range docs {
		if out[i], err = fromDocOutbox(d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ClaimOutbox leases a due entry: it moves next_attempt_at to until and
// counts the attempt, but only if the entry is still due, so of two relays
// (replicas) on MongoDB one wins. On FerretDB v1 both may win; the event id
// makes the double publish harmless.
func (s *Store) ClaimOutbox(ctx context.Context, id string, now, until time.Time) (bool, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	res, err := s.outbox.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: now}}}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "next_attempt_at", Value: until}}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		})
	if err != nil {
		return false, fmt.Errorf("claim outbox entry %s: %w", id, err)
	}
	return res.ModifiedCount > 0, nil
}

// CountOutbox counts pending entries (for tests and health checks).
func (s *Store) CountOutbox(ctx context.Context) (int64, error) {
	n, err := s.outbox.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count outbox entries: %w", err)
	}
	return n, nil
}
