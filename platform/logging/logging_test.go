package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"testing"
)

func decode(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("not JSON: %s: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func TestNewLevels(t *testing.T) {
	tests := []struct {
		level     string
		wantMsgs  []string
		wantError bool
	}{
		{level: "debug", wantMsgs: []string{"d", "i", "w", "e"}},
		{level: "", wantMsgs: []string{"i", "w", "e"}},
		{level: "INFO", wantMsgs: []string{"i", "w", "e"}},
		{level: "warn", wantMsgs: []string{"w", "e"}},
		{level: "warning", wantMsgs: []string{"w", "e"}},
		{level: "error", wantMsgs: []string{"e"}},
		{level: "loud", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := New(&buf, tt.level)
			if tt.wantError {
				if !errors.Is(err, ErrUnknownLevel) {
					t.Fatalf("err = %v, want ErrUnknownLevel", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			l.Debug("d")
			l.Info("i")
			l.Warn("w")
			l.Error("e")
			recs := decode(t, &buf)
			if len(recs) != len(tt.wantMsgs) {
				t.Fatalf("got %d records, want %d: %v", len(recs), len(tt.wantMsgs), recs)
			}
			for i, r := range recs {
				if r["msg"] != tt.wantMsgs[i] {
					t.Errorf("record %d msg = %v, want %s", i, r["msg"], tt.wantMsgs[i])
				}
			}
		})
	}
}

func TestRequestIDInRecords(t *testing.T) {
	tests := []struct {
		name      string
		ctx       context.Context
		traceID   TraceIDFunc
		withGroup bool
		wantReq   any // nil = absent
		wantTrace any
	}{
		{name: "no id", ctx: context.Background()},
		{name: "request id", ctx: WithRequestID(context.Background(), "r1"), wantReq: "r1"},
		{
			name: "trace id", ctx: WithRequestID(context.Background(), "r2"),
			traceID: func(context.Context) string { return "t2" },
			wantReq: "r2", wantTrace: "t2",
		},
		{
			name: "after WithAttrs and WithGroup", ctx: WithRequestID(context.Background(), "r3"),
			withGroup: true, wantReq: "r3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(NewContextHandler(slog.NewJSONHandler(&buf, nil), tt.traceID))
			if tt.withGroup {
				l = l.With("svc", "x").WithGroup("g")
			}
			l.InfoContext(tt.ctx, "hello")
			rec := decode(t, &buf)[0]
			if tt.withGroup {
				g, _ := rec["g"].(map[string]any)
				rec = g // attrs added by the handler land in the open group
			}
			if rec["request_id"] != tt.wantReq {
				t.Errorf("request_id = %v, want %v (record %v)", rec["request_id"], tt.wantReq, rec)
			}
			if rec["trace_id"] != tt.wantTrace {
				t.Errorf("trace_id = %v, want %v", rec["trace_id"], tt.wantTrace)
			}
		})
	}
}

func TestRequestIDs(t *testing.T) {
	if got := RequestID(context.Background()); got != "" {
		t.Errorf("RequestID(empty) = %q", got)
	}
	if got := RequestID(WithRequestID(context.Background(), "abc")); got != "abc" {
		t.Errorf("RequestID = %q, want abc", got)
	}
	a, b := NewRequestID(), NewRequestID()
	if a == b || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a) {
		t.Errorf("NewRequestID = %q, %q; want distinct 32 hex digits", a, b)
	}
}
