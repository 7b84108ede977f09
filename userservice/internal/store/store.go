// Package store is the user service's MongoDB adapter: it implements the
// stores and the outbox that package users declares.
//
// It runs on FerretDB v1 as well as on MongoDB, so it uses no transactions,
// no change streams, no text or TTL indexes. Uniqueness (usernames, emails,
// friend pairs, refresh-token hashes) is enforced by unique indexes, races
// are settled by conditional updates, and expiry is checked in code.
//
// Collections and their shard keys on a sharded MongoDB:
//
//   - users: one document per account. The unique indexes on username and
//     email can only be enforced on a sharded collection if they start with
//     the shard key, so users is best left unsharded (it is small: about a
//     kilobyte per account). If it must be sharded, shard on {username: 1}
//     and move the email uniqueness into its own collection keyed by email.
//   - refresh_tokens: {_id: SHA-256 of the token}; shard on {_id: "hashed"}.
//     Revoking a family is then a scatter-gather update, which is rare.
//   - friendships: one document per unordered pair, {_id: "<a>:<b>"}; shard
//     on {_id: "hashed"}. Listing a user's friends is a scatter-gather query
//     on the multikey index {users: 1, _id: 1}.
//   - refresh_token_uses, revoked_sessions, friendship_changes: insert-once
//     claims (see below); shard on {_id: "hashed"}.
//
// FerretDB v1 runs a conditional update as "find the matching documents,
// then write them back by _id" with nothing in between to stop a
// concurrent writer, so two "update if unused" calls can both succeed. The
// only atomic check-and-set it has is a unique index on insert. So every
// race this service must settle is settled by inserting a claim: the
// single use of a refresh token (refresh_token_uses), the revocation of a
// session (revoked_sessions, checked after a refresh stores its new token)
// and each version of a friendship (friendship_changes, which also keeps
// the pair's history).
//
// Every document that announces an event carries it until it is published
// (the outbox): outbox_ids lists the pending event ids, outbox maps each id
// to the event. FerretDB's $pull only removes exact values, hence the id
// list next to the map.
package store

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/userservice/internal/users"
)

// Collection names.
const (
	UsersCollection             = "users"
	RefreshTokensCollection     = "refresh_tokens"
	RefreshTokenUsesCollection  = "refresh_token_uses"
	RevokedSessionsCollection   = "revoked_sessions"
	FriendshipsCollection       = "friendships"
	FriendshipChangesCollection = "friendship_changes"
)

// Store implements users.UserStore, users.SessionStore, users.FriendStore
// and users.Outbox on one MongoDB database.
type Store struct {
	users, tokens, tokenUses, revocations, friends, changes *mongo.Collection

	// idFiltersOnly is set on FerretDB, whose v1 planner pushes down only
	// a filter on _id alone (EnsureIndexes finds out).
	idFiltersOnly atomic.Bool
}

var (
	_ users.UserStore    = (*Store)(nil)
	_ users.SessionStore = (*Store)(nil)
	_ users.FriendStore  = (*Store)(nil)
	_ users.Outbox       = (*Store)(nil)
)

// New returns a store on db. Call EnsureIndexes once at start-up.
func New(db *mongo.Database) *Store {
	return &Store{
		users:       db.Collection(UsersCollection),
		tokens:      db.Collection(RefreshTokensCollection),
		tokenUses:   db.Collection(RefreshTokenUsesCollection),
		revocations: db.Collection(RevokedSessionsCollection),
		friends:     db.Collection(FriendshipsCollection),
		changes:     db.Collection(FriendshipChangesCollection),
	}
}

// EnsureIndexes creates the indexes; it is idempotent.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	ferret, err := mongoutil.IsFerretDB(ctx, s.users.Database())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.idFiltersOnly.Store(ferret)
	specs := []struct {
		coll   *mongo.Collection
		models []mongo.IndexModel
	}{
		{s.users, []mongo.IndexModel{
			{Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetName("username_unique").SetUnique(true)},
			{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetName("email_unique").SetUnique(true)},
			// Search: prefix ranges on the display-name key; the username
			// side uses username_unique.
			{Keys: bson.D{{Key: "display_name_lc", Value: 1}}, Options: options.Index().SetName("display_name_lc")},
			{Keys: bson.D{{Key: "outbox_ids", Value: 1}}, Options: options.Index().SetName("outbox_ids").SetSparse(true)},
		}},
		{s.tokens, []mongo.IndexModel{
			{Keys: bson.D{{Key: "family_id", Value: 1}}, Options: options.Index().SetName("family_id")},
			{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetName("expires_at")},
		}},
		{s.tokenUses, []mongo.IndexModel{
			{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetName("expires_at")},
		}},
		{s.revocations, []mongo.IndexModel{
			{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetName("expires_at")},
		}},
		{s.friends, []mongo.IndexModel{
			{Keys: bson.D{{Key: "users", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("users_id")},
			{Keys: bson.D{{Key: "outbox_ids", Value: 1}}, Options: options.Index().SetName("outbox_ids").SetSparse(true)},
		}},
		{s.changes, []mongo.IndexModel{
			{Keys: bson.D{{Key: "friendship_id", Value: 1}}, Options: options.Index().SetName("friendship_id")},
		}},
	}
	for _, sp := range specs {
		// One at a time: FerretDB v1.24 panics (and drops the connection)
		// on a createIndexes listing several indexes that already exist,
		// which is every start-up after the first.
		for _, m := range sp.models {
			if _, err := sp.coll.Indexes().CreateOne(ctx, m); err != nil {
				return fmt.Errorf("store: index of %s: %w", sp.coll.Name(), err)
			}
		}
	}
	return nil
}

// rangePrefix returns the bounds of a prefix query on a string field:
// [p, p+U+10FFFF) holds exactly the strings starting with p under MongoDB's
// binary string order. Unlike a regex it needs no escaping and uses the
// index on every backend.
func rangePrefix(p string) bson.D {
	return bson.D{{Key: "$gte", Value: p}, {Key: "$lt", Value: p + "\U0010FFFF"}}
}
