package hub

import (
	"context"
	"testing"
)

func TestSendQueue(t *testing.T) {
	frames := make([]*outFrame, 40)
	for i := range frames {
		frames[i] = &outFrame{seq: int64(i)}
	}
	tests := []struct {
		name string
		max  int
		run  func(t *testing.T, q *sendQueue)
	}{
		{"idle queue holds no buffer", 256, func(t *testing.T, q *sendQueue) {
			if q.ring != nil || q.space != nil {
				t.Fatalf("new queue allocated: ring %d, space %v", len(q.ring), q.space != nil)
			}
		}},
		{"first push starts the writer, later ones do not", 8, func(t *testing.T, q *sendQueue) {
			if ok, start := q.push(frames[0]); !ok || !start {
				t.Fatalf("first push: ok %v start %v", ok, start)
			}
			if ok, start := q.push(frames[1]); !ok || start {
				t.Fatalf("second push: ok %v start %v", ok, start)
			}
		}},
		{"bounded, FIFO across growth and wrap-around", 8, func(t *testing.T, q *sendQueue) {
			for i := range 8 {
				if ok, _ := q.push(frames[i]); !ok {
					t.Fatalf("push %d refused", i)
				}
			}
			if ok, _ := q.push(frames[8]); ok {
				t.Fatal("push beyond max accepted")
			}
			for i := range 5 {
				if f, _ := q.next(context.Background()); f != frames[i] {
					t.Fatalf("pop %d: got seq %d", i, f.seq)
				}
			}
			for i := 8; i < 13; i++ {
				if ok, _ := q.push(frames[i]); !ok {
					t.Fatalf("push %d refused after pops", i)
				}
			}
			for i := 5; i < 13; i++ {
				f, step := q.next(context.Background())
				if step != stepWrite || f != frames[i] {
					t.Fatalf("pop %d: got %v %v", i, f, step)
				}
			}
			if _, step := q.next(context.Background()); step != stepPark || q.running {
				t.Fatalf("empty queue: step %v, running %v", step, q.running)
			}
			if _, start := q.push(frames[0]); !start {
				t.Fatal("push after the writer parked must start one")
			}
		}},
		{"a drained big ring is released", 64, func(t *testing.T, q *sendQueue) {
			for i := range 40 {
				q.push(frames[i])
			}
			for {
				if _, step := q.next(context.Background()); step == stepPark {
					break
				}
			}
			if q.ring != nil {
				t.Fatalf("ring of %d kept after draining", len(q.ring))
			}
		}},
		{"closing wins over queued frames", 8, func(t *testing.T, q *sendQueue) {
			q.push(frames[0])
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if _, step := q.next(ctx); step != stepClose {
				t.Fatalf("step %v, want close", step)
			}
		}},
		{"kick starts a writer once; dead queues drop", 8, func(t *testing.T, q *sendQueue) {
			if !q.kick() || q.kick() {
				t.Fatal("kick must start exactly one writer")
			}
			q.markDead()
			if q.kick() {
				t.Fatal("kick after the close sequence")
			}
			if ok, start := q.push(frames[0]); !ok || start || q.len() != 0 {
				t.Fatalf("push after close: ok %v start %v len %d", ok, start, q.len())
			}
		}},
		{"peek leaves the frame queued; replaceHead swaps it; pop takes it", 8, func(t *testing.T, q *sendQueue) {
			q.push(frames[0])
			q.push(frames[1])
			if f, step := q.peek(context.Background()); step != stepWrite || f != frames[0] || q.len() != 2 {
				t.Fatalf("peek: %v %v, len %d", f, step, q.len())
			}
			rest := &outFrame{seq: 100}
			q.replaceHead(rest)
			if f, _ := q.peek(context.Background()); f != rest {
				t.Fatalf("after replaceHead peek gives seq %d", f.seq)
			}
			if f, _ := q.pop(); f != rest {
				t.Fatalf("pop gives seq %d", f.seq)
			}
			if f, _ := q.next(context.Background()); f != frames[1] {
				t.Fatalf("next gives seq %d", f.seq)
			}
			if _, step := q.peek(context.Background()); step != stepPark || q.running {
				t.Fatalf("empty queue: peek %v, running %v", step, q.running)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			q.push(frames[2])
			if _, step := q.peek(ctx); step != stepClose {
				t.Fatalf("peek of a closing connection: %v", step)
			}
		}},
		{"space is signalled by pops", 2, func(t *testing.T, q *sendQueue) {
			q.push(frames[0])
			q.push(frames[1])
			sig := q.spaceSignal()
			q.next(context.Background())
			select {
			case <-sig:
			default:
				t.Fatal("no space signal after a pop")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, &sendQueue{max: tt.max}) })
	}
}
