package embedded_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/platform/embedded"
)

// BenchmarkFerretDBWrites measures what a write costs on the embedded
// FerretDB, per document: one command per document against one command
// for a batch. It is the measurement behind batching the chat service's
// writes (docs/performance.md): most of a small write's cost is the
// command and its SQLite transaction, not the document.
func BenchmarkFerretDBWrites(b *testing.B) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	m, err := embedded.StartMongo(ctx, embedded.MongoConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatalf("StartMongo: %v", err)
	}
	defer func() {
		if err := m.Close(context.WithoutCancel(ctx)); err != nil {
			b.Errorf("close: %v", err)
		}
	}()
	c, err := mongo.Connect(options.Client().ApplyURI(m.URI()).SetTimeout(time.Minute))
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	defer func() { _ = c.Disconnect(context.WithoutCancel(ctx)) }()
	db := c.Database("bench")

	doc := func(i int) bson.D {
		return bson.D{{Key: "_id", Value: fmt.Sprintf("d%09d", i)}, {Key: "channel_id", Value: "c1"},
			{Key: "content", Value: "a benchmark message with a few words in it"}, {Key: "seq", Value: int64(i)}}
	}
	for _, batch := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("insert/batch=%d", batch), func(b *testing.B) {
			coll := db.Collection(fmt.Sprintf("insert%d", batch))
			n := 0
			for b.Loop() {
				docs := make([]any, batch)
				for i := range docs {
					docs[i] = doc(n)
					n++
				}
				if _, err := coll.InsertMany(ctx, docs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/doc")
		})
		b.Run(fmt.Sprintf("delete/batch=%d", batch), func(b *testing.B) {
			coll := db.Collection(fmt.Sprintf("delete%d", batch))
			n := 0
			for b.Loop() {
				b.StopTimer()
				docs := make([]any, batch)
				ids := make([]string, batch)
				for i := range docs {
					d := doc(n)
					docs[i], ids[i] = d, d[0].Value.(string)
					n++
				}
				if _, err := coll.InsertMany(ctx, docs); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := coll.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/doc")
		})
	}
}
