package embedded

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestMinLevelHandler(t *testing.T) {
	tests := []struct {
		min  slog.Level
		want []string
	}{
		{slog.LevelInfo, []string{"i", "w", "e"}},
		{slog.LevelError, []string{"e"}},
	}
	for _, tt := range tests {
		t.Run(tt.min.String(), func(t *testing.T) {
			var buf lockedBuffer
			next := slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
			l := slog.New(minLevelHandler{Handler: next, min: tt.min}).With("k", "v").WithGroup("g")
			ctx := context.Background()
			l.DebugContext(ctx, "d")
			l.InfoContext(ctx, "i")
			l.WarnContext(ctx, "w")
			l.ErrorContext(ctx, "e", "x", 1)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d lines, want %v:\n%s", len(lines), tt.want, buf.String())
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], "msg="+w+" k=v") {
					t.Errorf("line %d = %q, want msg=%s with k=v", i, lines[i], w)
				}
				if w == "e" && !strings.HasSuffix(lines[i], "k=v g.x=1") {
					t.Errorf("line %d = %q, want the attribute in the group", i, lines[i])
				}
			}
		})
	}
}

func TestNATSLogsThroughSlog(t *testing.T) {
	var buf lockedBuffer
	n, err := StartNATS(NATSConfig{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n.Close()
	logs := buf.String()
	if !strings.Contains(logs, "component=nats") || !strings.Contains(logs, "Server is ready") {
		t.Fatalf("nats-server notices not logged through slog:\n%s", logs)
	}
}
