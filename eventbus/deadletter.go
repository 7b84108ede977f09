package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReasonMaxDeliveriesNoResult is the reason recorded for an event whose last
// delivery never produced a handler result (the process died, or the handler
// outlived AckWait), found through JetStream's max-deliveries advisory.
const ReasonMaxDeliveriesNoResult = "max deliveries exceeded without a result"

// permanentError marks a handler error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that the consumer dead-letters the event at once
// instead of retrying it (a malformed payload, a reference that will never
// exist). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent anywhere in its
// chain.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// DeadLetter is an event a consumer gave up on, as stored in the DLQ stream.
type DeadLetter struct {
	// Seq is the record's sequence in the DLQ stream: its id.
	Seq uint64 `json:"-"`
	// Event is the original event. It is the zero Event when the original
	// payload was not a valid envelope; Payload holds it then.
	Event   Event  `json:"event"`
	Payload []byte `json:"payload,omitempty"`
	// Subject is the original NATS subject, where a retry republishes.
	Subject        string    `json:"subject"`
	Stream         string    `json:"stream"`
	StreamSequence uint64    `json:"stream_sequence"`
	Consumer       string    `json:"consumer"`
	Deliveries     uint64    `json:"deliveries"`
	Reason         string    `json:"reason"`
	FailedAt       time.Time `json:"failed_at"`

	header nats.Header // the original trace headers, replayed on retry
}

// deadLetterMsgID makes recording idempotent: the handler's last failure and
// the max-deliveries advisory may both report the same event, and so may a
// redelivery after a failed Term.
func deadLetterMsgID(stream, consumer string, seq uint64) string {
	return "dlq." + stream + "." + consumer + "." + strconv.FormatUint(seq, 10)
}

// deadLetter records a failed delivery in the DLQ stream and waits for the ack.
func (c *Consumer) deadLetter(ctx context.Context, d delivery, reason string) error {
	dl := DeadLetter{
		Event:          d.ev,
		Subject:        d.msg.Subject(),
		Stream:         c.cfg.Names.EventsStream,
		StreamSequence: d.streamSeq,
		Consumer:       c.cfg.Durable,
		Deliveries:     d.deliveries,
		Reason:         reason,
		FailedAt:       c.cfg.Now().UTC(),
		header:         d.msg.Headers(),
	}
	if d.decodeErr != nil {
		dl.Payload = d.msg.Data()
	}
	return c.recordDeadLetter(ctx, dl)
}

func (c *Consumer) recordDeadLetter(ctx context.Context, dl DeadLetter) error {
	body, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("eventbus: encode dead letter: %w", err)
	}
	msg := &nats.Msg{Subject: c.cfg.Names.dlqSubject(dl.Consumer, dl.Event.Type), Data: body, Header: nats.Header{}}
	for _, h := range []string{HeaderTraceParent, HeaderTraceState} {
		if v := dl.header.Get(h); v != "" {
			msg.Header.Set(h, v)
		}
	}
	msg.Header.Set(jetstream.MsgIDHeader, deadLetterMsgID(dl.Stream, dl.Consumer, dl.StreamSequence))
	if _, err := c.pub.publishTo(ctx, msg, c.cfg.Names.DLQStream); err != nil {
		return fmt.Errorf("eventbus: record dead letter: %w", err)
	}
	return nil
}

// maxDeliveriesAdvisory is the part of JetStream's
// io.nats.jetstream.advisory.v1.max_deliver advisory we use.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// maxDeliveriesSubject is the subject of JetStream's max-deliveries
// advisory for a consumer of stream ("*" for all of them).
func maxDeliveriesSubject(stream, consumer string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + "." + consumer
}

// advisoryConsumerName is the durable that reads a consumer's captured
// max-deliveries advisories from the DLQ stream.
func advisoryConsumerName(durable string) string { return durable + "_maxdeliver" }

