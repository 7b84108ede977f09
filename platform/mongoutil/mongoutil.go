// Package mongoutil holds the small facts every MongoDB store in Parley
// needs about the server it talks to: whether it is FerretDB (whose v1
// query planner pushes down only a filter on _id alone, so stores choose
// their filters by it) and whether an error is a duplicate key, which
// MongoDB and FerretDB's backends report in different shapes.
package mongoutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// IsFerretDB tells FerretDB from MongoDB: FerretDB's buildInfo carries a
// "ferretdbVersion" field.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("buildInfo: %w", err)
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}

// duplicateKeyCodes are MongoDB's codes for a unique-index violation
// (11000, the legacy 11001, and 12582 for a duplicate on an update).
var duplicateKeyCodes = []int{11000, 11001, 12582}

// duplicateKeyMessages are what a server error says when FerretDB v1
// reports a unique violation as an internal error carrying its backend's
// message (it does on updates): MongoDB's E11000, SQLite's "UNIQUE
// constraint failed", PostgreSQL's "duplicate key value violates unique
// constraint".
var duplicateKeyMessages = []string{"e11000", "duplicate key", "unique constraint"}

// IsDuplicateKey reports a write rejected by _id or a unique index. Only
// errors from the server count: a client-side error that happens to say
// "duplicate key" is not one.
func IsDuplicateKey(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, code := range duplicateKeyCodes {
		if se.HasErrorCode(code) {
			return true
		}
	}
	msg := strings.ToLower(se.Error())
	for _, s := range duplicateKeyMessages {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
