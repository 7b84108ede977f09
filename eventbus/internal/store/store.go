// Package store is the MongoDB adapter of the audit log: collection
// "events", one document per event with the event id as _id, written with
// inserts only (append-only; a duplicate key means "already recorded").
//
// It works on real MongoDB and on FerretDB v1: no transactions, change
// streams, text or TTL indexes. FerretDB v1 does not use secondary indexes,
// so the indexes below serve real MongoDB; on FerretDB searches scan.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/eventbus/internal/audit"
	"github.com/parleyhq/parley/platform/mongoutil"
)

// Collection is the audit log's collection name.
const Collection = "events"

// opTimeout bounds each database call made without a deadline.
const opTimeout = 10 * time.Second

// EventStore implements audit.Storer on a MongoDB collection.
type EventStore struct {
	coll *mongo.Collection
	now  func() time.Time
}

var _ audit.Storer = (*EventStore)(nil)

// New returns the store on db's "events" collection. Call EnsureIndexes
// once at startup.
func New(db *mongo.Database) *EventStore {
	return &EventStore{coll: db.Collection(Collection), now: time.Now}
}

// eventDoc is the stored form of an event.
//
// ts is the timestamp as a BSON date (millisecond precision), used for
// sorting and time-range searches; timestamp keeps the exact RFC 3339 value
// for reading back. data is the payload's JSON text, stored verbatim: JSON
// numbers and keys such as "$oid" would not survive a conversion to BSON
// unchanged.
type eventDoc struct {
	ID         string    `bson:"_id"`
	Type       string    `bson:"type"`
	Source     string    `bson:"source"`
	Subject    string    `bson:"subject"`
	Data       string    `bson:"data"`
	TS         time.Time `bson:"ts"`
	Timestamp  string    `bson:"timestamp"`
	Version    int       `bson:"version"`
	RecordedAt time.Time `bson:"recorded_at"`
}

func docOf(ev eventbus.Event, recordedAt time.Time) eventDoc {
	data := string(ev.Data)
	if data == "" {
		data = "null"
	}
	return eventDoc{
		ID:         ev.ID,
		Type:       ev.Type,
		Source:     ev.Source,
		Subject:    ev.Subject,
		Data:       data,
		TS:         ev.Timestamp.UTC().Truncate(time.Millisecond),
		Timestamp:  ev.Timestamp.UTC().Format(time.RFC3339Nano),
		Version:    ev.Version,
		RecordedAt: recordedAt.UTC(),
	}
}

func fromDoc(d eventDoc) eventbus.Event {
	ts, err := time.Parse(time.RFC3339Nano, d.Timestamp)
	if err != nil {
		ts = d.TS // written by hand or by an older version: the date will do
	}
	return eventbus.Event{
		ID:        d.ID,
		Type:      d.Type,
		Source:    d.Source,
		Subject:   d.Subject,
		Data:      json.RawMessage(d.Data),
		Timestamp: ts.UTC(),
		Version:   d.Version,
	}
}

// EnsureIndexes creates the indexes searches need on real MongoDB. It is
// idempotent. It creates only the indexes that do not exist yet, by name:
// FerretDB v1.24 crashes the connection when createIndexes is given a
// compound index while others of different length already exist.
//
// On FerretDB it creates none: FerretDB v1 does not use secondary indexes
// for queries, but its SQLite and PostgreSQL backends still maintain them
// (an expression index per key), which made recording a burst of events
// several times slower for no benefit.
func (s *EventStore) EnsureIndexes(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ferret, err := mongoutil.IsFerretDB(ctx, s.coll.Database())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if ferret {
		return nil
	}
	newest := bson.D{{Key: "ts", Value: -1}, {Key: "_id", Value: -1}}
	by := func(field string) bson.D { return append(bson.D{{Key: field, Value: 1}}, newest...) }
	want := []struct {
		name string
		keys bson.D
	}{
		{"ts_id", newest},
		{"type_ts_id", by("type")},
		{"subject_ts_id", by("subject")},
		{"source_ts_id", by("source")},
	}
	specs, err := s.coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("store: list indexes on %s: %w", Collection, err)
	}
	have := map[string]bool{}
	for _, sp := range specs {
		have[sp.Name] = true
	}
	for _, ix := range want {
		if have[ix.name] {
			continue
		}
		m := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name)}
		if _, err := s.coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("store: create index %s on %s: %w", ix.name, Collection, err)
		}
	}
	return nil
}

// Insert records events with one unordered InsertMany: every event is
// attempted even when some are duplicates, and duplicates count as
// recorded.
func (s *EventStore) Insert(ctx context.Context, evs []eventbus.Event) []error {
	if len(evs) == 0 {
		return nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	now := s.now()
	docs := make([]any, len(evs))
	for i, ev := range evs {
		docs[i] = docOf(ev, now)
	}
	_, err := s.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil
	}
	errs := make([]error, len(evs))
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		if mongoutil.IsDuplicateKey(err) && len(evs) == 1 {
			return nil
		}
		for i := range errs {
			errs[i] = fmt.Errorf("store: insert events: %w", err)
		}
		return errs
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(evs) {
			continue
		}
		if mongoutil.IsDuplicateKey(we) {
			continue
		}
		errs[we.Index] = fmt.Errorf("store: insert event %s: %w", evs[we.Index].ID, we)
	}
	return errs
}

// Get returns one event.
func (s *EventStore) Get(ctx context.Context, id string) (eventbus.Event, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var d eventDoc
	err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return eventbus.Event{}, fmt.Errorf("%w: event %s", audit.ErrNotFound, id)
	}
	if err != nil {
		return eventbus.Event{}, fmt.Errorf("store: get event %s: %w", id, err)
	}
	return fromDoc(d), nil
}

// List returns events matching f, newest first, after the cursor.
func (s *EventStore) List(ctx context.Context, f audit.Filter, after *audit.Cursor, limit int) ([]eventbus.Event, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	filter := listFilter(f, after)
	opts := options.Find().
		SetSort(bson.D{{Key: "ts", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit))
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: list events: %w", err)
	}
	evs := make([]eventbus.Event, len(docs))
	for i, d := range docs {
		evs[i] = fromDoc(d)
	}
	return evs, nil
}

// listFilter builds the query. The cursor compares on the stored
// (millisecond) ts and the id, the same keys the sort uses, so pages
// neither skip nor repeat events that share a millisecond.
func listFilter(f audit.Filter, after *audit.Cursor) bson.D {
	var and bson.A
	for _, eq := range []struct{ field, value string }{{"type", f.Type}, {"source", f.Source}, {"subject", f.Subject}} {
		if eq.value != "" {
			and = append(and, bson.D{{Key: eq.field, Value: eq.value}})
		}
	}
	if !f.From.IsZero() {
		and = append(and, bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: f.From.UTC().Truncate(time.Millisecond)}}}})
	}
	if !f.To.IsZero() {
		and = append(and, bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: f.To.UTC().Truncate(time.Millisecond)}}}})
	}
	if after != nil {
		ts := after.Timestamp.UTC().Truncate(time.Millisecond)
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "ts", Value: bson.D{{Key: "$lt", Value: ts}}}},
			bson.D{{Key: "ts", Value: ts}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}}})
	}
	if len(and) == 0 {
		return bson.D{}
	}
	return bson.D{{Key: "$and", Value: and}}
}

// Count returns the number of recorded events (for tests and tools).
func (s *EventStore) Count(ctx context.Context) (int64, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	n, err := s.coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("store: count events: %w", err)
	}
	return n, nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}
