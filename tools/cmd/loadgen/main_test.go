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

func TestFastMessage(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		ok    bool // fastMessage takes it; otherwise the caller decodes in full
	}{
		{"message", `{"type":"message","channel":"c1","seq":"7","data":{"content":"hi","metadata":{"lg_idx":"12","lg_sent":"1700000000123456789"}}}`, true},
		{"keys after the metadata", `{"type":"message","data":{"metadata":{"lg_sent":"99","lg_idx":"3"},"seq":"1"}}`, true},
		{"content quoting the key", `{"type":"message","data":{"content":"say \"lg_idx\":\"666\"","metadata":{"lg_idx":"4","lg_sent":"5"}}}`, true},
		{"content ending in a backslash", `{"type":"message","data":{"content":"a\\","metadata":{"lg_idx":"8","lg_sent":"9"}}}`, true},
		{"escaped value", `{"type":"message","data":{"metadata":{"lg_idx":"1\u0030","lg_sent":"5"}}}`, false},
		{"no metadata", `{"type":"message","data":{"content":"x"}}`, false},
		{"another type", `{"type":"message_updated","data":{"metadata":{"lg_idx":"1","lg_sent":"2"}}}`, false},
		{"ack", `{"type":"ack","id":"m5"}`, false},
		{"type not first", `{"channel":"c","type":"message","data":{"metadata":{"lg_idx":"1","lg_sent":"2"}}}`, false},
	}
	baselineOut, err := json.Marshal(baselineFrame{Type: "message", Channel: "room", Timestamp: 1,
		Data: json.RawMessage(`{"content":"x","metadata":{"lg_idx":"2","lg_sent":"3"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name  string
		frame string
		ok    bool
	}{"the baseline server's frame", string(baselineOut), true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, sent, ok := fastMessage([]byte(tt.frame))
			if ok != tt.ok {
				t.Fatalf("fastMessage ok = %v, want %v", ok, tt.ok)
			}
			var f inFrame
			if err := json.Unmarshal([]byte(tt.frame), &f); err != nil {
				t.Fatal(err)
			}
			if ok && (idx != f.Data.Metadata.Idx || sent != f.Data.Metadata.Sent || f.Type != "message") {
				t.Fatalf("fastMessage = %q, %q; json.Unmarshal = %q, %q (type %q)", idx, sent, f.Data.Metadata.Idx, f.Data.Metadata.Sent, f.Type)
			}
		})
	}
}
