package eventbus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestConsumerConfigDefaults(t *testing.T) {
	h := func(context.Context, Event) error { return nil }
	bh := func(context.Context, []Event) []error { return nil }
	tests := []struct {
		name    string
		cfg     ConsumerConfig
		wantErr error
		check   func(t *testing.T, c ConsumerConfig)
	}{
		{name: "no durable", cfg: ConsumerConfig{Handler: h}, wantErr: ErrInvalidConfig},
		{name: "dotted durable", cfg: ConsumerConfig{Durable: "a.b", Handler: h}, wantErr: ErrInvalidConfig},
		{name: "no handler", cfg: ConsumerConfig{Durable: "a"}, wantErr: ErrInvalidConfig},
		{name: "both handlers", cfg: ConsumerConfig{Durable: "a", Handler: h, BatchHandler: bh}, wantErr: ErrInvalidConfig},
		{name: "bad type", cfg: ConsumerConfig{Durable: "a", Handler: h, Types: []string{"a.*"}}, wantErr: ErrInvalidConfig},
		{name: "handler defaults", cfg: ConsumerConfig{Durable: "a", Handler: h}, check: func(t *testing.T, c ConsumerConfig) {
			if c.Concurrency != DefaultConcurrency || c.MaxBatch != DefaultConcurrency || c.MaxDeliver != DefaultMaxDeliver ||
				c.AckWait != DefaultAckWait || c.MaxAckPending != DefaultMaxAckPending || len(c.Backoff) != 4 {
				t.Errorf("defaults not applied: %+v", c)
			}
		}},
		{name: "batch defaults", cfg: ConsumerConfig{Durable: "a", BatchHandler: bh}, check: func(t *testing.T, c ConsumerConfig) {
			if c.Concurrency != DefaultBatchConcurrency || c.MaxBatch != DefaultMaxBatch {
				t.Errorf("batch defaults not applied: concurrency %d batch %d", c.Concurrency, c.MaxBatch)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("withDefaults() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestConsumerJetStreamConfig(t *testing.T) {
	h := func(context.Context, Event) error { return nil }
	tests := []struct {
		name        string
		cfg         ConsumerConfig
		wantFilter  string
		wantFilters []string
		wantDeliver jetstream.DeliverPolicy
	}{
		{name: "all", cfg: ConsumerConfig{Durable: "a", Handler: h}, wantFilter: "events.>", wantDeliver: jetstream.DeliverAllPolicy},
		{name: "one type", cfg: ConsumerConfig{Durable: "a", Handler: h, Types: []string{TypeMessageSent}, DeliverNew: true},
			wantFilter: "events.message.sent", wantDeliver: jetstream.DeliverNewPolicy},
		{name: "two types", cfg: ConsumerConfig{Durable: "a", Handler: h, Types: []string{TypeUserJoined, TypeUserLeft}},
			wantFilters: []string{"events.user.joined", "events.user.left"}, wantDeliver: jetstream.DeliverAllPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			jc := c.jetStreamConfig()
			if jc.FilterSubject != tt.wantFilter || fmt.Sprint(jc.FilterSubjects) != fmt.Sprint(tt.wantFilters) {
				t.Errorf("filter %q %v, want %q %v", jc.FilterSubject, jc.FilterSubjects, tt.wantFilter, tt.wantFilters)
			}
			if jc.AckPolicy != jetstream.AckExplicitPolicy || jc.DeliverPolicy != tt.wantDeliver || jc.MaxDeliver != DefaultMaxDeliver {
				t.Errorf("ack %v deliver %v maxdeliver %d", jc.AckPolicy, jc.DeliverPolicy, jc.MaxDeliver)
			}
			if len(jc.BackOff) != 0 {
				t.Errorf("BackOff set (%v): it would override AckWait", jc.BackOff)
			}
		})
	}
}

func TestBackoffSchedule(t *testing.T) {
	c := &Consumer{cfg: ConsumerConfig{Backoff: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}}}
	tests := []struct {
		deliveries uint64
		want       time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 3 * time.Second}, {10, 3 * time.Second}}
	for _, tt := range tests {
		if got := c.backoff(tt.deliveries); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.deliveries, got, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad payload")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: Permanent(nil), want: false},
		{name: "plain", err: base, want: false},
		{name: "permanent", err: Permanent(base), want: true},
		{name: "wrapped permanent", err: fmt.Errorf("handler: %w", Permanent(base)), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if tt.want && !errors.Is(tt.err, base) {
				t.Errorf("Permanent hides the cause: %v", tt.err)
			}
		})
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{OutcomeAcked: "acked", OutcomeRetry: "retry", OutcomeDeadLettered: "dead_lettered",
		OutcomeAckFailed: "ack_failed", OutcomeReleased: "released", Outcome(99): "outcome(99)"} {
		if got := o.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(o), got, want)
		}
	}
}

func TestServerAtLeast(t *testing.T) {
	tests := []struct {
		version string
		want    bool
	}{{"2.9.10", false}, {"2.10.0", true}, {"2.15.2", true}, {"3.0.0", true}, {"1.99.0", false}, {"", true}, {"dev", true}}
	for _, tt := range tests {
		if got := serverAtLeast(tt.version, 2, 10); got != tt.want {
			t.Errorf("serverAtLeast(%q, 2, 10) = %v, want %v", tt.version, got, tt.want)
		}
	}
}
