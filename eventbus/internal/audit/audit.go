// Package audit holds the rules of the event-bus service: recording every
// durable event once in an append-only audit log, searching that log, and
// deciding the fate of dead letters. It declares the small interfaces it
// needs (Storer, DeadLetterQueue); the MongoDB adapter and the JetStream
// dead-letter queue implement them. No transport or driver types appear
// here.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/parleyhq/parley/eventbus"
)

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// Filter selects events of the audit log. Zero fields match everything.
type Filter struct {
	Type    string
	Source  string
	Subject string // the subject id: a channel id, a user id
	// From is inclusive, To exclusive. The log keeps millisecond precision
	// for searching, so the bounds are too.
	From, To time.Time
}

// Cursor is the position after which a page starts: the last event of the
// previous page, in (timestamp, id) order, newest first.
type Cursor struct {
	Timestamp time.Time
	ID        string
}

// Storer is the audit log's storage.
type Storer interface {
	// Insert records events; an event already recorded (same id) counts as
	// recorded. It returns one error per event, nil for recorded ones (or
	// a nil slice when all were recorded).
	Insert(ctx context.Context, evs []eventbus.Event) []error
	// Get returns one event, or an error wrapping ErrNotFound.
	Get(ctx context.Context, id string) (eventbus.Event, error)
	// List returns up to limit events matching f, newest first (by
	// timestamp, then id), strictly after the cursor when it is not nil.
	List(ctx context.Context, f Filter, after *Cursor, limit int) ([]eventbus.Event, error)
}

// DeadLetterQueue is the dead-letter stream (eventbus.DeadLetterQueue).
type DeadLetterQueue interface {
	List(ctx context.Context, q eventbus.DeadLetterQuery) (eventbus.DeadLetterPage, error)
	Retry(ctx context.Context, seq uint64) (eventbus.DeadLetter, error)
	Discard(ctx context.Context, seq uint64) error
}

var _ DeadLetterQueue = (*eventbus.DeadLetterQueue)(nil)

// Log is the audit log and dead-letter administration.
type Log struct {
	store  Storer
	dlq    DeadLetterQueue
	logger *slog.Logger
}

// New returns the audit log on store and dlq.
func New(store Storer, dlq DeadLetterQueue, logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{store: store, dlq: dlq, logger: logger}
}

// Record stores a batch of consumed events; it is the audit consumer's
// eventbus.BatchHandler. Recording is idempotent: redeliveries and
// republished events are stored once.
func (l *Log) Record(ctx context.Context, evs []eventbus.Event) []error {
	errs := l.store.Insert(ctx, evs)
	for i, err := range errs {
		if err != nil {
			l.logger.WarnContext(ctx, "audit: record event failed", slog.String("event_id", evs[i].ID), slog.Any("error", err))
		}
	}
	return errs
}

// EventPage is one page of ListEvents.
type EventPage struct {
	Events []eventbus.Event
	// NextPageToken continues the listing; "" on the last page.
	NextPageToken string
}

// ListEvents searches the audit log, newest first.
func (l *Log) ListEvents(ctx context.Context, f Filter, pageToken string, pageSize int) (EventPage, error) {
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return EventPage{}, fmt.Errorf("%w: the end of the time range must be after its start", ErrInvalidArgument)
	}
	size, err := pageSizeOf(pageSize)
	if err != nil {
		return EventPage{}, err
	}
	after, err := decodeEventToken(pageToken)
	if err != nil {
		return EventPage{}, err
	}
	// One more than asked tells whether another page exists.
	evs, err := l.store.List(ctx, f, after, size+1)
	if err != nil {
		return EventPage{}, fmt.Errorf("audit: list events: %w", err)
	}
	var page EventPage
	if len(evs) > size {
		evs = evs[:size]
		last := evs[size-1]
		page.NextPageToken = encodeEventToken(Cursor{Timestamp: last.Timestamp, ID: last.ID})
	}
	page.Events = evs
	return page, nil
}

