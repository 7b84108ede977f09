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

type userDoc struct {
	ID          string `bson:"_id"`
	Username    string `bson:"username"`
	Email       string `bson:"email"`
	DisplayName string `bson:"display_name"`
	// DisplayNameKey is users.SearchKey(DisplayName), for case-insensitive
	// prefix search.
	DisplayNameKey string              `bson:"display_name_lc"`
	AvatarURL      string              `bson:"avatar_url"`
	StatusMessage  string              `bson:"status_message"`
	PasswordHash   string              `bson:"password_hash"`
	CreatedAt      time.Time           `bson:"created_at"`
	UpdatedAt      time.Time           `bson:"updated_at"`
	OutboxIDs      []string            `bson:"outbox_ids,omitempty"`
	Outbox         map[string]eventDoc `bson:"outbox,omitempty"`
}

func docOfUser(u users.User, ev users.Event) userDoc {
	return userDoc{
		ID: u.ID, Username: u.Username, Email: u.Email,
		DisplayName: u.DisplayName, DisplayNameKey: users.SearchKey(u.DisplayName),
		AvatarURL: u.AvatarURL, StatusMessage: u.StatusMessage, PasswordHash: u.PasswordHash,
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		OutboxIDs: []string{ev.ID}, Outbox: map[string]eventDoc{ev.ID: docOfEvent(ev)},
	}
}

func fromDocUser(d userDoc) users.User {
	return users.User{
		ID: d.ID, Username: d.Username, Email: d.Email, DisplayName: d.DisplayName,
		AvatarURL: d.AvatarURL, StatusMessage: d.StatusMessage, PasswordHash: d.PasswordHash,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
}

// userProjection leaves out the outbox, which readers of users never need.
var userProjection = bson.D{{Key: "outbox", Value: 0}, {Key: "outbox_ids", Value: 0}}

// CreateUser inserts u with its pending event. The unique indexes decide
// between concurrent registrations of one username or email.
func (s *Store) CreateUser(ctx context.Context, u users.User, ev users.Event) error {
	_, err := s.users.InsertOne(ctx, docOfUser(u, ev))
	if err == nil {
		return nil
	}
	if !mongoutil.IsDuplicateKey(err) {
		return fmt.Errorf("store: insert user: %w", err)
	}
	// FerretDB's duplicate-key message does not name the index, so ask
	// which value is taken; the winner's document is there already.
	if _, err := s.UserByUsername(ctx, u.Username); err == nil {
		return users.ErrUsernameTaken
	}
	if _, err := s.UserByEmail(ctx, u.Email); err == nil {
		return users.ErrEmailTaken
	}
	return users.ErrAlreadyExists
}

func (s *Store) findUser(ctx context.Context, filter bson.D) (users.User, error) {
	var d userDoc
	err := s.users.FindOne(ctx, filter, options.FindOne().SetProjection(userProjection)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return users.User{}, users.ErrNotFound
	}
	if err != nil {
		return users.User{}, fmt.Errorf("store: find user: %w", err)
	}
	return fromDocUser(d), nil
}

// UserByID returns the user or users.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (users.User, error) {
	return s.findUser(ctx, bson.D{{Key: "_id", Value: id}})
}

// UserByUsername returns the user with that (normalised) username.
func (s *Store) UserByUsername(ctx context.Context, username string) (users.User, error) {
	return s.findUser(ctx, bson.D{{Key: "username", Value: username}})
}

// UserByEmail returns the user with that (normalised) email address.
func (s *Store) UserByEmail(ctx context.Context, email string) (users.User, error) {
	return s.findUser(ctx, bson.D{{Key: "email", Value: email}})
}

// maxIDLookups is the most ids UsersByID looks up one by one on FerretDB.
const maxIDLookups = 32

// UsersByID returns the users among ids that exist. On FerretDB, where an
// $in reads every user, a few ids are looked up one by one by _id.
func (s *Store) UsersByID(ctx context.Context, ids []string) ([]users.User, error) {
	if !s.idFiltersOnly.Load() || len(ids) > maxIDLookups {
		return s.findUsers(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find().SetProjection(userProjection))
	}
	out := make([]users.User, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		var d userDoc
		err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(userProjection)).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
		case err != nil:
			return nil, fmt.Errorf("store: find user %s: %w", id, err)
		default:
			out = append(out, fromDocUser(d))
		}
	}
	return out, nil
}

func (s *Store) findUsers(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]users.User, error) {
	cur, err := s.users.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("store: find users: %w", err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: read users: %w", err)
	}
	out := make([]users.User, 0, len(docs))
	for _, d := range docs {
		out = append(out, fromDocUser(d))
	}
	return out, nil
}

// UpdateProfile sets the fields of upd that are not nil.
func (s *Store) UpdateProfile(ctx context.Context, id string, upd users.ProfileUpdate, now time.Time) (users.User, error) {
	set := bson.D{{Key: "updated_at", Value: now}}
	if upd.DisplayName != nil {
		set = append(set,
			bson.E{Key: "display_name", Value: *upd.DisplayName},
			bson.E{Key: "display_name_lc", Value: users.SearchKey(*upd.DisplayName)})
	}
	if upd.AvatarURL != nil {
		set = append(set, bson.E{Key: "avatar_url", Value: *upd.AvatarURL})
	}
	if upd.StatusMessage != nil {
		set = append(set, bson.E{Key: "status_message", Value: *upd.StatusMessage})
	}
	var d userDoc
	// No projection: FerretDB's findAndModify does not support one.
	err := s.users.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return users.User{}, users.ErrNotFound
	}
	if err != nil {
		return users.User{}, fmt.Errorf("store: update profile: %w", err)
	}
	return fromDocUser(d), nil
}

// SetPasswordHash replaces the user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, id, hash string, now time.Time) error {
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "password_hash", Value: hash}, {Key: "updated_at", Value: now}}}})
	if err != nil {
		return fmt.Errorf("store: set password hash: %w", err)
	}
	if res.MatchedCount == 0 {
		return users.ErrNotFound
	}
	return nil
}

// SearchUsers returns users whose username or display-name key starts with
// prefix, by username, after afterUsername.
func (s *Store) SearchUsers(ctx context.Context, prefix, afterUsername string, limit int) ([]users.User, error) {
	filter := bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "username", Value: rangePrefix(prefix)}},
		bson.D{{Key: "display_name_lc", Value: rangePrefix(prefix)}},
	}}}
	if afterUsername != "" {
		filter = append(filter, bson.E{Key: "username", Value: bson.D{{Key: "$gt", Value: afterUsername}}})
	}
	return s.findUsers(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "username", Value: 1}}).
		SetLimit(int64(limit)).
		SetProjection(userProjection))
}
