package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/userservice/internal/users"
)

type friendshipDoc struct {
	ID        string              `bson:"_id"`
	Users     []string            `bson:"users"`
	Requester string              `bson:"requester"`
	Status    string              `bson:"status"`
	Since     time.Time           `bson:"since"`
	CreatedAt time.Time           `bson:"created_at"`
	Version   int64               `bson:"version"`
	OutboxIDs []string            `bson:"outbox_ids,omitempty"`
	Outbox    map[string]eventDoc `bson:"outbox,omitempty"`
}

func docOfFriendship(f users.Friendship, ev users.Event) friendshipDoc {
	return friendshipDoc{
		ID: f.ID, Users: []string{f.Users[0], f.Users[1]}, Requester: f.Requester, Status: string(f.Status),
		Since: f.Since, CreatedAt: f.CreatedAt, Version: f.Version,
		OutboxIDs: []string{ev.ID}, Outbox: map[string]eventDoc{ev.ID: docOfEvent(ev)},
	}
}

func fromDocFriendship(d friendshipDoc) (users.Friendship, error) {
	if len(d.Users) != 2 {
		return users.Friendship{}, fmt.Errorf("store: friendship %s has %d users", d.ID, len(d.Users))
	}
	return users.Friendship{
		ID: d.ID, Users: [2]string{d.Users[0], d.Users[1]}, Requester: d.Requester,
		Status: users.FriendshipStatus(d.Status), Since: d.Since.UTC(), CreatedAt: d.CreatedAt.UTC(), Version: d.Version,
	}, nil
}

var friendshipProjection = bson.D{{Key: "outbox", Value: 0}, {Key: "outbox_ids", Value: 0}}

// CreateFriendship inserts a new pair document with its pending event.
func (s *Store) CreateFriendship(ctx context.Context, f users.Friendship, ev users.Event) error {
	if _, err := s.friends.InsertOne(ctx, docOfFriendship(f, ev)); err != nil {
		if mongoutil.IsDuplicateKey(err) {
			return users.ErrAlreadyExists
		}
		return fmt.Errorf("store: insert friendship: %w", err)
	}
	return nil
}

// Friendship returns the pair's document.
func (s *Store) Friendship(ctx context.Context, id string) (users.Friendship, error) {
	var d friendshipDoc
	err := s.friends.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(friendshipProjection)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return users.Friendship{}, users.ErrNotFound
	}
	if err != nil {
		return users.Friendship{}, fmt.Errorf("store: find friendship: %w", err)
	}
	return fromDocFriendship(d)
}

// friendshipChangeDoc claims one version of a pair: its _id is
// "<pair id>#<version>", so exactly one writer gets each version. It holds
// the complete new state, so anyone can apply it (roll it forward) if its
// writer stopped before doing so. The collection doubles as the pair's
// history.
type friendshipChangeDoc struct {
	ID           string    `bson:"_id"`
	FriendshipID string    `bson:"friendship_id"`
	Requester    string    `bson:"requester"`
	Status       string    `bson:"status"`
	Since        time.Time `bson:"since"`
	Version      int64     `bson:"version"`
	EventID      string    `bson:"event_id"`
	Event        eventDoc  `bson:"event"`
}

func docOfFriendshipChange(f users.Friendship, ev users.Event) friendshipChangeDoc {
	return friendshipChangeDoc{
		ID: fmt.Sprintf("%s#%d", f.ID, f.Version), FriendshipID: f.ID, Requester: f.Requester, Status: string(f.Status),
		Since: f.Since, Version: f.Version, EventID: ev.ID, Event: docOfEvent(ev),
	}
}

// UpdateFriendship moves the pair from expectVersion to f (f.Version must
// be expectVersion+1) and adds ev to its outbox. A conditional update alone
// would do on MongoDB, but FerretDB's is not atomic, so the version is
// claimed with an insert first; the loser of a race gets false.
func (s *Store) UpdateFriendship(ctx context.Context, f users.Friendship, expectVersion int64, ev users.Event) (bool, error) {
	if f.Version != expectVersion+1 {
		return false, fmt.Errorf("store: friendship %s: version %d does not follow %d", f.ID, f.Version, expectVersion)
	}
	ch := docOfFriendshipChange(f, ev)
	if _, err := s.changes.InsertOne(ctx, ch); err != nil {
		if !mongoutil.IsDuplicateKey(err) {
			return false, fmt.Errorf("store: claim friendship change: %w", err)
		}
		// Another writer has this version. Its change may not be applied
		// yet (or ever, if it stopped): apply it, so the caller's retry
		// starts from it.
		var won friendshipChangeDoc
		if err := s.changes.FindOne(ctx, bson.D{{Key: "_id", Value: ch.ID}}).Decode(&won); err != nil {
			return false, fmt.Errorf("store: read friendship change: %w", err)
		}
		if err := s.applyChange(ctx, won); err != nil {
			return false, err
		}
		return false, nil
	}
	if err := s.applyChange(ctx, ch); err != nil {
		return false, err
	}
	return true, nil
}

// applyChange writes a claimed change to the pair's document. It only
// moves the document forward, and applying a change twice is harmless (the
// outbox entry is keyed by the event id; MarkPublished pulls every copy of
// the id).
func (s *Store) applyChange(ctx context.Context, ch friendshipChangeDoc) error {
	_, err := s.friends.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: ch.FriendshipID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: ch.Version}}}},
		bson.D{
			{Key: "$set", Value: bson.D{
				{Key: "requester", Value: ch.Requester},
				{Key: "status", Value: ch.Status},
				{Key: "since", Value: ch.Since},
				{Key: "version", Value: ch.Version},
				{Key: "outbox." + ch.EventID, Value: ch.Event},
			}},
			{Key: "$push", Value: bson.D{{Key: "outbox_ids", Value: ch.EventID}}},
		})
	if err != nil {
		return fmt.Errorf("store: apply friendship change %s: %w", ch.ID, err)
	}
	return nil
}

// ListFriendships returns userID's friendships in state ("" = any that is
// not removed), by _id, after afterID.
func (s *Store) ListFriendships(ctx context.Context, userID string, state users.FriendState, afterID string, limit int) ([]users.Friendship, error) {
	filter := bson.D{{Key: "users", Value: userID}}
	switch state {
	case users.StateFriend:
		filter = append(filter, bson.E{Key: "status", Value: string(users.StatusAccepted)})
	case users.StateOutgoing:
		filter = append(filter, bson.E{Key: "status", Value: string(users.StatusPending)}, bson.E{Key: "requester", Value: userID})
	case users.StateIncoming:
		filter = append(filter, bson.E{Key: "status", Value: string(users.StatusPending)},
			bson.E{Key: "requester", Value: bson.D{{Key: "$ne", Value: userID}}})
	default:
		filter = append(filter, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{
			string(users.StatusPending), string(users.StatusAccepted)}}}})
	}
	if afterID != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: afterID}}})
	}
	cur, err := s.friends.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(limit)).
		SetProjection(friendshipProjection))
	if err != nil {
		return nil, fmt.Errorf("store: list friendships: %w", err)
	}
	var docs []friendshipDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: read friendships: %w", err)
	}
	out := make([]users.Friendship, 0, len(docs))
	for _, d := range docs {
		f, err := fromDocFriendship(d)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}
