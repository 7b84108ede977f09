package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// Write-behind for the one-writer mode.
//
// A send ends with three writes nobody waits for: the channel's preview,
// the sender's read position, and the deletion of the send's outbox
// entry. On the embedded FerretDB each is a statement of its own (an
// update is a read and a write in a transaction, about 0.6 ms of CPU),
// and in a busy channel the next message overwrites the preview, and the
// next of the same sender its read position, within a second or two. In
// the one-writer mode these writes are queued in memory and written
// together every DefaultWriteBehind (or Flush): each channel's newest
// preview once, each member's highest read position once, then the
// outbox entries whose deletion was asked for before the flush began.
//
// Nothing is lost by a crash: an outbox entry is deleted only after every
// write queued before its deletion is stored, and the relay finishes an
// entry that is still there (for a message, it sets the preview and the
// sender's read position again). Reads of this store see the queued
// values, so within the process nothing looks late; the store is its
// database's only writer, so nothing else can.

// DefaultWriteBehind is how long a queued write may wait by default. It
// must stay well under the outbox delay (5 s by default), after which the
// relay would finish the entries itself.
const DefaultWriteBehind = time.Second

// behindTimeout bounds one flush.
const behindTimeout = 30 * time.Second

// behind is the queue of the writes written behind.
type behind struct {
	interval time.Duration

	mu sync.Mutex
	// queued writes, and those of the flush in progress (still shown by
	// reads until they are stored).
	queue, writing behindSet
	timer          *time.Timer // armed while anything is queued
	closed         bool

	flushMu sync.Mutex // one flush at a time
}

// behindSet is one generation of queued writes.
type behindSet struct {
	previews map[string]chat.Message // by channel id: the newest preview
	reads    map[string]queuedRead   // by member id: the highest position
	deletes  []string                // outbox entry ids
}

type queuedRead struct {
	channelID, userID string
	seq               int64
}

func (q *behindSet) empty() bool {
	return len(q.previews) == 0 && len(q.reads) == 0 && len(q.deletes) == 0
}

func newBehind(interval time.Duration) *behind {
	return &behind{interval: interval}
}

// arm starts the timer of the next flush if none is due. The caller holds
// b.mu.
func (b *behind) arm(s *Store) {
	if b.closed || b.timer != nil {
		return
	}
	b.timer = time.AfterFunc(b.interval, func() {
		ctx, cancel := context.WithTimeout(context.Background(), behindTimeout)
		defer cancel()
		if err := s.flush(ctx, newPacer(b.interval)); err != nil {
			s.log.Warn("chat store: writing queued previews, read positions and outbox deletions failed; retrying",
				slog.Any("error", err))
		}
	})
}

// setPreview queues m as its channel's preview; the caller (updatePreview)
// has decided it replaces the one shown.
func (b *behind) setPreview(s *Store, m chat.Message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue.previews == nil {
		b.queue.previews = make(map[string]chat.Message)
	}
	b.queue.previews[m.ChannelID] = m
	b.arm(s)
}

// preview returns the channel's queued (or being written) preview.
func (b *behind) preview(channelID string) (chat.Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m, ok := b.queue.previews[channelID]; ok {
		return m, true
	}
	m, ok := b.writing.previews[channelID]
	return m, ok
}

// raiseRead queues a member's read position, if higher than one queued.
func (b *behind) raiseRead(s *Store, channelID, userID string, seq int64) {
	id := memberID(channelID, userID)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue.reads == nil {
		b.queue.reads = make(map[string]queuedRead)
	}
	if r, ok := b.queue.reads[id]; ok && r.seq >= seq {
		return
	}
	b.queue.reads[id] = queuedRead{channelID: channelID, userID: userID, seq: seq}
	b.arm(s)
}

// readSeq returns the highest queued (or being written) read position of
// a member, zero for none.
func (b *behind) readSeq(channelID, userID string) int64 {
	id := memberID(channelID, userID)
	b.mu.Lock()
	defer b.mu.Unlock()
	return max(b.queue.reads[id].seq, b.writing.reads[id].seq)
}

// forgetReads drops a member's queued read position when the membership
// is deleted, so it is not applied to a later one. A flush in progress
// (whose set is not changed while it is written) may still apply its
// position to a membership made again before its command runs: the
// rejoined member then starts with more of the history counted as read.
func (b *behind) forgetReads(channelID, userID string) {
	id := memberID(channelID, userID)
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.queue.reads, id)
}

// deleteOutbox queues the deletion of an outbox entry, after the writes
// queued so far.
func (b *behind) deleteOutbox(s *Store, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue.deletes = append(b.queue.deletes, id)
	b.arm(s)
}

// Flush writes the queued previews and read positions, then deletes the
// outbox entries queued for deletion. If the updates fail, everything
// stays queued (later queued values win) and no entry is deleted; the
// next flush tries again. Without the one-writer mode there is nothing to
// flush.
func (s *Store) Flush(ctx context.Context) error {
	return s.flush(ctx, nil)
}

