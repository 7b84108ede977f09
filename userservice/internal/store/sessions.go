package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/userservice/internal/users"
)

type refreshTokenDoc struct {
	// ID is the hex SHA-256 of the token; the token itself is never stored.
	ID        string     `bson:"_id"`
	FamilyID  string     `bson:"family_id"`
	UserID    string     `bson:"user_id"`
	CreatedAt time.Time  `bson:"created_at"`
	ExpiresAt time.Time  `bson:"expires_at"`
	UsedAt    *time.Time `bson:"used_at,omitempty"`
	RevokedAt *time.Time `bson:"revoked_at,omitempty"`
}

func docOfRefreshToken(t users.RefreshToken) refreshTokenDoc {
	return refreshTokenDoc{
		ID: t.Hash, FamilyID: t.FamilyID, UserID: t.UserID, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		UsedAt: timePtr(t.UsedAt), RevokedAt: timePtr(t.RevokedAt),
	}
}

func fromDocRefreshToken(d refreshTokenDoc) users.RefreshToken {
	return users.RefreshToken{
		Hash: d.ID, FamilyID: d.FamilyID, UserID: d.UserID, CreatedAt: d.CreatedAt.UTC(), ExpiresAt: d.ExpiresAt.UTC(),
		UsedAt: timeVal(d.UsedAt), RevokedAt: timeVal(d.RevokedAt),
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func timeVal(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// CreateRefreshToken stores a new refresh token.
func (s *Store) CreateRefreshToken(ctx context.Context, t users.RefreshToken) error {
	if _, err := s.tokens.InsertOne(ctx, docOfRefreshToken(t)); err != nil {
		if mongoutil.IsDuplicateKey(err) {
			return users.ErrAlreadyExists // 256 random bits: a broken RNG
		}
		return fmt.Errorf("store: insert refresh token: %w", err)
	}
	return nil
}

// RefreshToken returns the token stored under hash.
func (s *Store) RefreshToken(ctx context.Context, hash string) (users.RefreshToken, error) {
	var d refreshTokenDoc
	err := s.tokens.FindOne(ctx, bson.D{{Key: "_id", Value: hash}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return users.RefreshToken{}, users.ErrNotFound
	}
	if err != nil {
		return users.RefreshToken{}, fmt.Errorf("store: find refresh token: %w", err)
	}
	return fromDocRefreshToken(d), nil
}

// claimDoc is an insert-once record: its unique _id is what makes a
// check-and-set atomic on FerretDB, whose conditional updates are not (it
// reads the matching documents, then writes them back by _id, with no
// guard in between). ExpiresAt says when it can be purged.
type claimDoc struct {
	ID        string    `bson:"_id"`
	At        time.Time `bson:"at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// MarkRefreshTokenUsed claims the token's single use by inserting a record
// keyed by its hash: of concurrent refreshes exactly one insert succeeds.
// It then stamps used_at on the token, so later readers see the use
// without another query.
func (s *Store) MarkRefreshTokenUsed(ctx context.Context, t users.RefreshToken, now time.Time) (bool, error) {
	if _, err := s.tokenUses.InsertOne(ctx, claimDoc{ID: t.Hash, At: now, ExpiresAt: t.ExpiresAt}); err != nil {
		if mongoutil.IsDuplicateKey(err) {
			return false, nil
		}
		return false, fmt.Errorf("store: claim refresh token: %w", err)
	}
	if _, err := s.tokens.UpdateOne(ctx, bson.D{{Key: "_id", Value: t.Hash}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: now}}}}); err != nil {
		return false, fmt.Errorf("store: mark refresh token used: %w", err)
	}
	return true, nil
}

// RevokeFamily records the revocation first (so a refresh that stores a
// new token of the family afterwards finds it, see SessionRevoked), then
// revokes every token of the family.
func (s *Store) RevokeFamily(ctx context.Context, familyID string, now, keepUntil time.Time) error {
	if _, err := s.revocations.InsertOne(ctx, claimDoc{ID: familyID, At: now, ExpiresAt: keepUntil}); err != nil && !mongoutil.IsDuplicateKey(err) {
		return fmt.Errorf("store: record revocation: %w", err)
	}
	_, err := s.tokens.UpdateMany(ctx,
		bson.D{{Key: "family_id", Value: familyID}, {Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: now}}}})
	if err != nil {
		return fmt.Errorf("store: revoke session: %w", err)
	}
	return nil
}

// SessionRevoked reports whether the family's revocation is recorded.
func (s *Store) SessionRevoked(ctx context.Context, familyID string) (bool, error) {
	err := s.revocations.FindOne(ctx, bson.D{{Key: "_id", Value: familyID}}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	}
	return false, fmt.Errorf("store: find revocation: %w", err)
}

// DeleteExpiredRefreshTokens removes tokens that expired before the given
// time, and the use and revocation records that outlived their purpose
// (there are no TTL indexes on FerretDB, so a periodic job does it).
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int64, error) {
	expired := bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: before}}}}
	res, err := s.tokens.DeleteMany(ctx, expired)
	if err != nil {
		return 0, fmt.Errorf("store: delete expired refresh tokens: %w", err)
	}
	for _, c := range []*mongo.Collection{s.tokenUses, s.revocations} {
		if _, err := c.DeleteMany(ctx, expired); err != nil {
			return res.DeletedCount, fmt.Errorf("store: delete expired %s: %w", c.Name(), err)
		}
	}
	return res.DeletedCount, nil
}
