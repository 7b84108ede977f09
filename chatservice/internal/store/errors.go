package store

import (
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// isDuplicateKey reports a write rejected by _id or a unique index. MongoDB
// (and FerretDB on insert) answer with code 11000; FerretDB v1 reports a
// unique violation on update as an internal error that only carries the
// backend's message, so those are matched too: SQLite's "UNIQUE constraint
// failed" and PostgreSQL's "duplicate key value violates unique constraint".
func isDuplicateKey(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "E11000") ||
		strings.Contains(msg, "UNIQUE constraint failed") ||
		strings.Contains(msg, "duplicate key value violates unique constraint")
}

// notFound turns the driver's "no documents" into the domain's ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.ErrNotFound
	}
	return err
}