// flush is Flush, pausing between its commands if p is not nil.
func (s *Store) flush(ctx context.Context, p *pacer) error {
	b := s.behind
	if b == nil {
		return nil
	}
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop() // a no-op from the timer's own flush
		b.timer = nil
	}
	set := b.queue
	b.queue, b.writing = behindSet{}, set
	b.mu.Unlock()

	err := s.writeBehind(ctx, set, p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writing = behindSet{}
	if err != nil {
		b.requeue(set)
	}
	if !b.queue.empty() {
		b.arm(s)
	}
	return err
}

// requeue puts a set whose flush failed back under what queued since.
// The caller holds b.mu.
func (b *behind) requeue(set behindSet) {
	for id, m := range set.previews {
		if _, newer := b.queue.previews[id]; !newer {
			if b.queue.previews == nil {
				b.queue.previews = make(map[string]chat.Message)
			}
			b.queue.previews[id] = m
		}
	}
	for id, r := range set.reads {
		if q, ok := b.queue.reads[id]; !ok || q.seq < r.seq {
			if b.queue.reads == nil {
				b.queue.reads = make(map[string]queuedRead)
			}
			b.queue.reads[id] = r
		}
	}
	b.queue.deletes = append(set.deletes, b.queue.deletes...)
}

// writeBehind stores one set: the updates in commands of at most
// maxLaterBatch statements, each under the write gate (so a message
// insert waits for one short command at most), then the deletions, with
// p's pauses between the commands. A failed deletion is left to the
// relay, which finishes the entry again.
func (s *Store) writeBehind(ctx context.Context, set behindSet, p *pacer) error {
	var channels, members []mongo.WriteModel
	for id, m := range set.previews {
		channels = append(channels, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(previewUpdate(m)))
	}
	for id, r := range set.reads {
		members = append(members, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: id}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "last_read_seq", Value: r.seq}}}}))
	}
	var errs []error
	for chunk := range slices.Chunk(channels, maxLaterBatch) {
		errs = append(errs, s.gatedBulk(ctx, s.channels, chunk, p))
	}
	for chunk := range slices.Chunk(members, maxLaterBatch) {
		errs = append(errs, s.gatedBulk(ctx, s.members, chunk, p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("update previews and read positions: %w", err)
	}
	// One statement per entry, each filtering on _id alone, which FerretDB
	// looks up by index; a filter with $in would read the whole outbox.
	deletes := make([]mongo.WriteModel, len(set.deletes))
	for i, id := range set.deletes {
		deletes[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: id}})
	}
	for chunk := range slices.Chunk(deletes, maxLaterBatch) {
		if err := s.gatedBulk(ctx, s.outbox, chunk, p); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("delete outbox entries: %w", err)
			}
			s.log.Warn("chat store: delete outbox entries; the relay will finish them", slog.Any("error", err))
		}
	}
	return nil
}

// gatedBulk runs one unordered bulk write under the write gate, after p's
// pause if p is not nil. A statement that matches nothing (a membership
// deleted meanwhile) is not an error.
func (s *Store) gatedBulk(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel, p *pacer) error {
	if err := p.wait(ctx); err != nil {
		return err
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	unlock()
	p.held(time.Since(start))
	return err
}

// maxFlushPause bounds one pause of a timed flush (see pacer).
const maxFlushPause = 20 * time.Millisecond

// pacer spaces a timed flush's commands. At 200 messages a second a flush
// is 200-400 statements, 130-250 ms of the only writer, and back to back
// its commands were in the way of sends: a send writes twice (its outbox
// entry, then its message), and although both pass the flush's commands
// waiting at the gate, each found one command holding it, the second
// usually the flush's next one: in one measured run, 152 of the 159
// sends slower than 30 ms overlapped a flush. Pausing after each command
// for as long as it held the gate (at most maxFlushPause) leaves the
// writer free half the time while the flush runs, so a send's second
// write mostly passes between two commands (docs/performance.md,
// eleventh session). The pauses of one flush add up to at most half its
// interval, so a flush that has fallen behind (a burst of sends, a slow
// machine) catches up at full speed rather than let outbox entries age
// past the relay's delay.
type pacer struct {
	budget time.Duration // pause left for this flush
	next   time.Duration // pause before the next command
}

func newPacer(interval time.Duration) *pacer {
	return &pacer{budget: interval / 2}
}

// held records how long a command held the gate: the pause before the
// next one.
func (p *pacer) held(d time.Duration) {
	if p == nil {
		return
	}
	p.next = min(d, maxFlushPause, p.budget)
	p.budget -= p.next
}

// wait pauses before a command (not before the first); a nil pacer never
// does.
func (p *pacer) wait(ctx context.Context) error {
	if p == nil || p.next <= 0 {
		return nil
	}
	t := time.NewTimer(p.next)
	defer t.Stop()
	p.next = 0
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and stops the timer; writes queued later
// wait for an explicit Flush (or, after a restart, the relay).
func (s *Store) Close(ctx context.Context) error {
	if s.behind == nil {
		return nil
	}
	s.behind.mu.Lock()
	s.behind.closed = true
	s.behind.mu.Unlock()
	return s.Flush(ctx)
}
