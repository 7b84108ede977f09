// Package store is the MongoDB adapter of the notification service: the
// notification history, preferences, devices and the digest queue. It
// implements notify.Store and works on FerretDB v1 as on MongoDB: no
// transactions, $group only with $sum, unique indexes for de-duplication,
// idempotent writes.
//
// Shard keys for real MongoDB: notifications {user_id: "hashed"} (history
// reads are per user; the worker's reads by _id are then scatter-gather,
// which notification volumes afford); notification_preferences,
// digest_state: {_id: "hashed"}; devices {key: "hashed"} (the unique key
// must contain the shard key); digest_items {user_id: "hashed"}.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/stripe"
)

// Collection names.
const (
	CollNotifications = "notifications"
	CollPreferences   = "notification_preferences"
	CollDevices       = "devices"
	CollDigestItems   = "digest_items"
	CollDigestState   = "digest_state"
)

// opTimeout bounds every call made without an earlier deadline.
const opTimeout = 10 * time.Second

// Store implements notify.Store on one MongoDB database.
type Store struct {
	notifications *mongo.Collection
	prefs         *mongo.Collection
	devices       *mongo.Collection
	items         *mongo.Collection
	digestState   *mongo.Collection
	// updates serialises this process's updates of one notification,
	// striped by id (stripe.Lock). MongoDB applies an update to a
	// document atomically, but FerretDB v1 reads the document, changes it
	// in Go and writes it back whole: two deliveries recorded at once for
	// different targets of one notification lost one of them, and the
	// notification stayed queued (TestConcurrentDeliveries). Replicas on
	// FerretDB can still race each other; FerretDB serves development and
	// CI, each with one notification service.
	updates [64]sync.Mutex
}

var _ notify.Store = (*Store)(nil)

// New returns a store on db. Call EnsureIndexes once at start-up.
func New(db *mongo.Database) *Store {
	return &Store{
		notifications: db.Collection(CollNotifications),
		prefs:         db.Collection(CollPreferences),
		devices:       db.Collection(CollDevices),
		items:         db.Collection(CollDigestItems),
		digestState:   db.Collection(CollDigestState),
	}
}

// EnsureIndexes creates the indexes: the unique device key (re-registering
// a token finds its device), and those real MongoDB needs for the history,
// device and digest queries (FerretDB v1 ignores secondary indexes for
// queries but accepts them).
func (s *Store) EnsureIndexes(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	specs := []struct {
		coll   *mongo.Collection
		name   string
		keys   bson.D
		unique bool
	}{
		{s.notifications, "user_history", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}, false},
		{s.devices, "key_unique", bson.D{{Key: "key", Value: 1}}, true},
		{s.devices, "user_devices", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.items, "user_items", bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}}, false},
		{s.items, "created_at", bson.D{{Key: "created_at", Value: 1}}, false},
	}
	for _, sp := range specs {
		opts := options.Index().SetName(sp.name)
		if sp.unique {
			opts.SetUnique(true)
		}
		if _, err := sp.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: sp.keys, Options: opts}); err != nil {
			return fmt.Errorf("store: create index %s.%s: %w", sp.coll.Name(), sp.name, err)
		}
	}
	return nil
}

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}

// ---- notifications ----

type kvDoc struct {
	K string `bson:"k"`
	V string `bson:"v"`
}

type deliveryDoc struct {
	Status string    `bson:"status"`
	Reason string    `bson:"reason,omitempty"`
	At     time.Time `bson:"at"`
}

// notificationDoc is a notification as stored. Data is a list of pairs
// because its keys may contain '.', which field names must not.
type notificationDoc struct {
	ID            string                 `bson:"_id"`
	UserID        string                 `bson:"user_id"`
	Channel       string                 `bson:"channel"`
	Kind          string                 `bson:"kind"`
	Title         string                 `bson:"title"`
	Body          string                 `bson:"body,omitempty"`
	Data          []kvDoc                `bson:"data,omitempty"`
	Priority      string                 `bson:"priority,omitempty"`
	ChatChannelID string                 `bson:"chat_channel_id,omitempty"`
	Status        string                 `bson:"status"`
	FailureReason string                 `bson:"failure_reason,omitempty"`
	Attempts      int                    `bson:"attempts"`
	Targets       []string               `bson:"targets"`
	Deliveries    map[string]deliveryDoc `bson:"deliveries,omitempty"`
	CreatedAt     time.Time              `bson:"created_at"`
	UpdatedAt     time.Time              `bson:"updated_at"`
}

func docOfNotification(n notify.Notification) notificationDoc {
	d := notificationDoc{
		ID: n.ID, UserID: n.UserID, Channel: string(n.Channel), Kind: string(n.Kind), Title: n.Title, Body: n.Body,
		Priority: string(n.Priority), ChatChannelID: n.ChatChannelID, Status: string(n.Status), FailureReason: n.FailureReason,
		Attempts: n.Attempts, Targets: n.Targets, CreatedAt: n.CreatedAt.UTC(), UpdatedAt: n.UpdatedAt.UTC(),
	}
	if d.Targets == nil {
		d.Targets = []string{}
	}
	for k, v := range n.Data {
		d.Data = append(d.Data, kvDoc{K: k, V: v})
	}
	if len(n.Deliveries) > 0 {
		d.Deliveries = make(map[string]deliveryDoc, len(n.Deliveries))
		for t, dl := range n.Deliveries {
			d.Deliveries[t] = docOfDelivery(dl)
		}
	}
	return d
}

func docOfDelivery(d notify.Delivery) deliveryDoc {
	return deliveryDoc{Status: string(d.Status), Reason: d.Reason, At: d.At.UTC()}
}

