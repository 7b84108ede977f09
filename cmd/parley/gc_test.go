package main

import (
	"runtime/debug"
	"testing"
)

// Without GOGC the all-in-one collects at defaultGCPercent; with it, the
// runtime's reading of GOGC stays in force.
func TestTuneGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	tests := []struct {
		name    string
		gogc    string
		runtime int // what the runtime holds before tuneGC, as GOGC would have set it
		want    int
	}{
		{"unset", "", 100, defaultGCPercent},
		{"set", "50", 50, 50},
		{"off", "off", -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(tc.runtime)
			got := tuneGC(func(k string) string {
				if k == "GOGC" {
					return tc.gogc
				}
				return ""
			})
			if got != tc.want {
				t.Fatalf("tuneGC returned %d, want %d", got, tc.want)
			}
			if now := debug.SetGCPercent(100); now != tc.want {
				t.Fatalf("the runtime collects at %d, want %d", now, tc.want)
			}
		})
	}
}
