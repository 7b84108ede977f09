package main

import (
	"sync/atomic"
	"time"
)

// timeline keeps, for each second of sending, how the messages sent in
// that second fared: deliveries, the slowest, and how many took longer
// than slowAfter. A p99 says how many were slow; the timeline says when,
// so that stalls can be told from steady queueing and matched to what
// the server did then.
type timeline struct {
	start   int64 // unix ns of the first send; seconds count from it
	seconds []timelineSecond
}

type timelineSecond struct {
	deliveries, slow atomic.Int64
	maxNS            atomic.Int64
}

// slowAfter is the latency a delivery is counted slow beyond: the
// gateway issue's p99 target.
const slowAfter = 100 * time.Millisecond

// TimelineSecond is one second of the timeline in the summary.
type TimelineSecond struct {
	Second     int     `json:"second"`
	Deliveries int64   `json:"deliveries"`
	Over100ms  int64   `json:"over_100ms"`
	MaxMS      float64 `json:"max_ms"`
}

func newTimeline(start time.Time, seconds int) *timeline {
	return &timeline{start: start.UnixNano(), seconds: make([]timelineSecond, max(seconds, 1))}
}

// record notes a delivery of a message sent at sentNS that took latency.
// Sends outside the timeline's seconds are not recorded.
func (t *timeline) record(sentNS int64, latency time.Duration) {
	i := (sentNS - t.start) / int64(time.Second)
	if i < 0 || i >= int64(len(t.seconds)) {
		return
	}
	s := &t.seconds[i]
	s.deliveries.Add(1)
	if latency > slowAfter {
		s.slow.Add(1)
	}
	for {
		cur := s.maxNS.Load()
		if int64(latency) <= cur || s.maxNS.CompareAndSwap(cur, int64(latency)) {
			return
		}
	}
}

// summary returns the seconds that had deliveries.
func (t *timeline) summary() []TimelineSecond {
	var out []TimelineSecond
	for i := range t.seconds {
		s := &t.seconds[i]
		if n := s.deliveries.Load(); n > 0 {
			out = append(out, TimelineSecond{Second: i, Deliveries: n, Over100ms: s.slow.Load(), MaxMS: float64(s.maxNS.Load()) / 1e6})
		}
	}
	return out
}
