package ratelimit

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		rate Rate
		// at lists offsets from t0 of successive Allow calls; want their results.
		at   []time.Duration
		want []bool
	}{
		{"burst then refuse", PerSecond(10, 3), []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refills one token per Every", PerSecond(10, 2), []time.Duration{0, 0, 0, 100 * time.Millisecond, 100 * time.Millisecond}, []bool{true, true, false, true, false}},
		{"full again after idle", PerSecond(1, 2), []time.Duration{0, 0, 0, 10 * time.Second, 10 * time.Second, 10 * time.Second}, []bool{true, true, false, true, true, false}},
		{"one per two seconds", Rate{Every: 2 * time.Second, Burst: 1}, []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second}, []bool{true, false, true, false}},
		{"zero rate is unlimited", Rate{}, []time.Duration{0, 0, 0}, []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Bucket
			for i, off := range tt.at {
				if got := b.Allow(tt.rate, t0.Add(off)); got != tt.want[i] {
					t.Fatalf("call %d at +%s: Allow = %v, want %v", i, off, got, tt.want[i])
				}
			}
		})
	}
}

func TestWindow(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name      string
		threshold int
		at        []time.Duration
		want      []bool
	}{
		{"trips at threshold", 3, []time.Duration{0, time.Second, 2 * time.Second}, []bool{false, false, true}},
		{"resets after the window", 3, []time.Duration{0, time.Second, 11 * time.Second, 12 * time.Second}, []bool{false, false, false, false}},
		{"disabled", 0, []time.Duration{0, 0, 0}, []bool{false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w Window
			for i, off := range tt.at {
				if got := w.Add(t0.Add(off), 10*time.Second, tt.threshold); got != tt.want[i] {
					t.Fatalf("event %d: Add = %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestCaps(t *testing.T) {
	tests := []struct {
		name string
		max  int
		ops  []string // "+k" acquire (want ok), "!k" acquire (want refused), "-k" release
		want map[string]int
	}{
		{"cap per key", 2, []string{"+a", "+a", "!a", "+b"}, map[string]int{"a": 2, "b": 1}},
		{"release frees a slot", 1, []string{"+a", "!a", "-a", "+a"}, map[string]int{"a": 1}},
		{"unlimited", 0, []string{"+a", "+a", "+a"}, map[string]int{"a": 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCaps(tt.max)
			for _, op := range tt.ops {
				key := op[1:]
				switch op[0] {
				case '+':
					if !c.Acquire(key) {
						t.Fatalf("%s: refused", op)
					}
				case '!':
					if c.Acquire(key) {
						t.Fatalf("%s: allowed past the cap", op)
					}
				case '-':
					c.Release(key)
				}
			}
			for k, n := range tt.want {
				if got := c.Count(k); got != n {
					t.Errorf("Count(%q) = %d, want %d", k, got, n)
				}
			}
			if c.Keys() != len(tt.want) {
				t.Errorf("Keys = %d, want %d", c.Keys(), len(tt.want))
			}
		})
	}
}
