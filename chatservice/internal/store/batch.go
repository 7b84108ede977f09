package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Group commit for the one-writer mode (see OneWriter).
//
// On the embedded FerretDB a write is one command and one SQLite
// transaction, and most of its cost is the command, not the document:
// BenchmarkFerretDBWrites (platform/embedded) measures about 0.65 ms for a
// one-document insert and 0.15 ms per document in a batch of eight. When
// writes queue behind the write gate anyway, the ones of the same kind
// that are waiting together go as one command: concurrent sends' outbox
// entries as one insert, their messages as one insert, their previews
// and read positions as one update command per collection, their
// finished outbox entries as one delete. Nobody waits for a batch to
// fill: a batch is whatever queued while the previous write ran, so a
// lone write goes at once, and a busy store makes bigger batches.
//
// There is no background goroutine. The first caller to find no flush
// running leads: it takes the gate, writes the whole queue (its own
// request included) and, if more queued meanwhile, hands the lead to the
// oldest of those callers, who is waiting anyway.

// maxBatch caps the documents of one batched command, so one command's
// size and duration stay bounded. Batches that are not urgent (see gate)
// are capped lower: the gate is not taken from a command that holds it,
// so a long one delays the next message's insert, and FerretDB writes an
// update or a delete one statement at a time anyway (a batch of them
// saves the command's cost, not the statements').
const (
	maxBatch      = 128
	maxLaterBatch = 16
)

// batchTimeout bounds a batched command. The leader writes for other
// callers too, so once it has the gate its own context does not bound the
// command; a caller whose context ends before its request is taken into a
// batch withdraws it (see do).
const batchTimeout = 10 * time.Second

// batcher queues requests of one kind and writes them in batches with
// flush, which returns one error per request (nil for success).
type batcher[T any] struct {
	store *Store
	name  string
	flush func(ctx context.Context, reqs []T) []error
	// urgent batches go through the write gate first (see gate).
	urgent bool

	mu       sync.Mutex
	pending  []*batchItem[T]
	flushing bool
}

// batchItem is one caller's request, and its result once written.
type batchItem[T any] struct {
	req    T
	err    error
	done   chan struct{} // closed when err is final
	lead   chan struct{} // closed when this caller must flush next
	leader bool          // set, under the batcher's mutex, with lead
}

func newBatcher[T any](s *Store, name string, flush func(context.Context, []T) []error) *batcher[T] {
	return &batcher[T]{store: s, name: name, flush: flush}
}

// do writes req with the next batch and returns its outcome. If ctx ends
// while the request waits its turn, it is withdrawn and never written;
// once its batch is being written, do waits for the outcome.
func (b *batcher[T]) do(ctx context.Context, req T) error {
	it := &batchItem[T]{req: req, done: make(chan struct{}), lead: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, it)
	lead := !b.flushing
	b.flushing = true
	b.mu.Unlock()
	if !lead {
		select {
		case <-it.done:
			return it.err
		case <-it.lead:
		case <-ctx.Done():
			if b.withdraw(it) {
				return fmt.Errorf("%s: %w", b.name, ctx.Err())
			}
			// Taken into a batch, or handed the lead: the request is
			// being written; wait for its outcome (bounded by
			// batchTimeout), or pass the lead on (run).
			select {
			case <-it.done:
				return it.err
			case <-it.lead:
			}
		}
	}
	b.run(ctx, it)
	<-it.done
	return it.err
}

// withdraw removes a waiting request from the queue. It reports false if
// the request was already taken into a batch or was handed the lead: then
// the request is, or is about to be, written.
func (b *batcher[T]) withdraw(it *batchItem[T]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if it.leader {
		return false
	}
	i := slices.Index(b.pending, it)
	if i < 0 {
		return false
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	return true
}

// run writes one batch from the head of the queue, which holds the
// leader's request it, and then passes the lead on or ends the flushing.
// The leader waits for the gate within its own ctx; if that ends first,
// only its own request fails, and the lead passes on.
func (b *batcher[T]) run(ctx context.Context, it *batchItem[T]) {
	unlock, err := b.store.lockWritesUrgent(ctx, b.urgent)
	if err != nil {
		b.mu.Lock()
		if i := slices.Index(b.pending, it); i >= 0 {
			b.pending = slices.Delete(b.pending, i, i+1)
		}
		it.err = fmt.Errorf("%s: %w", b.name, err)
		close(it.done)
		b.passLead()
		b.mu.Unlock()
		return
	}
	// Requests that queued while the gate was taken join this batch.
	b.mu.Lock()
	n := min(len(b.pending), b.max())
	items := slices.Clone(b.pending[:n])
	b.pending = slices.Delete(b.pending, 0, n)
	b.mu.Unlock()

	reqs := make([]T, len(items))
	for i, it := range items {
		reqs[i] = it.req
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	errs := b.flush(wctx, reqs)
	cancel()
	unlock()
	for i, it := range items {
		it.err = errs[i]
		close(it.done)
	}

	b.mu.Lock()
	b.passLead()
	b.mu.Unlock()
}

// max is the largest batch this batcher writes.
func (b *batcher[T]) max() int {
	if b.urgent {
		return maxBatch
	}
	return maxLaterBatch
}

// passLead hands the lead to the oldest waiting request, or ends the
// flushing if none waits. The caller holds b.mu.
func (b *batcher[T]) passLead() {
	if len(b.pending) == 0 {
		b.flushing = false
		return
	}
	next := b.pending[0]
	next.leader = true
	close(next.lead)
}

// bulkUpdates returns the flush of queued update models on c: one
// unordered bulk write (one update command).
func bulkUpdates(c *mongo.Collection) func(context.Context, []mongo.WriteModel) []error {
	return func(ctx context.Context, models []mongo.WriteModel) []error {
		_, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		return perDocErrors(len(models), err)
	}
}

// perDocErrors spreads the error of an unordered InsertMany or BulkWrite
// over its n documents: each write error goes to its document, as a
// mongo.WriteException so that mongoutil.IsDuplicateKey recognises it;
// any other error goes to every document not otherwise accounted for.
func perDocErrors(n int, err error) []error {
	errs := make([]error, n)
	if err == nil {
		return errs
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	for _, we := range bwe.WriteErrors {
		if we.Index >= 0 && we.Index < n {
			errs[we.Index] = mongo.WriteException{WriteErrors: []mongo.WriteError{we.WriteError}}
		}
	}
	return errs
}