// GetEvent returns one event of the log.
func (l *Log) GetEvent(ctx context.Context, id string) (eventbus.Event, error) {
	if id == "" {
		return eventbus.Event{}, fmt.Errorf("%w: empty event id", ErrInvalidArgument)
	}
	ev, err := l.store.Get(ctx, id)
	if err != nil {
		return eventbus.Event{}, fmt.Errorf("audit: get event %s: %w", id, err)
	}
	return ev, nil
}

// DeadLetterPage is one page of ListDeadLetters.
type DeadLetterPage struct {
	DeadLetters   []eventbus.DeadLetter
	NextPageToken string
}

// ListDeadLetters lists the dead letters, newest first.
func (l *Log) ListDeadLetters(ctx context.Context, pageToken string, pageSize int) (DeadLetterPage, error) {
	size, err := pageSizeOf(pageSize)
	if err != nil {
		return DeadLetterPage{}, err
	}
	cursor, err := decodeSeqToken(pageToken)
	if err != nil {
		return DeadLetterPage{}, err
	}
	p, err := l.dlq.List(ctx, eventbus.DeadLetterQuery{Cursor: cursor, Limit: size, NewestFirst: true})
	if err != nil {
		return DeadLetterPage{}, fmt.Errorf("audit: list dead letters: %w", err)
	}
	page := DeadLetterPage{DeadLetters: p.DeadLetters}
	if p.Next != 0 {
		page.NextPageToken = encodeSeqToken(p.Next)
	}
	return page, nil
}

// RetryDeadLetter republishes a dead letter's event and removes it.
func (l *Log) RetryDeadLetter(ctx context.Context, id string) error {
	seq, err := DeadLetterSeq(id)
	if err != nil {
		return err
	}
	dl, err := l.dlq.Retry(ctx, seq)
	if err != nil {
		return fmt.Errorf("audit: retry dead letter %s: %w", id, err)
	}
	l.logger.InfoContext(ctx, "audit: dead letter retried", slog.String("dead_letter_id", id),
		slog.String("event_id", dl.Event.ID), slog.String("consumer", dl.Consumer))
	return nil
}

// DiscardDeadLetter removes a dead letter without retrying it.
func (l *Log) DiscardDeadLetter(ctx context.Context, id string) error {
	seq, err := DeadLetterSeq(id)
	if err != nil {
		return err
	}
	if err := l.dlq.Discard(ctx, seq); err != nil {
		return fmt.Errorf("audit: discard dead letter %s: %w", id, err)
	}
	l.logger.InfoContext(ctx, "audit: dead letter discarded", slog.String("dead_letter_id", id))
	return nil
}

// DeadLetterID is the public id of a dead letter: its DLQ sequence.
func DeadLetterID(seq uint64) string { return strconv.FormatUint(seq, 10) }

// DeadLetterSeq parses a dead-letter id.
func DeadLetterSeq(id string) (uint64, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil || seq == 0 {
		// A well-formed id of something that cannot exist is "not found".
		return 0, fmt.Errorf("%w: dead letter %q", ErrNotFound, id)
	}
	return seq, nil
}

func pageSizeOf(n int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("%w: negative page size", ErrInvalidArgument)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return n, nil
}

// Page tokens are opaque to clients: base64url of a small JSON document, so
// their format can change without breaking anyone who treats them as such.
type eventToken struct {
	T int64  `json:"t"` // unix nanoseconds
	I string `json:"i"`
}

func encodeEventToken(c Cursor) string {
	b, _ := json.Marshal(eventToken{T: c.Timestamp.UnixNano(), I: c.ID}) // two plain fields cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeEventToken(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var tok eventToken
	if err == nil {
		err = json.Unmarshal(b, &tok)
	}
	if err != nil || tok.I == "" {
		return nil, fmt.Errorf("%w: bad page token", ErrInvalidArgument)
	}
	return &Cursor{Timestamp: time.Unix(0, tok.T).UTC(), ID: tok.I}, nil
}

func encodeSeqToken(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("dlq:" + strconv.FormatUint(seq, 10)))
}

func decodeSeqToken(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil && len(b) > 4 && string(b[:4]) == "dlq:" {
		if seq, perr := strconv.ParseUint(string(b[4:]), 10, 64); perr == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, fmt.Errorf("%w: bad page token", ErrInvalidArgument)
}
