package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseSourceIPs(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"127.0.0.1", 1, false},
		{"127.0.0.1,127.0.0.2", 2, false},
		{"127.0.0.1-127.0.0.40", 40, false},
		{"127.0.0.1-127.0.0.3, 127.0.1.9", 4, false},
		{"::1", 1, false},
		{"10.0.0.1", 0, true},
		{"127.0.0.5-127.0.0.1", 0, true},
		{"127.0.0.1-127.0.1.1", 0, true},
		{"", 0, true},
		{"127.0.0.1-10.0.0.1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSourceIPs(tt.in)
		if (err != nil) != tt.wantErr || len(got) != tt.want {
			t.Errorf("parseSourceIPs(%q) = %d addresses, %v; want %d, error %v", tt.in, len(got), err, tt.want, tt.wantErr)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"baseline needs no auth", []string{"--broadcast-baseline"}, ""},
		{"token", []string{"--token", "t", "--channel-ids", "a"}, ""},
		{"no identity source", []string{}, "exactly one of"},
		{"two identity sources", []string{"--token", "t", "--register"}, "exactly one of"},
		{"remote target refused", []string{"--token", "t", "--url", "ws://example.com/v1/ws"}, "loopback"},
		{"not a websocket url", []string{"--token", "t", "--url", "http://127.0.0.1/v1/ws"}, "ws://"},
		{"too many connections", []string{"--broadcast-baseline", "--channels", "1000", "--members", "1000"}, "connections"},
		{"senders above clients", []string{"--broadcast-baseline", "--channels", "1", "--members", "2", "--senders", "3"}, "--senders"},
		{"duration bound", []string{"--broadcast-baseline", "--duration", "2h"}, "--duration"},
		{"idle mode", []string{"--mode", "idle", "--clients", "5", "--token", "t"}, ""},
		{"bad mode", []string{"--mode", "burst", "--token", "t"}, "--mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadRSS(t *testing.T) {
	kb, err := readRSS(os.Getpid())
	if err != nil || kb <= 0 {
		t.Fatalf("readRSS(self) = %d, %v", kb, err)
	}
}

// TestBaselineRuns drives the in-process broadcast server end to end, open
// and closed loop: every message reaches every member exactly once.
func TestBaselineRuns(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"open loop", []string{"--rate", "60"}},
		{"saturation", []string{"--rate", "0", "--window", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--broadcast-baseline", "--channels", "3", "--members", "4", "--senders", "3",
				"--duration", "1s", "--drain", "20s", "--source-ips", "127.0.0.1,127.0.0.2"}, tt.args...)
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := run(ctx, args, &out, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatal(err)
			}
			var s Summary
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatalf("summary %s: %v", out.String(), err)
			}
			if s.Connections.Established != 12 || s.Sent == 0 {
				t.Fatalf("summary %+v", s)
			}
			if s.Expected != s.Sent*4 || s.Delivered != s.Expected || s.Lost != 0 || s.Duplicates != 0 {
				t.Fatalf("sent %d, expected %d, delivered %d, lost %d, duplicates %d", s.Sent, s.Expected, s.Delivered, s.Lost, s.Duplicates)
			}
			if s.Latency.Count != uint64(s.Delivered) || s.Latency.P99 <= 0 || s.DeliveriesPerSec <= 0 {
				t.Fatalf("latency %+v, deliveries/s %v", s.Latency, s.DeliveriesPerSec)
			}
			var inTimeline int64
			for _, sec := range s.Timeline {
				inTimeline += sec.Deliveries
			}
			if inTimeline != s.Delivered {
				t.Fatalf("the timeline counts %d deliveries, want %d: %+v", inTimeline, s.Delivered, s.Timeline)
			}
		})
	}
}