// runAdvisories handles this consumer's max-deliveries advisories. The
// server emits one when an event has used all its deliveries without being
// acked or terminated: on AckWait expiry of the last delivery (nats-server
// 2.10+) or on the next pull after it (older servers). When the handler
// settled that last delivery the event is already dead-lettered; when it
// did not (the process died, the handler hung), nobody recorded it, and
// this does. Advisories are only sent to current listeners, so the DLQ
// stream captures them (see StreamConfig): one that fires while every
// instance is down is handled after the restart. The durable advisory
// consumer is shared by all instances, so each advisory is handled once,
// and the dead letter's message id makes a double recording harmless anyway.
func (c *Consumer) runAdvisories(ctx, workCtx context.Context) {
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		pullCtx, cancelPull := context.WithTimeout(ctx, c.cfg.PullWait)
		batch, err := c.adv.Fetch(16, jetstream.FetchContext(pullCtx))
		if err == nil {
			for m := range batch.Messages() {
				c.settleAdvisory(workCtx, m)
			}
			err = batch.Error()
		}
		cancelPull()
		if err == nil || isPullEnd(err) || ctx.Err() != nil {
			wait = 50 * time.Millisecond
			continue
		}
		if c.nc.IsClosed() || errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return // Run reports the broken connection or consumer
		}
		c.cfg.Logger.WarnContext(ctx, "eventbus: pull advisories failed", slog.String("consumer", c.cfg.Durable), slog.Any("error", err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait = min(wait*2, 5*time.Second)
	}
}

func (c *Consumer) settleAdvisory(ctx context.Context, m jetstream.Msg) {
	actx, cancel := context.WithTimeout(ctx, defaultAPITimeout)
	defer cancel()
	if err := c.onMaxDeliveries(actx, m.Data()); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "eventbus: dead-letter from max-deliveries advisory failed, will retry",
			slog.String("consumer", c.cfg.Durable), slog.Any("error", err))
		if err := m.NakWithDelay(time.Second); err != nil {
			c.cfg.Logger.WarnContext(ctx, "eventbus: nak advisory", slog.Any("error", err))
		}
		return
	}
	if err := m.DoubleAck(actx); err != nil {
		c.cfg.Logger.WarnContext(ctx, "eventbus: ack advisory", slog.Any("error", err))
		return
	}
	// The advisory has served its purpose; keep the DLQ stream to dead letters.
	if md, err := m.Metadata(); err == nil {
		if err := c.dlqStream.DeleteMsg(actx, md.Sequence.Stream); err != nil {
			c.cfg.Logger.DebugContext(ctx, "eventbus: delete handled advisory", slog.Any("error", err))
		}
	}
}

// onMaxDeliveries records the dead letter an advisory describes. An
// advisory that cannot be parsed or is not ours is dropped (nil error).
func (c *Consumer) onMaxDeliveries(ctx context.Context, data []byte) error {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(data, &adv); err != nil {
		c.cfg.Logger.WarnContext(ctx, "eventbus: bad max-deliveries advisory", slog.Any("error", err))
		return nil
	}
	if adv.Stream != c.cfg.Names.EventsStream || adv.Consumer != c.cfg.Durable {
		return nil
	}
	dl := DeadLetter{
		Stream:         adv.Stream,
		StreamSequence: adv.StreamSeq,
		Consumer:       adv.Consumer,
		Deliveries:     adv.Deliveries,
		Reason:         ReasonMaxDeliveriesNoResult,
		FailedAt:       c.cfg.Now().UTC(),
	}
	raw, err := c.stream.GetMsg(ctx, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		dl.Reason += "; the original is no longer in the stream"
	case err != nil:
		return fmt.Errorf("fetch event %d: %w", adv.StreamSeq, err)
	default:
		dl.Subject = raw.Subject
		dl.header = raw.Header
		if ev, derr := decodeEvent(raw.Data); derr == nil {
			dl.Event = ev
		} else {
			dl.Payload = raw.Data
		}
	}
	if err := c.recordDeadLetter(ctx, dl); err != nil {
		return err
	}
	c.cfg.Logger.WarnContext(ctx, "eventbus: event dead-lettered after max deliveries without a result",
		slog.String("consumer", c.cfg.Durable), slog.String("event_id", dl.Event.ID), slog.Uint64("stream_seq", adv.StreamSeq))
	c.report(Result{Event: dl.Event, Outcome: OutcomeDeadLettered, Err: errors.New(dl.Reason),
		Deliveries: adv.Deliveries, StreamSeq: adv.StreamSeq})
	return nil
}

