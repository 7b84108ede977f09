package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/userservice/internal/users"
)

// eventDoc is a pending event inside the document whose change it
// announces. Data is kept as JSON text so it round-trips byte for byte.
type eventDoc struct {
	Type       string    `bson:"type"`
	Subject    string    `bson:"subject"`
	Data       string    `bson:"data"`
	OccurredAt time.Time `bson:"occurred_at"`
}

func docOfEvent(ev users.Event) eventDoc {
	return eventDoc{Type: ev.Type, Subject: ev.Subject, Data: string(ev.Data), OccurredAt: ev.OccurredAt}
}

func fromDocEvent(id string, entity users.Entity, entityID string, d eventDoc) users.Event {
	return users.Event{
		ID: id, Type: d.Type, Subject: d.Subject, Data: json.RawMessage(d.Data),
		OccurredAt: d.OccurredAt.UTC(), Entity: entity, EntityID: entityID,
	}
}

// outboxDoc reads just the outbox of any document.
type outboxDoc struct {
	ID     string              `bson:"_id"`
	Outbox map[string]eventDoc `bson:"outbox"`
}

// pendingFilter matches documents with at least one pending event.
var pendingFilter = bson.D{{Key: "outbox_ids.0", Value: bson.D{{Key: "$exists", Value: true}}}}

func (s *Store) outboxCollection(e users.Entity) (*mongo.Collection, error) {
	switch e {
	case users.EntityUser:
		return s.users, nil
	case users.EntityFriendship:
		return s.friends, nil
	}
	return nil, fmt.Errorf("store: no outbox for entity %q", e)
}

// PendingEvents returns up to limit pending events that occurred before
// the given time, oldest first.
func (s *Store) PendingEvents(ctx context.Context, before time.Time, limit int) ([]users.Event, error) {
	var out []users.Event
	for _, e := range []users.Entity{users.EntityUser, users.EntityFriendship} {
		coll, err := s.outboxCollection(e)
		if err != nil {
			return nil, err
		}
		cur, err := coll.Find(ctx, pendingFilter, options.Find().
			SetProjection(bson.D{{Key: "outbox", Value: 1}}).
			SetLimit(int64(limit)))
		if err != nil {
			return nil, fmt.Errorf("store: pending events in %s: %w", coll.Name(), err)
		}
		var docs []outboxDoc
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("store: read pending events in %s: %w", coll.Name(), err)
		}
		for _, d := range docs {
			for id, ev := range d.Outbox {
				if ev.OccurredAt.Before(before) {
					out = append(out, fromDocEvent(id, e, d.ID, ev))
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OccurredAt.Before(out[j].OccurredAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// MarkPublished removes ev from its document's outbox.
func (s *Store) MarkPublished(ctx context.Context, ev users.Event) error {
	coll, err := s.outboxCollection(ev.Entity)
	if err != nil {
		return err
	}
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: ev.EntityID}}, bson.D{
		{Key: "$pull", Value: bson.D{{Key: "outbox_ids", Value: ev.ID}}},
		{Key: "$unset", Value: bson.D{{Key: "outbox." + ev.ID, Value: ""}}},
	})
	if err != nil {
		return fmt.Errorf("store: clear event %s: %w", ev.ID, err)
	}
	return nil
}
