package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in log-linear buckets (64 per power of two,
// so quantiles are within about 1.6%) with atomic counters: thousands of
// receiver goroutines record into one without a lock.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // microseconds
	max    atomic.Uint64 // microseconds
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = 40 * histSub // up to 2^40 µs, about 12 days
)

func bucketOf(us uint64) int {
	if us < histSub {
		return int(us)
	}
	exp := bits.Len64(us) - histSubBits // >= 1
	return exp*histSub + int(us>>(exp-1)) - histSub
}

// lowerBound is the smallest value of bucket i, in microseconds.
func lowerBound(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	return uint64(i%histSub+histSub) << exp
}

func (h *histogram) record(d time.Duration) {
	us := uint64(max(d.Microseconds(), 0))
	i := min(bucketOf(us), histBuckets-1)
	h.counts[i].Add(1)
	h.n.Add(1)
	h.sum.Add(us)
	for {
		cur := h.max.Load()
		if us <= cur || h.max.CompareAndSwap(cur, us) {
			break
		}
	}
}

// quantile returns the q-quantile in milliseconds (upper edge of its bucket).
func (h *histogram) quantile(q float64) float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			upper := lowerBound(i + 1)
			return math.Min(float64(upper), float64(h.max.Load())) / 1000
		}
	}
	return float64(h.max.Load()) / 1000
}

// LatencySummary is a histogram's digest in milliseconds.
type LatencySummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func (h *histogram) summary() LatencySummary {
	n := h.n.Load()
	s := LatencySummary{Count: n, Max: float64(h.max.Load()) / 1000}
	if n > 0 {
		s.Mean = float64(h.sum.Load()) / float64(n) / 1000
		s.P50, s.P90, s.P99, s.P999 = h.quantile(.5), h.quantile(.9), h.quantile(.99), h.quantile(.999)
	}
	return s
}