// DeadLetterQueue lists, retries and discards dead letters. The DLQ stream is
// the source of truth: a record stays there until it is retried, discarded,
// or aged out by the stream's limits.
type DeadLetterQueue struct {
	names Names
	js    jetstream.JetStream
	pub   *Publisher
}

// NewDeadLetterQueue returns the admin view of the DLQ stream.
func NewDeadLetterQueue(nc *nats.Conn, names Names) (*DeadLetterQueue, error) {
	pub, err := NewPublisher(nc, PublisherConfig{Names: names})
	if err != nil {
		return nil, err
	}
	return &DeadLetterQueue{names: pub.cfg.Names, js: pub.js, pub: pub}, nil
}

// DeadLetterPage is one page of List.
type DeadLetterPage struct {
	DeadLetters []DeadLetter
	// Next is the Cursor of the next page; 0 on the last page.
	Next uint64
}

// DeadLetterQuery selects a page of dead letters.
type DeadLetterQuery struct {
	// Consumer restricts the list to one consumer's dead letters ("" = all).
	Consumer string
	// Cursor is the Next of the previous page; 0 for the first page.
	Cursor uint64
	// Limit is the page size (default 50).
	Limit int
	// NewestFirst lists the most recent dead letters first; the default is
	// oldest first.
	NewestFirst bool
}

// List returns one page of dead letters.
func (q *DeadLetterQueue) List(ctx context.Context, query DeadLetterQuery) (DeadLetterPage, error) {
	if query.Limit <= 0 {
		query.Limit = 50
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	stream, err := q.js.Stream(ctx, q.names.DLQStream)
	if err != nil {
		return DeadLetterPage{}, fmt.Errorf("eventbus: dead letters: %w", err)
	}
	if query.NewestFirst {
		return q.listNewest(ctx, stream, query)
	}
	filter := q.names.dlqFilter(query.Consumer)
	var page DeadLetterPage
	seq := query.Cursor + 1
	for {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return page, nil
		}
		if err != nil {
			return DeadLetterPage{}, fmt.Errorf("eventbus: dead letters: %w", err)
		}
		if len(page.DeadLetters) == query.Limit {
			// There is at least one more: the page is full and not the last.
			page.Next = page.DeadLetters[query.Limit-1].Seq
			return page, nil
		}
		dl, err := decodeDeadLetter(raw)
		if err != nil {
			return DeadLetterPage{}, err
		}
		page.DeadLetters = append(page.DeadLetters, dl)
		seq = raw.Sequence + 1
	}
}

// listNewest walks the stream backwards. JetStream has no "previous message
// on subject" lookup, so it reads sequence by sequence, skipping those the
// stream reports as deleted (retried and discarded dead letters). The DLQ
// is small and rarely has anything but dead letters in it, so a page costs
// about one request per dead letter.
func (q *DeadLetterQueue) listNewest(ctx context.Context, stream jetstream.Stream, query DeadLetterQuery) (DeadLetterPage, error) {
	info, err := stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return DeadLetterPage{}, fmt.Errorf("eventbus: dead letters: %w", err)
	}
	deleted := make(map[uint64]bool, len(info.State.Deleted))
	for _, s := range info.State.Deleted {
		deleted[s] = true
	}
	prefix := q.names.dlqFilter(query.Consumer)
	prefix = prefix[:len(prefix)-1] // "dlq.>" -> "dlq.", "dlq.c.>" -> "dlq.c."
	seq := info.State.LastSeq
	if query.Cursor > 0 && query.Cursor-1 < seq {
		seq = query.Cursor - 1
	}
	var page DeadLetterPage
	for ; seq >= info.State.FirstSeq && seq > 0; seq-- {
		if deleted[seq] {
			continue
		}
		raw, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted or aged out since Info
		}
		if err != nil {
			return DeadLetterPage{}, fmt.Errorf("eventbus: dead letters: %w", err)
		}
		if !strings.HasPrefix(raw.Subject, prefix) {
			continue
		}
		if len(page.DeadLetters) == query.Limit {
			page.Next = page.DeadLetters[query.Limit-1].Seq
			return page, nil
		}
		dl, err := decodeDeadLetter(raw)
		if err != nil {
			return DeadLetterPage{}, err
		}
		page.DeadLetters = append(page.DeadLetters, dl)
	}
	return page, nil
}

