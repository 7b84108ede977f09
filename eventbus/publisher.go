package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher defaults.
const (
	DefaultPublishTimeout = 5 * time.Second
	DefaultPublishRetries = 3
	DefaultRetryWait      = 100 * time.Millisecond
)

// PublisherConfig configures a Publisher. Zero values mean the defaults.
type PublisherConfig struct {
	Names Names
	// Timeout bounds each attempt when ctx has no earlier deadline (default 5s).
	Timeout time.Duration
	// Retries is the number of attempts after the first (default 3; a
	// negative value means none). Each retry reuses the event id as
	// Nats-Msg-Id, so a retry of a publish that did reach the stream is
	// dropped by JetStream's duplicate window instead of stored twice.
	Retries int
	// RetryWait is the pause before the first retry; it doubles per retry
	// (default 100ms).
	RetryWait time.Duration
	Logger    *slog.Logger
}

// Publisher publishes durable events to JetStream and realtime messages on
// core NATS. It is safe for concurrent use.
type Publisher struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg PublisherConfig
}

// NewPublisher returns a publisher on nc. It does not create streams: call
// EnsureStreams once at startup.
func NewPublisher(nc *nats.Conn, cfg PublisherConfig) (*Publisher, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil NATS connection", ErrInvalidConfig)
	}
	if err := cfg.Names.validate(); err != nil {
		return nil, err
	}
	cfg.Names = cfg.Names.WithDefaults()
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPublishTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultPublishRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.RetryWait <= 0 {
		cfg.RetryWait = DefaultRetryWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventbus: jetstream: %w", err)
	}
	return &Publisher{nc: nc, js: js, cfg: cfg}, nil
}

// Names returns the names the publisher writes to.
func (p *Publisher) Names() Names { return p.cfg.Names }

// Publish stores ev in the event stream on <prefix>.<type> and waits for the
// JetStream acknowledgement. The event id is the Nats-Msg-Id, so publishing
// the same event twice (a retry, an outbox relay) stores it once. The trace
// context of ctx, if any, travels in the headers.
func (p *Publisher) Publish(ctx context.Context, ev Event) error {
	msg, err := p.eventMsg(ctx, ev, p.cfg.Names.Subject(ev.Type), ev.ID)
	if err != nil {
		return err
	}
	_, err = p.publishMsg(ctx, msg)
	return err
}

// PublishBatch publishes events without waiting for each acknowledgement
// before sending the next, then waits for all of them; failed ones are
// retried one by one. It returns when every event is stored or ctx ends.
// Use it for bursts (outbox relays, imports); ordering between the events
// of a batch is not guaranteed when some have to be retried.
func (p *Publisher) PublishBatch(ctx context.Context, evs []Event) error {
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		m, err := p.eventMsg(ctx, ev, p.cfg.Names.Subject(ev.Type), ev.ID)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	var failed []*nats.Msg
	for i, m := range msgs {
		f, err := p.js.PublishMsgAsync(m, jetstream.WithMsgID(m.Header.Get(jetstream.MsgIDHeader)),
			jetstream.WithExpectStream(p.cfg.Names.EventsStream))
		if err != nil {
			failed = append(failed, m)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case <-f.Err():
			failed = append(failed, msgs[i])
		case <-actx.Done():
			failed = append(failed, msgs[i])
		}
	}
	for _, m := range failed {
		if _, err := p.publishMsg(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// republish sends an existing envelope again under a new message id, used
// when retrying a dead letter: the original id would be swallowed by the
// duplicate window.
func (p *Publisher) republish(ctx context.Context, subject string, payload []byte, header nats.Header, msgID string) error {
	msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{}}
	for k, v := range header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		msg.Header[k] = v
	}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	_, err := p.publishMsg(ctx, msg)
	return err
}

func (p *Publisher) eventMsg(ctx context.Context, ev Event, subject, msgID string) (*nats.Msg, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	if ev.Version == 0 {
		ev.Version = CurrentVersion
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now().UTC()
	}
	body, err := ev.marshal()
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	InjectTrace(ctx, msg.Header)
	return msg, nil
}

// publishMsg publishes to the event stream; see publishTo.
func (p *Publisher) publishMsg(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	return p.publishTo(ctx, msg, p.cfg.Names.EventsStream)
}

// publishTo publishes msg, which must be captured by stream, with bounded
// retries; each attempt has a deadline. The message id header must be set.
func (p *Publisher) publishTo(ctx context.Context, msg *nats.Msg, stream string) (*jetstream.PubAck, error) {
	msgID := msg.Header.Get(jetstream.MsgIDHeader)
	wait := p.cfg.RetryWait
	var lastErr error
	for attempt := 0; attempt <= p.cfg.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w: %s: %w (last error: %w)", ErrPublish, msg.Subject, ctx.Err(), lastErr)
			case <-t.C:
			}
			wait *= 2
		}
		actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		ack, err := p.js.PublishMsg(actx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(stream))
		cancel()
		if err == nil {
			return ack, nil
		}
		lastErr = err
		if ctx.Err() != nil || !retryable(err) {
			break
		}
		p.cfg.Logger.WarnContext(ctx, "eventbus: publish failed, retrying",
			slog.String("subject", msg.Subject), slog.String("msg_id", msgID),
			slog.Int("attempt", attempt+1), slog.Any("error", err))
	}
	return nil, fmt.Errorf("%w: %s (msg id %s): %w", ErrPublish, msg.Subject, msgID, lastErr)
}

