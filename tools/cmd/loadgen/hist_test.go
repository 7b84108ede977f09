package main

import (
	"math"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	for _, us := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 12345, 1 << 30} {
		i := bucketOf(us)
		if lo, hi := lowerBound(i), lowerBound(i+1); us < lo || us >= hi {
			t.Errorf("%d µs in bucket %d = [%d, %d)", us, i, lo, hi)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples func(h *histogram)
		q       float64
		wantMS  float64
	}{
		{"uniform 1..1000 ms, p50", func(h *histogram) {
			for i := 1; i <= 1000; i++ {
				h.record(time.Duration(i) * time.Millisecond)
			}
		}, .5, 500},
		{"uniform 1..1000 ms, p99", func(h *histogram) {
			for i := 1; i <= 1000; i++ {
				h.record(time.Duration(i) * time.Millisecond)
			}
		}, .99, 990},
		{"constant", func(h *histogram) {
			for range 10 {
				h.record(3 * time.Millisecond)
			}
		}, .9, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			tt.samples(&h)
			if got := h.quantile(tt.q); math.Abs(got-tt.wantMS)/tt.wantMS > 0.02 {
				t.Fatalf("quantile(%v) = %v ms, want %v ms within 2%%", tt.q, got, tt.wantMS)
			}
		})
	}
}
