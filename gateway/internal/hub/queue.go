package hub

import (
	"context"
	"sync"
)

// queueKeep is the ring capacity a drained queue keeps; a larger ring,
// grown by a burst, is dropped once empty so a connection that was busy
// once does not hold its peak forever.
const queueKeep = 16

// sendQueue is a connection's bounded queue of frames to write, and the
// switch of its write loop.
//
// The queue is a ring that grows on demand up to max entries, so an idle
// connection holds no buffer (a channel would hold max slots from the
// start: 2 KiB of an idle connection's 16 KiB budget).
//
// The write loop runs while there is something to write: the push that
// finds none running starts it, and it returns once it has emptied the
// queue. At most one runs at a time, so writes stay serialised, and an idle
// connection keeps no writer (nor, with the read poller, any goroutine): a waiting
// writer's stack, grown by its first write, would otherwise stay with each
// of 10,000 idle connections (measured: 11 KiB per idle connection this
// way, 16-17 KiB with a writer per connection, and 13-15 KiB when writers
// lingered a second after their last frame). Starting a goroutine costs
// about a microsecond per burst of frames.
type sendQueue struct {
	mu         sync.Mutex
	ring       []*outFrame
	head, size int
	max        int
	// running: a write loop owns the socket; dead: the close sequence
	// ran, and nothing is written any more.
	running, dead bool
	// space, created by the first sender that has to wait for room, is
	// signalled after every pop; idle connections never need one.
	space chan struct{}
}

// push appends f. ok is false (and nothing queued) when the queue is full;
// start is true when the caller must start the write loop. Frames pushed
// after the close sequence are dropped.
func (q *sendQueue) push(f *outFrame) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dead {
		return true, false
	}
	if q.size == q.max {
		return false, false
	}
	if q.size == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.size)%len(q.ring)] = f
	q.size++
	start = !q.running
	q.running = true
	return true, start
}

// kick reports whether the caller must start the write loop (to run the
// close sequence): true unless one runs already or the sequence ran.
func (q *sendQueue) kick() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dead || q.running {
		return false
	}
	q.running = true
	return true
}

// grow doubles the ring (at least 4, at most max); called with mu held.
func (q *sendQueue) grow() {
	n := min(max(2*len(q.ring), 4), q.max)
	ring := make([]*outFrame, n)
	for i := range q.size {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// writerStep is what the write loop does next.
type writerStep uint8

const (
	stepWrite writerStep = iota // write the frame
	stepPark                    // queue empty: return
	stepClose                   // the connection is closing: run the close sequence
)

// next hands the write loop its next frame, or tells it to park or close.
// Checking ctx under the lock pairs with closeWith (cancel, then kick): the
// loop either sees the cancellation here, or has parked before kick runs
// and kick starts a new loop.
func (q *sendQueue) next(ctx context.Context) (*outFrame, writerStep) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ctx.Err() != nil {
		return nil, stepClose
	}
	f, ok := q.popLocked()
	if !ok {
		q.running = false
		return nil, stepPark
	}
	return f, stepWrite
}

// peek is next for writeNow: the frame stays queued until it is written
// (pop), or is replaced by what of it is still to write (replaceHead).
func (q *sendQueue) peek(ctx context.Context) (*outFrame, writerStep) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ctx.Err() != nil {
		return nil, stepClose
	}
	if q.size == 0 {
		q.popLocked() // drops an outgrown ring
		q.running = false
		return nil, stepPark
	}
	return q.ring[q.head], stepWrite
}

// replaceHead replaces the oldest frame, which peek returned, with f.
// Only the write loop's owner calls it, so the head is still that frame.
func (q *sendQueue) replaceHead(f *outFrame) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.size > 0 {
		q.ring[q.head] = f
	}
}

// pop removes the oldest frame (for the close sequence's flush, and
// writeNow's written frames).
func (q *sendQueue) pop() (*outFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.popLocked()
}

func (q *sendQueue) popLocked() (*outFrame, bool) {
	if q.size == 0 {
		if len(q.ring) > queueKeep {
			q.ring, q.head = nil, 0
		}
		return nil, false
	}
	f := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.size--
	if q.space != nil {
		select {
		case q.space <- struct{}{}:
		default:
		}
	}
	return f, true
}

// markDead ends writing for good and drops what is queued.
func (q *sendQueue) markDead() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dead, q.running = true, false
	q.ring, q.head, q.size = nil, 0, 0
}

// spaceSignal returns the channel signalled when a frame leaves the queue.
func (q *sendQueue) spaceSignal() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.space == nil {
		q.space = make(chan struct{}, 1)
	}
	return q.space
}

// len returns the number of queued frames.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}
