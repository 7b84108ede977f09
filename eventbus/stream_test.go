package eventbus

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestNames(t *testing.T) {
	var zero Names
	if got := zero.Subject(TypeMessageSent); got != "events.message.sent" {
		t.Errorf("Subject = %q", got)
	}
	if got := zero.AllSubjects(); got != "events.>" {
		t.Errorf("AllSubjects = %q", got)
	}
	if got := zero.dlqSubject("audit", TypeMessageSent); got != "dlq.audit.message.sent" {
		t.Errorf("dlqSubject = %q", got)
	}
	if got := zero.dlqSubject("audit", ""); got != "dlq.audit.unknown" {
		t.Errorf("dlqSubject(no type) = %q", got)
	}
	custom := Names{EventsStream: "E1", SubjectPrefix: "t1.ev", DLQStream: "D1", DLQSubjectPrefix: "t1.dlq"}
	tests := []struct {
		subject  string
		wantType string
		wantOK   bool
	}{
		{"t1.ev.message.sent", "message.sent", true},
		{"t1.ev.", "", false},
		{"t1.ev", "", false},
		{"t1.evx.message", "", false},
		{"rt.channel.1", "", false},
	}
	for _, tt := range tests {
		typ, ok := custom.TypeOf(tt.subject)
		if typ != tt.wantType || ok != tt.wantOK {
			t.Errorf("TypeOf(%q) = %q, %v; want %q, %v", tt.subject, typ, ok, tt.wantType, tt.wantOK)
		}
	}
}

func TestNamesValidate(t *testing.T) {
	tests := []struct {
		name  string
		names Names
		ok    bool
	}{
		{name: "defaults", ok: true},
		{name: "custom", names: Names{EventsStream: "E", SubjectPrefix: "a.b", DLQStream: "D", DLQSubjectPrefix: "a.d"}, ok: true},
		{name: "dotted stream", names: Names{EventsStream: "E.1"}},
		{name: "wildcard prefix", names: Names{SubjectPrefix: "ev.*"}},
		{name: "trailing dot", names: Names{SubjectPrefix: "ev."}},
		{name: "same prefixes", names: Names{SubjectPrefix: "x", DLQSubjectPrefix: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.names.validate()
			if (err == nil) != tt.ok {
				t.Fatalf("validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v is not ErrInvalidConfig", err)
			}
		})
	}
}

func TestStreamConfigs(t *testing.T) {
	tests := []struct {
		name    string
		cfg     StreamConfig
		wantDup time.Duration
		wantR   int
		wantAge time.Duration
	}{
		{name: "defaults", wantDup: DefaultDuplicateWindow, wantR: 1, wantAge: DefaultMaxAge},
		{name: "production", cfg: StreamConfig{Replicas: 3, MaxAge: 24 * time.Hour, DuplicateWindow: time.Hour},
			wantDup: time.Hour, wantR: 3, wantAge: 24 * time.Hour},
		{name: "window capped by age", cfg: StreamConfig{MaxAge: time.Minute, DuplicateWindow: time.Hour},
			wantDup: time.Minute, wantR: 1, wantAge: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.cfg.EventsStreamConfig()
			if ev.Name != DefaultEventsStream || ev.Subjects[0] != "events.>" {
				t.Errorf("events stream %s %v", ev.Name, ev.Subjects)
			}
			if ev.Storage != jetstream.FileStorage || ev.Retention != jetstream.LimitsPolicy {
				t.Errorf("events stream storage %v retention %v", ev.Storage, ev.Retention)
			}
			if ev.Duplicates != tt.wantDup || ev.Replicas != tt.wantR || ev.MaxAge != tt.wantAge || ev.MaxBytes != DefaultMaxBytes {
				t.Errorf("events stream dup %v replicas %d age %v bytes %d", ev.Duplicates, ev.Replicas, ev.MaxAge, ev.MaxBytes)
			}
			dlq := tt.cfg.DLQStreamConfig()
			if dlq.Name != DefaultDLQStream || dlq.Subjects[0] != "dlq.>" || dlq.MaxAge != DefaultDLQMaxAge || dlq.Replicas != tt.wantR {
				t.Errorf("dlq stream %s %v age %v replicas %d", dlq.Name, dlq.Subjects, dlq.MaxAge, dlq.Replicas)
			}
		})
	}
}
