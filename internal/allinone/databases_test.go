package allinone

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/embedded"
)

// A new installation gets a database per service; one that has the shared
// database of earlier versions keeps it for every service. Each case gets
// its own embedded FerretDB, so no other test's databases are seen.
func TestChooseDatabases(t *testing.T) {
	shared := databases{users: sharedDatabase, chat: sharedDatabase, presence: sharedDatabase,
		notifications: sharedDatabase, audit: sharedDatabase}
	tests := []struct {
		name     string
		existing []string // databases holding a document before the choice
		want     databases
	}{
		{"new installation", nil, perServiceDatabases},
		{"other databases only", []string{"something_else"}, perServiceDatabases},
		{"an earlier version's data", []string{sharedDatabase}, shared},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			m, err := embedded.StartMongo(ctx, embedded.MongoConfig{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			mc, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetTimeout(10 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := mc.Disconnect(ctx); err != nil {
					t.Error(err)
				}
				if err := m.Close(ctx); err != nil {
					t.Error(err)
				}
			})
			for _, db := range tc.existing {
				if _, err := mc.Database(db).Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := chooseDatabases(ctx, mc)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
