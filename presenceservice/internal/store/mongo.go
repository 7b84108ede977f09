package store

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// saveBatch bounds the users written per bulk request.
const saveBatch = 100

// Collection is the MongoDB collection of durable presence. Documents are
// keyed by user id; on a sharded cluster shard it by hashed _id. No
// secondary index is needed: every access is by _id.
const Collection = "presence"

// presenceDoc is one user's durable presence.
type presenceDoc struct {
	UserID        string     `bson:"_id"`
	LastSeen      *time.Time `bson:"last_seen,omitempty"`
	StatusMessage *string    `bson:"status_message,omitempty"`
	UpdatedAt     time.Time  `bson:"updated_at"`
}

// MongoStore is presence.DurableStore on MongoDB (or FerretDB).
type MongoStore struct {
	coll    *mongo.Collection
	timeout time.Duration
}

var _ presence.DurableStore = (*MongoStore)(nil)

// NewMongoStore returns a store on db's presence collection. timeout
// bounds each call when the context has no earlier deadline (default 5s).
func NewMongoStore(db *mongo.Database, timeout time.Duration) *MongoStore {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &MongoStore{coll: db.Collection(Collection), timeout: timeout}
}

func (s *MongoStore) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// SaveLastSeen implements presence.DurableStore with unordered bulk
// upserts of up to saveBatch users per round trip. $max keeps the latest
// time when writes arrive out of order. On real MongoDB that holds for
// concurrent writes too; FerretDB v1 applies update operators by reading
// the document and writing it back without isolation, so two offline
// transitions of one user written at the same instant may leave the older
// time. Redis holds the exact value meanwhile, and the copy here only
// matters once Redis lost it, so that window is accepted.
func (s *MongoStore) SaveLastSeen(ctx context.Context, seen []presence.Durable) error {
	now := time.Now().UTC()
	for i := 0; i < len(seen); i += saveBatch {
		batch := seen[i:min(i+saveBatch, len(seen))]
		models := make([]mongo.WriteModel, 0, len(batch))
		for _, d := range batch {
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d.UserID}}).
				SetUpdate(bson.D{
					{Key: "$max", Value: bson.D{{Key: "last_seen", Value: d.LastSeen.UTC().Truncate(time.Millisecond)}}},
					{Key: "$set", Value: bson.D{{Key: "updated_at", Value: now}}},
				}).
				SetUpsert(true))
		}
		if err := s.bulk(ctx, models); err != nil {
			return err
		}
	}
	return nil
}

// bulk runs models unordered. Racing upserts of a new document can fail
// on the unique _id; the document then exists, and running the batch
// again (every write is idempotent) updates it.
func (s *MongoStore) bulk(ctx context.Context, models []mongo.WriteModel) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	opts := options.BulkWrite().SetOrdered(false)
	_, err := s.coll.BulkWrite(ctx, models, opts)
	if mongoutil.IsDuplicateKey(err) {
		_, err = s.coll.BulkWrite(ctx, models, opts)
	}
	if err != nil {
		return fmt.Errorf("%w: save presence of %d users: %w", ErrMongo, len(models), err)
	}
	return nil
}

// SaveMessage implements presence.DurableStore.
func (s *MongoStore) SaveMessage(ctx context.Context, userID, message string, now time.Time) error {
	return s.upsert(ctx, userID, bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status_message", Value: message},
			{Key: "updated_at", Value: now.UTC()},
		}},
	})
}

// upsert applies update to userID's document, creating it if needed. Two
// upserts of a new document can race and one fail on the unique _id; the
// document then exists and the retry updates it.
func (s *MongoStore) upsert(ctx context.Context, userID string, update bson.D) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	opts := options.UpdateOne().SetUpsert(true)
	_, err := s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: userID}}, update, opts)
	if mongoutil.IsDuplicateKey(err) {
		_, err = s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: userID}}, update, opts)
	}
	if err != nil {
		return fmt.Errorf("%w: upsert presence of %s: %w", ErrMongo, userID, err)
	}
	return nil
}

// Load implements presence.DurableStore.
func (s *MongoStore) Load(ctx context.Context, userIDs []string) (map[string]presence.Durable, error) {
	out := make(map[string]presence.Durable, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	cur, err := s.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: userIDs}}}})
	if err != nil {
		return nil, fmt.Errorf("%w: find presence: %w", ErrMongo, err)
	}
	var docs []presenceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("%w: read presence: %w", ErrMongo, err)
	}
	for _, d := range docs {
		out[d.UserID] = fromDocPresence(d)
	}
	return out, nil
}

// fromDocPresence converts a stored document.
func fromDocPresence(d presenceDoc) presence.Durable {
	out := presence.Durable{UserID: d.UserID}
	if d.LastSeen != nil {
		out.LastSeen = *d.LastSeen
	}
	if d.StatusMessage != nil {
		out.Message, out.HasMessage = *d.StatusMessage, true
	}
	return out
}
