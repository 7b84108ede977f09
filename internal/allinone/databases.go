package allinone

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// databases names the MongoDB database of each service.
//
// Each service owns a database of its own, as it would in a Kubernetes
// deployment. On the embedded FerretDB that matters for speed too: every
// database is its own SQLite file, and SQLite lets one writer at a time
// into a file, so with one shared database a message send queued behind
// the audit log's inserts and the user service's token writes.
type databases struct {
	users, chat, presence, notifications, audit string
}

// sharedDatabase is the one database every service used before they got
// their own; a data directory (or server) that has it keeps that layout,
// so upgrading loses nothing.
const sharedDatabase = "parley"

// perServiceDatabases is the layout of a new installation.
var perServiceDatabases = databases{
	users:         "parley_users",
	chat:          "parley_chat",
	presence:      "parley_presence",
	notifications: "parley_notifications",
	audit:         "parley_audit",
}

// chooseDatabases picks the layout: the shared database if it exists,
// one database per service otherwise.
func chooseDatabases(ctx context.Context, mc *mongo.Client) (databases, error) {
	names, err := mc.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return databases{}, fmt.Errorf("list MongoDB databases: %w", err)
	}
	if slices.Contains(names, sharedDatabase) {
		s := sharedDatabase
		return databases{users: s, chat: s, presence: s, notifications: s, audit: s}, nil
	}
	return perServiceDatabases, nil
}
