package eventbus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for names and stream limits. Zero values in the config structs
// mean these.
const (
	DefaultEventsStream     = "EVENTS"
	DefaultSubjectPrefix    = "events"
	DefaultDLQStream        = "DLQ"
	DefaultDLQSubjectPrefix = "dlq"

	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultMaxBytes        = 1 << 30 // 1 GiB
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultDLQMaxAge       = 30 * 24 * time.Hour
	DefaultDLQMaxBytes     = 256 << 20 // 256 MiB
)

// Names says where events live on the server. Every name is configurable so
// that tests (and several deployments) can share one NATS server without
// colliding. The zero value means the production names.
type Names struct {
	// EventsStream is the durable event stream (default "EVENTS").
	EventsStream string
	// SubjectPrefix is prepended to the event type: events.<type> (default "events").
	SubjectPrefix string
	// DLQStream holds dead letters (default "DLQ").
	DLQStream string
	// DLQSubjectPrefix: dead letters are stored on <prefix>.<consumer>.<type> (default "dlq").
	DLQSubjectPrefix string
}

// WithDefaults fills empty names with the defaults.
func (n Names) WithDefaults() Names {
	if n.EventsStream == "" {
		n.EventsStream = DefaultEventsStream
	}
	if n.SubjectPrefix == "" {
		n.SubjectPrefix = DefaultSubjectPrefix
	}
	if n.DLQStream == "" {
		n.DLQStream = DefaultDLQStream
	}
	if n.DLQSubjectPrefix == "" {
		n.DLQSubjectPrefix = DefaultDLQSubjectPrefix
	}
	return n
}

// Subject returns the NATS subject of an event type: <prefix>.<type>.
func (n Names) Subject(typ string) string {
	return n.WithDefaults().SubjectPrefix + "." + typ
}

// AllSubjects returns the wildcard covering every event: <prefix>.>.
func (n Names) AllSubjects() string {
	return n.WithDefaults().SubjectPrefix + ".>"
}

// TypeOf returns the event type of a subject under the prefix, and false for
// a subject outside it.
func (n Names) TypeOf(subject string) (string, bool) {
	p := n.WithDefaults().SubjectPrefix + "."
	if !strings.HasPrefix(subject, p) || len(subject) == len(p) {
		return "", false
	}
	return subject[len(p):], true
}

// dlqSubject is where a consumer's dead letter for an event type goes.
func (n Names) dlqSubject(consumer, typ string) string {
	if typ == "" {
		typ = "unknown"
	}
	return n.WithDefaults().DLQSubjectPrefix + "." + consumer + "." + typ
}

// dlqFilter matches the dead letters of one consumer, or of all when consumer is "".
func (n Names) dlqFilter(consumer string) string {
	n = n.WithDefaults()
	if consumer == "" {
		return n.DLQSubjectPrefix + ".>"
	}
	return n.DLQSubjectPrefix + "." + consumer + ".>"
}

func (n Names) validate() error {
	n = n.WithDefaults()
	for _, s := range []string{n.EventsStream, n.DLQStream} {
		if strings.ContainsAny(s, ".*> \t") {
			return fmt.Errorf("%w: stream name %q", ErrInvalidConfig, s)
		}
	}
	for _, p := range []string{n.SubjectPrefix, n.DLQSubjectPrefix} {
		if strings.ContainsAny(p, "*> \t") || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
			return fmt.Errorf("%w: subject prefix %q", ErrInvalidConfig, p)
		}
	}
	if n.SubjectPrefix == n.DLQSubjectPrefix {
		return fmt.Errorf("%w: event and dead-letter prefixes must differ", ErrInvalidConfig)
	}
	return nil
}

// StreamConfig sizes the streams. Zero values mean the defaults above.
type StreamConfig struct {
	Names

	// Replicas is the stream replication factor: 1 in development, 3 in a
	// production cluster (default 1).
	Replicas int
	// MaxAge and MaxBytes bound the event stream; the oldest events are
	// dropped first. Consumers that fall further behind than this lose
	// events, so size them for the longest outage you want to survive.
	MaxAge   time.Duration
	MaxBytes int64
	// DuplicateWindow is how long a published event id is remembered for
	// de-duplication (default 10m): retries and outbox relays within it
	// never store an event twice.
	DuplicateWindow time.Duration
	// DLQMaxAge and DLQMaxBytes bound the dead-letter stream (default 30
	// days, 256 MiB); dead letters otherwise stay until retried or discarded.
	DLQMaxAge   time.Duration
	DLQMaxBytes int64
}

func (c StreamConfig) withDefaults() StreamConfig {
	c.Names = c.Names.WithDefaults()
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.DLQMaxAge <= 0 {
		c.DLQMaxAge = DefaultDLQMaxAge
	}
	if c.DLQMaxBytes == 0 {
		c.DLQMaxBytes = DefaultDLQMaxBytes
	}
	return c
}

// EventsStreamConfig returns the JetStream configuration of the event stream.
func (c StreamConfig) EventsStreamConfig() jetstream.StreamConfig {
	c = c.withDefaults()
	dup := c.DuplicateWindow
	if dup > c.MaxAge {
		dup = c.MaxAge // the server rejects a window longer than the age limit
	}
	return jetstream.StreamConfig{
		Name:        c.EventsStream,
		Description: "Parley durable events (envelope JSON, Nats-Msg-Id = event id)",
		Subjects:    []string{c.AllSubjects()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  dup,
	}
}

// DLQStreamConfig returns the JetStream configuration of the dead-letter stream.
func (c StreamConfig) DLQStreamConfig() jetstream.StreamConfig {
	c = c.withDefaults()
	dup := c.DuplicateWindow
	if dup > c.DLQMaxAge {
		dup = c.DLQMaxAge
	}
	return jetstream.StreamConfig{
		Name:        c.DLQStream,
		Description: "Parley dead letters: events a consumer could not process",
		// The max-deliveries advisories of the event stream's consumers are
		// captured too: the server sends them only to current listeners, and
		// one fired while every consumer instance was down must not be lost.
		Subjects:   []string{c.dlqFilter(""), maxDeliveriesSubject(c.EventsStream, "*")},
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		MaxAge:     c.DLQMaxAge,
		MaxBytes:   c.DLQMaxBytes,
		Discard:    jetstream.DiscardOld,
		Duplicates: dup,
	}
}

// EnsureStreams creates the event and dead-letter streams, or updates them
// to match cfg. It is idempotent: every service may call it at startup.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	if err := cfg.Names.validate(); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	for _, sc := range []jetstream.StreamConfig{cfg.EventsStreamConfig(), cfg.DLQStreamConfig()} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("eventbus: ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// defaultAPITimeout bounds JetStream API calls made without a deadline.
const defaultAPITimeout = 10 * time.Second

// withDefaultTimeout adds d to ctx unless it already has a deadline, so that
// every network call is bounded even when the caller forgot.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
