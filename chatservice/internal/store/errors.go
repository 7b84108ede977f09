package store

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// notFound turns the driver's "no documents" into the domain's ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.ErrNotFound
	}
	return err
}
