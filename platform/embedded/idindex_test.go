package embedded_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/embedded"
)

// TestIDLookupsUseAnIndex checks the workaround for FerretDB's _id lookups
// (idindex.go): after IndexIDs, SQLite answers FerretDB's lookup query
// from an index instead of a scan, and FerretDB works as before: finds,
// updates and deletes by _id, its own index list, and dropping the
// collection.
func TestIDLookupsUseAnIndex(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	m, err := embedded.StartMongo(ctx, embedded.MongoConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(cctx); err != nil {
			t.Error(err)
		}
	})
	withMongo(t, m.URI(), func(coll *mongo.Collection) {
		for i := range 50 {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: string(rune('a'+i%26)) + strings.Repeat("x", i)}, {Key: "n", Value: i}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.IndexIDs(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.IndexIDs(ctx); err != nil { // nothing left to do
			t.Fatal(err)
		}

		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, coll.Database().Name()+".sqlite")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var table string
		if err := db.QueryRowContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?`, coll.Name()+"_%").Scan(&table); err != nil {
			t.Fatal(err)
		}
		var id, parent, notused int
		var plan string
		if err := db.QueryRowContext(ctx, `EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "`+table+`" WHERE _ferretdb_sjson->'$._id' = ?`, `"b"`).Scan(&id, &parent, &notused, &plan); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "USING INDEX") {
			t.Errorf("FerretDB's _id lookup plan: %q, want an index search", plan)
		}

		var doc struct{ N int }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "bx"}}).Decode(&doc); err != nil || doc.N != 1 {
			t.Fatalf("find by _id: %+v %v", doc, err)
		}
		if res, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "bx"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 100}}}}); err != nil || res.ModifiedCount != 1 {
			t.Fatalf("update by _id: %+v %v", res, err)
		}
		if res, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil || res.DeletedCount != 1 {
			t.Fatalf("delete by _id: %+v %v", res, err)
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "bx"}}); !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("duplicate _id: %v", err)
		}
		if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}, Options: options.Index().SetName("n_1")}); err != nil {
			t.Fatal(err)
		}
		specs, err := coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		if strings.Join(names, ",") != "_id_,n_1" {
			t.Errorf("indexes FerretDB reports: %v, want its own only", names)
		}
		if err := coll.Drop(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
			t.Fatalf("after drop: %d %v", n, err)
		}
	})
}
