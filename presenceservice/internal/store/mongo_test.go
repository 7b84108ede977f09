package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

func TestMongoStore(t *testing.T) {
	db := testenv.New(t).Mongo(t)
	s := NewMongoStore(db, 0)
	ctx := context.Background()
	t1, t2 := at(time.Minute), at(2*time.Minute)

	if err := s.SaveLastSeen(ctx, []presence.Durable{{UserID: "u", LastSeen: t2}, {UserID: "v", LastSeen: t1}}); err != nil {
		t.Fatal(err)
	}
	// An older time arriving late does not win.
	if err := s.SaveLastSeen(ctx, []presence.Durable{{UserID: "u", LastSeen: t1}, {UserID: "v", LastSeen: t2}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMessage(ctx, "u", "lunch", t1); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMessage(ctx, "m", "only a message", t1); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, []string{"u", "v", "m", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id       string
		present  bool
		lastSeen time.Time
		message  string
		hasMsg   bool
	}{
		{id: "u", present: true, lastSeen: t2, message: "lunch", hasMsg: true},
		{id: "v", present: true, lastSeen: t2},
		{id: "m", present: true, message: "only a message", hasMsg: true},
		{id: "nobody"},
	}
	for _, tt := range tests {
		d, ok := got[tt.id]
		if ok != tt.present || !d.LastSeen.Equal(tt.lastSeen) || d.Message != tt.message || d.HasMessage != tt.hasMsg {
			t.Errorf("%s: got %+v (present %v), want last seen %v message %q", tt.id, d, ok, tt.lastSeen, tt.message)
		}
	}
}

func TestMongoStoreConcurrentFirstWrites(t *testing.T) {
	db := testenv.New(t).Mongo(t)
	s := NewMongoStore(db, 0)
	ctx := context.Background()
	// Racing upserts of a new document: one inserts, the others must end
	// up updating it rather than failing on the duplicate _id.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.SaveLastSeen(ctx, []presence.Durable{{UserID: "racer", LastSeen: at(time.Duration(i) * time.Second)}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := s.Load(ctx, []string{"racer"})
	if err != nil {
		t.Fatal(err)
	}
	ls := got["racer"].LastSeen
	if isFerretDB(t, db) {
		// FerretDB v1 applies update operators by reading the document
		// and writing it back, without isolation: concurrent $max updates
		// of one document can lose one another. Any written value is
		// possible, nothing else.
		if ls.Before(at(0)) || ls.After(at((n-1)*time.Second)) || ls.Sub(at(0))%time.Second != 0 {
			t.Errorf("last seen %v is none of the written values", ls)
		}
		return
	}
	if want := at((n - 1) * time.Second); !ls.Equal(want) {
		t.Errorf("last seen %v, want the latest %v", ls, want)
	}
}

// isFerretDB reports whether db is served by FerretDB, whose buildInfo
// carries its own version.
func isFerretDB(t *testing.T, db *mongo.Database) bool {
	t.Helper()
	var info bson.M
	if err := db.RunCommand(context.Background(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatal(err)
	}
	_, ok := info["ferretdbVersion"]
	return ok
}

func TestIsDuplicateKey(t *testing.T) {
	db := testenv.New(t).Mongo(t)
	ctx := context.Background()
	coll := db.Collection("dups")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	_, realDup := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}})

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"unrelated", errors.New("connection reset"), false},
		{"real duplicate insert from the server", realDup, true},
		{"write exception 11000", mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "E11000 duplicate key error"}}}, true},
		{"command error 11000", mongo.CommandError{Code: 11000, Message: "dup"}, true},
		// FerretDB reports a unique violation on update as an internal
		// error carrying its backend's message.
		{"FerretDB over PostgreSQL on update", fmt.Errorf("update: %w", mongo.CommandError{Code: 1, Name: "InternalError", Message: `ERROR: duplicate key value violates unique constraint "presence_pkey" (SQLSTATE 23505)`}), true},
		{"FerretDB over SQLite on update", mongo.CommandError{Code: 1, Name: "InternalError", Message: "UNIQUE constraint failed: presence._ferretdb_id"}, true},
		{"a client-side error that says duplicate key", errors.New("duplicate key"), false},
		{"other command error", mongo.CommandError{Code: 2, Message: "bad value"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mongoutil.IsDuplicateKey(tt.err); got != tt.want {
				t.Errorf("mongoutil.IsDuplicateKey(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestMongoStoreSavesLargeBatches(t *testing.T) {
	db := testenv.New(t).Mongo(t)
	s := NewMongoStore(db, 0)
	ctx := context.Background()
	seen := make([]presence.Durable, saveBatch+5)
	ids := make([]string, len(seen))
	for i := range seen {
		ids[i] = fmt.Sprintf("u%05d", i)
		seen[i] = presence.Durable{UserID: ids[i], LastSeen: at(time.Duration(i) * time.Millisecond)}
	}
	if err := s.SaveLastSeen(ctx, seen); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(seen) {
		t.Fatalf("%d documents, want %d", len(got), len(seen))
	}
	for _, d := range seen {
		if !got[d.UserID].LastSeen.Equal(d.LastSeen) {
			t.Errorf("%s: last seen %v, want %v", d.UserID, got[d.UserID].LastSeen, d.LastSeen)
			break
		}
	}
}