// Get returns one dead letter.
func (q *DeadLetterQueue) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	stream, err := q.js.Stream(ctx, q.names.DLQStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("eventbus: dead letter %d: %w", seq, err)
	}
	return q.get(ctx, stream, seq)
}

func (q *DeadLetterQueue) get(ctx context.Context, stream jetstream.Stream, seq uint64) (DeadLetter, error) {
	if seq == 0 {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	raw, err := stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("eventbus: dead letter %d: %w", seq, err)
	}
	if !strings.HasPrefix(raw.Subject, q.names.DLQSubjectPrefix+".") {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	return decodeDeadLetter(raw)
}

func decodeDeadLetter(raw *jetstream.RawStreamMsg) (DeadLetter, error) {
	var dl DeadLetter
	if err := json.Unmarshal(raw.Data, &dl); err != nil {
		return DeadLetter{}, fmt.Errorf("eventbus: decode dead letter %d: %w", raw.Sequence, err)
	}
	dl.Seq = raw.Sequence
	dl.header = raw.Header
	return dl, nil
}

// Retry republishes the original event to its original subject, so every
// consumer of that subject receives it again (they are idempotent by event
// id), then removes the dead letter. The republish uses a new Nats-Msg-Id,
// <event id>.retry.<dead letter seq>, since the original id may still be in
// the duplicate window; the body keeps the original event id. Retrying the
// same dead letter twice within the window publishes once.
func (q *DeadLetterQueue) Retry(ctx context.Context, seq uint64) (DeadLetter, error) {
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	stream, err := q.js.Stream(ctx, q.names.DLQStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("eventbus: retry dead letter %d: %w", seq, err)
	}
	dl, err := q.get(ctx, stream, seq)
	if err != nil {
		return DeadLetter{}, err
	}
	payload := dl.Payload
	if payload == nil {
		if payload, err = dl.Event.marshal(); err != nil {
			return DeadLetter{}, err
		}
	}
	subject := dl.Subject
	if subject == "" {
		subject = q.names.Subject(dl.Event.Type)
	}
	if _, ok := q.names.TypeOf(subject); !ok {
		return DeadLetter{}, fmt.Errorf("%w: dead letter %d has subject %q outside %q", ErrInvalidSubject, seq, subject, q.names.SubjectPrefix)
	}
	id := dl.Event.ID
	if id == "" {
		id = "undecodable"
	}
	msgID := id + ".retry." + strconv.FormatUint(seq, 10)
	if err := q.pub.republish(ctx, subject, payload, dl.header, msgID); err != nil {
		return DeadLetter{}, fmt.Errorf("eventbus: retry dead letter %d: %w", seq, err)
	}
	if err := q.delete(ctx, stream, seq); err != nil {
		return DeadLetter{}, err
	}
	return dl, nil
}

// Discard removes a dead letter without retrying it.
func (q *DeadLetterQueue) Discard(ctx context.Context, seq uint64) error {
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	stream, err := q.js.Stream(ctx, q.names.DLQStream)
	if err != nil {
		return fmt.Errorf("eventbus: discard dead letter %d: %w", seq, err)
	}
	if _, err := q.get(ctx, stream, seq); err != nil {
		return err
	}
	return q.delete(ctx, stream, seq)
}

func (q *DeadLetterQueue) delete(ctx context.Context, stream jetstream.Stream, seq uint64) error {
	if err := stream.DeleteMsg(ctx, seq); err != nil {
		// A concurrent retry or discard got there first.
		if _, gerr := q.get(ctx, stream, seq); errors.Is(gerr, ErrDeadLetterNotFound) {
			return nil
		}
		return fmt.Errorf("eventbus: delete dead letter %d: %w", seq, err)
	}
	return nil
}
