package mongoutil_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestIsDuplicateKeyClassifiesErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error saying duplicate key", errors.New("duplicate key"), false},
		{"write exception 11000", mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "E11000 duplicate key error"}}}, true},
		{"write error 11000 (one of a bulk write's)", mongo.WriteError{Code: 11000, Message: "E11000 duplicate key error"}, true},
		{"command error 11001", mongo.CommandError{Code: 11001, Message: "dup"}, true},
		{"command error 12582", mongo.CommandError{Code: 12582, Message: "dup"}, true},
		{"FerretDB internal error from SQLite", mongo.CommandError{Code: 1, Message: "UNIQUE constraint failed: t.idx"}, true},
		{"FerretDB internal error from PostgreSQL", mongo.CommandError{Code: 1, Message: "ERROR: duplicate key value violates unique constraint \"x\""}, true},
		{"other server error", mongo.CommandError{Code: 2, Message: "bad value"}, false},
		{"wrapped", fmt.Errorf("insert: %w", mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mongoutil.IsDuplicateKey(tt.err); got != tt.want {
				t.Errorf("IsDuplicateKey(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestAgainstServer checks both functions against the test environment's
// server: the embedded FerretDB, or PARLEY_MONGODB_URI when set.
func TestAgainstServer(t *testing.T) {
	env := testenv.New(t)
	db := env.Mongo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ferret, err := mongoutil.IsFerretDB(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(testenv.EnvMongoURI) == "" && !ferret {
		t.Error("IsFerretDB = false on the embedded FerretDB")
	}

	coll := db.Collection("dups")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "k", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "k", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
	}{
		{"same _id", func() error { _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); return err }()},
		{"same unique key on insert", func() error {
			_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "c"}, {Key: "k", Value: 1}})
			return err
		}()},
		{"same unique key on update", func() error {
			_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "b"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: 1}}}})
			return err
		}()},
	}
	for _, c := range cases {
		if !mongoutil.IsDuplicateKey(c.err) {
			t.Errorf("%s: IsDuplicateKey(%v) = false", c.name, c.err)
		}
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "d"}, {Key: "k", Value: 3}}); mongoutil.IsDuplicateKey(err) || err != nil {
		t.Errorf("a fresh insert: %v", err)
	}
}
