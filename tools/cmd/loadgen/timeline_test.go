package main

import (
	"testing"
	"time"
)

func TestTimeline(t *testing.T) {
	start := time.Unix(1000, 0)
	tl := newTimeline(start, 3)
	at := func(d time.Duration) int64 { return start.Add(d).UnixNano() }
	tl.record(at(100*time.Millisecond), 5*time.Millisecond)
	tl.record(at(900*time.Millisecond), 150*time.Millisecond)
	tl.record(at(2500*time.Millisecond), 20*time.Millisecond)
	tl.record(at(-time.Second), time.Second)  // before the first send
	tl.record(at(3*time.Second), time.Second) // past the timeline
	got := tl.summary()
	want := []TimelineSecond{
		{Second: 0, Deliveries: 2, Over100ms: 1, MaxMS: 150},
		{Second: 2, Deliveries: 1, Over100ms: 0, MaxMS: 20},
	}
	if len(got) != len(want) {
		t.Fatalf("summary %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("second %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
