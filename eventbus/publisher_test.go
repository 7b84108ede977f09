package eventbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureStreamsIdempotent(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	cfg := StreamConfig{Names: f.names, MaxAge: time.Hour, MaxBytes: 64 << 20, DuplicateWindow: time.Minute}
	for i := range 2 {
		if err := EnsureStreams(ctx, f.js, cfg); err != nil {
			t.Fatalf("EnsureStreams #%d: %v", i+1, err)
		}
	}
	s, err := f.js.Stream(ctx, f.names.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	got := s.CachedInfo().Config
	if got.Storage != jetstream.FileStorage || got.MaxAge != time.Hour || got.MaxBytes != 64<<20 ||
		got.Duplicates != time.Minute || got.Replicas != 1 || got.Subjects[0] != f.names.AllSubjects() {
		t.Errorf("events stream config = %+v", got)
	}
	d, err := f.js.Stream(ctx, f.names.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if d.CachedInfo().Config.Subjects[0] != f.names.DLQSubjectPrefix+".>" {
		t.Errorf("dlq subjects = %v", d.CachedInfo().Config.Subjects)
	}
	if err := EnsureStreams(ctx, f.js, StreamConfig{Names: Names{EventsStream: "bad.name"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("EnsureStreams(bad name) = %v, want ErrInvalidConfig", err)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	ev := f.newEvent(t, TypeMessageSent, "c1", map[string]string{"text": "once"})
	for range 3 {
		if err := f.pub.Publish(ctx, ev); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	other := f.newEvent(t, TypeMessageSent, "c1", nil)
	if err := f.pub.PublishBatch(ctx, []Event{ev, other, other}); err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if n := f.streamMsgs(t, f.names.EventsStream); n != 2 {
		t.Errorf("stream holds %d messages, want 2 (each event once)", n)
	}
	s, err := f.js.Stream(ctx, f.names.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != f.names.Subject(TypeMessageSent) || raw.Header.Get(jetstream.MsgIDHeader) != ev.ID {
		t.Errorf("stored on %s with msg id %q, want %s / %s", raw.Subject, raw.Header.Get(jetstream.MsgIDHeader), f.names.Subject(TypeMessageSent), ev.ID)
	}
	back, err := decodeEvent(raw.Data)
	if err != nil || back.ID != ev.ID || string(back.Data) != `{"text":"once"}` {
		t.Errorf("stored event = %+v, %v", back, err)
	}
}

func TestPublishErrors(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	tests := []struct {
		name    string
		pub     func() error
		wantErr error
	}{
		{name: "invalid event", pub: func() error { return f.pub.Publish(ctx, Event{ID: "x", Type: "a.*", Source: "s"}) }, wantErr: ErrInvalidEvent},
		{name: "no stream", pub: func() error {
			p, err := NewPublisher(f.nc, PublisherConfig{Names: Names{EventsStream: "NOPE", SubjectPrefix: "nope_prefix"}, Retries: 1, RetryWait: time.Millisecond, Timeout: 200 * time.Millisecond})
			if err != nil {
				return err
			}
			return p.Publish(ctx, f.newEvent(t, TypeMessageSent, "c", nil))
		}, wantErr: ErrPublish},
		{name: "cancelled context", pub: func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			return f.pub.Publish(cctx, f.newEvent(t, TypeMessageSent, "c", nil))
		}, wantErr: context.Canceled},
		{name: "realtime under durable prefix", pub: func() error {
			return f.pub.PublishRealtime(ctx, f.names.Subject("x"), []byte("{}"))
		}, wantErr: ErrInvalidSubject},
		{name: "realtime wildcard", pub: func() error { return f.pub.PublishRealtime(ctx, "rt.channel.*", nil) }, wantErr: ErrInvalidSubject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.pub(); !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPublishRealtime(t *testing.T) {
	f := newFixture(t)
	ctx := WithTraceParent(testContext(t), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	subject := RealtimeChannelSubject(f.names.SubjectPrefix + "_c1") // unique per test
	sub, err := f.nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ev := f.newEvent(t, TypeUserTyping, "c1", map[string]bool{"typing": true})
	if err := f.pub.PublishRealtimeEvent(ctx, subject, ev); err != nil {
		t.Fatal(err)
	}
	if err := f.pub.PublishRealtime(context.Background(), subject, []byte(`{"frame":1}`)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeEvent(m.Data)
	if err != nil || got.ID != ev.ID {
		t.Errorf("realtime event = %+v, %v", got, err)
	}
	if TraceParent(ExtractTrace(context.Background(), m.Header)) == "" {
		t.Error("trace context not carried on the realtime message")
	}
	m2, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m2.Data) != `{"frame":1}` || m2.Header != nil {
		t.Errorf("raw frame = %s headers %v", m2.Data, m2.Header)
	}
	if n := f.streamMsgs(t, f.names.EventsStream); n != 0 {
		t.Errorf("realtime publish stored %d messages in the event stream", n)
	}
	if RealtimeUserSubject("u1") != "rt.user.u1" || PresenceSubject("u1") != "presence.u1" {
		t.Error("realtime subject helpers changed")
	}
}

// TestPublishWaitsForStream shows the bounded retries: a publish made while
// the stream is missing succeeds once the stream appears, within the retries.
func TestPublishWaitsForStream(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	names := Names{EventsStream: f.names.EventsStream + "_late", SubjectPrefix: f.names.SubjectPrefix + "_late",
		DLQStream: f.names.DLQStream + "_late", DLQSubjectPrefix: f.names.DLQSubjectPrefix + "_late"}
	p, err := NewPublisher(f.nc, PublisherConfig{Names: names, Retries: 8, RetryWait: 50 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A plain subscriber on the subjects sees the first attempt (which no
	// stream answers); only then is the stream created, so the publish
	// succeeds through a retry.
	seen := make(chan struct{})
	sub, err := f.nc.Subscribe(names.AllSubjects(), func(*nats.Msg) {
		select {
		case <-seen:
		default:
			close(seen)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	errc := make(chan error, 1)
	go func() { errc <- p.Publish(ctx, f.newEvent(t, TypeMessageSent, "c", nil)) }()
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("publish never attempted")
	}
	if err := EnsureStreams(ctx, f.js, StreamConfig{Names: names, MaxBytes: 16 << 20, DLQMaxBytes: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range []string{names.EventsStream, names.DLQStream} {
			if err := f.js.DeleteStream(context.Background(), s); err != nil {
				t.Errorf("delete %s: %v", s, err)
			}
		}
	})
	if err := <-errc; err != nil {
		t.Fatalf("Publish with retries: %v", err)
	}
	if n := f.streamMsgs(t, names.EventsStream); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}