// retryable tells transient failures (timeouts, no responders during a
// leader election, a reconnecting client) from answers that will not change,
// such as a subject no stream captures.
func retryable(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 503-ish API errors (no leader, insufficient resources right now)
		// are worth retrying; 4xx answers are not.
		return apiErr.Code >= 500
	}
	return !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubject)
}

// PublishRealtime publishes data on a core NATS subject (rt.channel.<id>,
// rt.user.<id>, presence.<id>, ...): fire and forget, delivered only to
// current subscribers, never stored. Subjects under the durable event prefix
// are refused, since the event stream would capture them without an ack.
func (p *Publisher) PublishRealtime(ctx context.Context, subject string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if subject == "" || strings.ContainsAny(subject, "*> \t\r\n") {
		return fmt.Errorf("%w: %q", ErrInvalidSubject, subject)
	}
	if _, ok := p.cfg.Names.TypeOf(subject); ok || subject == p.cfg.Names.SubjectPrefix {
		return fmt.Errorf("%w: %q is under the durable prefix %q; use Publish", ErrInvalidSubject, subject, p.cfg.Names.SubjectPrefix)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	InjectTrace(ctx, msg.Header)
	if len(msg.Header) == 0 {
		msg.Header = nil // headers cost bytes on every fan-out frame
	}
	if err := p.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("eventbus: realtime publish %s: %w", subject, err)
	}
	return nil
}

// PublishRealtimeEvent publishes ev's envelope on a core NATS subject; see
// PublishRealtime.
func (p *Publisher) PublishRealtimeEvent(ctx context.Context, subject string, ev Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	body, err := ev.marshal()
	if err != nil {
		return err
	}
	return p.PublishRealtime(ctx, subject, body)
}

// Realtime subjects used by the gateway fan-out and presence.
const (
	RealtimeChannelPrefix = "rt.channel."
	RealtimeUserPrefix    = "rt.user."
	PresencePrefix        = "presence."
)

// RealtimeChannelSubject is the core NATS subject of a channel's live frames.
func RealtimeChannelSubject(channelID string) string { return RealtimeChannelPrefix + channelID }

// RealtimeUserSubject is the core NATS subject of a user's live frames.
func RealtimeUserSubject(userID string) string { return RealtimeUserPrefix + userID }

// PresenceSubject is the core NATS subject of a user's presence changes.
func PresenceSubject(userID string) string { return PresencePrefix + userID }