func fromDocNotification(d notificationDoc) notify.Notification {
	n := notify.Notification{
		ID: d.ID, UserID: d.UserID, Channel: notify.Channel(d.Channel), Kind: notify.Kind(d.Kind), Title: d.Title, Body: d.Body,
		Priority: notify.Priority(d.Priority), ChatChannelID: d.ChatChannelID, Status: notify.Status(d.Status),
		FailureReason: d.FailureReason, Attempts: d.Attempts, Targets: d.Targets,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
	if len(d.Data) > 0 {
		n.Data = make(map[string]string, len(d.Data))
		for _, kv := range d.Data {
			n.Data[kv.K] = kv.V
		}
	}
	if len(d.Deliveries) > 0 {
		n.Deliveries = make(map[string]notify.Delivery, len(d.Deliveries))
		for t, dl := range d.Deliveries {
			n.Deliveries[t] = notify.Delivery{Status: notify.Status(dl.Status), Reason: dl.Reason, At: dl.At.UTC()}
		}
	}
	return n
}

// CreateNotifications implements notify.NotificationStore with one
// unordered InsertMany: every new document is written even when some ids
// already exist (a retried event), and those are reported back.
func (s *Store) CreateNotifications(ctx context.Context, ns []notify.Notification) ([]string, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	docs := make([]any, len(ns))
	for i, n := range ns {
		docs[i] = docOfNotification(n)
	}
	_, err := s.notifications.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil {
		return nil, nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		if len(ns) == 1 && mongoutil.IsDuplicateKey(err) {
			return []string{ns[0].ID}, nil
		}
		return nil, fmt.Errorf("store: insert notifications: %w", err)
	}
	var existing []string
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(ns) || !(mongo.IsDuplicateKeyError(we) || mongoutil.IsDuplicateKey(errors.New(we.Message))) {
			return nil, fmt.Errorf("store: insert notifications: %w", err)
		}
		existing = append(existing, ns[we.Index].ID)
	}
	return existing, nil
}

// NotificationsByID implements notify.NotificationStore.
func (s *Store) NotificationsByID(ctx context.Context, ids []string) (map[string]notify.Notification, error) {
	out := make(map[string]notify.Notification, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cur, err := s.notifications.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: find notifications: %w", err)
	}
	var docs []notificationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: find notifications: %w", err)
	}
	for _, d := range docs {
		out[d.ID] = fromDocNotification(d)
	}
	return out, nil
}

// Notification implements notify.NotificationStore.
func (s *Store) Notification(ctx context.Context, id string) (notify.Notification, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var d notificationDoc
	err := s.notifications.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return notify.Notification{}, fmt.Errorf("notification %s: %w", id, notify.ErrNotFound)
	}
	if err != nil {
		return notify.Notification{}, fmt.Errorf("store: find notification: %w", err)
	}
	return fromDocNotification(d), nil
}

// RecordDelivery implements notify.NotificationStore. The filter on the
// target's entry makes it a compare-and-set: once a target is sent, nothing
// overwrites it, and of two racing deliveries one records. A failed target
// may be overwritten (a dead letter retried by an operator).
func (s *Store) RecordDelivery(ctx context.Context, id, target string, d notify.Delivery) (notify.Notification, bool, error) {
	if target == "" || strings.ContainsAny(target, ".$") {
		return notify.Notification{}, false, fmt.Errorf("%w: delivery target %q", notify.ErrInvalidArgument, target)
	}
	cctx, cancel := withTimeout(ctx)
	defer cancel()
	defer stripe.Lock(s.updates[:], id)()
	field := "deliveries." + target
	var doc notificationDoc
	err := s.notifications.FindOneAndUpdate(cctx,
		bson.D{{Key: "_id", Value: id}, {Key: field + ".status", Value: bson.D{{Key: "$ne", Value: string(notify.StatusSent)}}}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: field, Value: docOfDelivery(d)}, {Key: "updated_at", Value: d.At.UTC()}}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		n, err := s.Notification(ctx, id)
		return n, false, err
	}
	if err != nil {
		return notify.Notification{}, false, fmt.Errorf("store: record delivery: %w", err)
	}
	return fromDocNotification(doc), true, nil
}

// RecordRetry implements notify.NotificationStore.
func (s *Store) RecordRetry(ctx context.Context, id, reason string, at time.Time) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	defer stripe.Lock(s.updates[:], id)()
	_, err := s.notifications.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "failure_reason", Value: reason}, {Key: "updated_at", Value: at.UTC()}}},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
	})
	if err != nil {
		return fmt.Errorf("store: record retry: %w", err)
	}
	return nil
}

// SetStatus implements notify.NotificationStore.
func (s *Store) SetStatus(ctx context.Context, id string, st notify.Status, reason string, at time.Time) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	defer stripe.Lock(s.updates[:], id)()
	_, err := s.notifications.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(notify.StatusSent)}}}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(st)}, {Key: "failure_reason", Value: reason}, {Key: "updated_at", Value: at.UTC()},
		}}})
	if err != nil {
		return fmt.Errorf("store: set status: %w", err)
	}
	return nil
}

// ListNotifications implements notify.NotificationStore.
func (s *Store) ListNotifications(ctx context.Context, userID string, after *notify.Cursor, limit int) ([]notify.Notification, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	filter := bson.D{{Key: "user_id", Value: userID}}
	if after != nil {
		t := after.CreatedAt.UTC()
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: t}}}},
			bson.D{{Key: "created_at", Value: t}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}})
	}
	cur, err := s.notifications.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: list notifications: %w", err)
	}
	var docs []notificationDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: list notifications: %w", err)
	}
	out := make([]notify.Notification, len(docs))
	for i, d := range docs {
		out[i] = fromDocNotification(d)
	}
	return out, nil
}
