package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer defaults.
const (
	DefaultConcurrency      = 8
	DefaultBatchConcurrency = 512
	DefaultMaxBatch         = 256
	DefaultMaxAckPending    = 1000
	DefaultMaxDeliver       = 5
	DefaultAckWait          = 30 * time.Second
	DefaultPullWait         = 2 * time.Second
	DefaultBatchLinger      = 5 * time.Millisecond
)

// DefaultBackoff is the redelivery schedule after a handler error: the n-th
// failed delivery is redelivered after DefaultBackoff[n-1], the last value
// repeating.
func DefaultBackoff() []time.Duration {
	return []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
}

// Handler processes one event. Returning nil acknowledges it. Any other
// error schedules a redelivery after the backoff for that attempt, until
// MaxDeliver deliveries have failed; then the event is dead-lettered. An
// error wrapped with Permanent is dead-lettered at once.
//
// ctx carries the trace context of the publisher and a deadline of AckWait:
// after that JetStream redelivers the event anyway.
type Handler func(ctx context.Context, ev Event) error

// BatchHandler processes the events of one pull at once (for example one
// InsertMany). It returns nil when every event succeeded, or one error per
// event (nil for those that succeeded). Each event is then settled as with
// Handler.
type BatchHandler func(ctx context.Context, evs []Event) []error

// Outcome is what happened to one delivery.
type Outcome int

// Outcomes reported through ConsumerConfig.OnResult.
const (
	// OutcomeAcked: the handler succeeded and JetStream confirmed the ack.
	OutcomeAcked Outcome = iota + 1
	// OutcomeRetry: the handler failed; the event was Nak'ed with a delay.
	OutcomeRetry
	// OutcomeDeadLettered: the event was recorded in the DLQ and terminated.
	OutcomeDeadLettered
	// OutcomeAckFailed: the handler succeeded but the ack was not
	// confirmed (connection lost); JetStream may deliver the event again.
	OutcomeAckFailed
	// OutcomeReleased: the event was fetched during shutdown and handed back
	// unprocessed (Nak'ed), never acked.
	OutcomeReleased
)

func (o Outcome) String() string {
	switch o {
	case OutcomeAcked:
		return "acked"
	case OutcomeRetry:
		return "retry"
	case OutcomeDeadLettered:
		return "dead_lettered"
	case OutcomeAckFailed:
		return "ack_failed"
	case OutcomeReleased:
		return "released"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}

// Result describes the settlement of one delivery, for metrics and tests.
type Result struct {
	Event      Event
	Outcome    Outcome
	Err        error // the handler's error, or the ack/DLQ error
	Deliveries uint64
	StreamSeq  uint64
}

// ConsumerConfig configures a durable pull consumer. Zero values mean the
// defaults.
type ConsumerConfig struct {
	Names Names
	// Durable is the consumer's name: instances sharing it share the work.
	// It must not contain '.', '*', '>' or whitespace.
	Durable string
	// Types restricts the consumer to these event types (default: all).
	Types []string

	// Exactly one of Handler and BatchHandler must be set.
	Handler      Handler
	BatchHandler BatchHandler

	// Concurrency bounds the events being handled at once by this instance
	// (default 8 with Handler, 512 with BatchHandler). Events are only
	// pulled when a slot is free, so nothing waits unhandled in memory.
	Concurrency int
	// MaxBatch bounds one pull and, with BatchHandler, one batch (default
	// 256; with Handler it is at most Concurrency).
	MaxBatch int
	// BatchLinger is how long a BatchHandler batch waits for more events
	// before it is handled (default 5ms).
	BatchLinger time.Duration
	// MaxAckPending bounds the unacknowledged events across all instances,
	// including those waiting for a backoff redelivery (default 1000).
	MaxAckPending int
	// MaxDeliver is the number of deliveries before an event is
	// dead-lettered (default 5).
	MaxDeliver int
	// Backoff is the delay before redelivery after the n-th failure
	// (Backoff[n-1], the last value repeating; default 1s, 5s, 30s, 2m).
	Backoff []time.Duration
	// AckWait is how long JetStream waits for a result before redelivering;
	// it is also the handler's deadline (default 30s).
	AckWait time.Duration
	// PullWait is how long one pull request waits for events (default 2s).
	// Shutdown waits for the pull in flight, so it also bounds how long
	// stopping an idle consumer takes.
	PullWait time.Duration
	// DeliverNew makes a newly created durable start with events published
	// after its creation instead of the oldest event in the stream.
	DeliverNew bool

	Logger *slog.Logger
	// OnResult, if set, is called after every delivery is settled, from the
	// worker goroutines (concurrently).
	OnResult func(Result)
	// Now is the clock used for dead-letter timestamps (default time.Now).
	Now func() time.Time
}

func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if err := c.Names.validate(); err != nil {
		return c, err
	}
	c.Names = c.Names.WithDefaults()
	if c.Durable == "" || strings.ContainsAny(c.Durable, ".*> \t\r\n") {
		return c, fmt.Errorf("%w: durable name %q", ErrInvalidConfig, c.Durable)
	}
	if (c.Handler == nil) == (c.BatchHandler == nil) {
		return c, fmt.Errorf("%w: exactly one of Handler and BatchHandler must be set", ErrInvalidConfig)
	}
	for _, t := range c.Types {
		if err := validType(t); err != nil {
			return c, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
		if c.BatchHandler != nil {
			c.Concurrency = DefaultBatchConcurrency
		}
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.MaxBatch > c.Concurrency {
		c.MaxBatch = c.Concurrency
	}
	if c.BatchLinger <= 0 {
		c.BatchLinger = DefaultBatchLinger
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff()
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.PullWait <= 0 {
		c.PullWait = DefaultPullWait
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// jetStreamConfig is the durable consumer as JetStream sees it. Backoff is
// applied with NakWithDelay rather than the consumer's BackOff field,
// because BackOff replaces AckWait (its first value becomes the ack
// timeout) and would cut short handlers that need the full AckWait.
func (c ConsumerConfig) jetStreamConfig() jetstream.ConsumerConfig {
	jc := jetstream.ConsumerConfig{
		Durable:       c.Durable,
		Description:   "parley eventbus consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxDeliver,
		MaxAckPending: c.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if c.DeliverNew {
		jc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	switch len(c.Types) {
	case 0:
		jc.FilterSubject = c.Names.AllSubjects()
	case 1:
		jc.FilterSubject = c.Names.Subject(c.Types[0])
	default:
		for _, t := range c.Types {
			jc.FilterSubjects = append(jc.FilterSubjects, c.Names.Subject(t))
		}
	}
	return jc
}

// Consumer is a durable pull consumer of the event stream. Create it with
// NewConsumer and run it with Run.
type Consumer struct {
	cfg       ConsumerConfig
	nc        *nats.Conn
	js        jetstream.JetStream
	cons      jetstream.Consumer
	stream    jetstream.Stream
	adv       jetstream.Consumer // max-deliveries advisories captured by the DLQ stream
	dlqStream jetstream.Stream
	pub       *Publisher // records dead letters
	running   atomic.Bool
	// types is the set of wanted subjects when the server cannot filter
	// several subjects (nats-server < 2.10); nil otherwise.
	types map[string]bool
}

// NewConsumer creates (or updates) the durable consumer on the event stream.
// The streams must exist: call EnsureStreams first.
func NewConsumer(ctx context.Context, nc *nats.Conn, cfg ConsumerConfig) (*Consumer, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil NATS connection", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pub, err := NewPublisher(nc, PublisherConfig{Names: cfg.Names, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx, defaultAPITimeout)
	defer cancel()
	stream, err := pub.js.Stream(ctx, cfg.Names.EventsStream)
	if err != nil {
		return nil, fmt.Errorf("eventbus: consumer %s: stream %s: %w", cfg.Durable, cfg.Names.EventsStream, err)
	}
	jc := cfg.jetStreamConfig()
	clientFilter := false
	if len(jc.FilterSubjects) > 0 && !serverAtLeast(nc.ConnectedServerVersion(), 2, 10) {
		// nats-server < 2.10 has one filter subject per consumer: take every
		// event and drop the other types in the client (see unwanted).
		cfg.Logger.WarnContext(ctx, "eventbus: server does not support several filter subjects; filtering in the client",
			slog.String("consumer", cfg.Durable), slog.String("server", nc.ConnectedServerVersion()))
		jc.FilterSubjects, jc.FilterSubject = nil, cfg.Names.AllSubjects()
		clientFilter = true
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jc)
	if err != nil {
		return nil, fmt.Errorf("eventbus: consumer %s: %w", cfg.Durable, err)
	}
	dlqStream, err := pub.js.Stream(ctx, cfg.Names.DLQStream)
	if err != nil {
		return nil, fmt.Errorf("eventbus: consumer %s: stream %s: %w", cfg.Durable, cfg.Names.DLQStream, err)
	}
	adv, err := dlqStream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       advisoryConsumerName(cfg.Durable),
		Description:   "max-deliveries advisories of " + cfg.Durable,
		FilterSubject: maxDeliveriesSubject(cfg.Names.EventsStream, cfg.Durable),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       DefaultAckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("eventbus: consumer %s: advisory consumer: %w", cfg.Durable, err)
	}
	c := &Consumer{cfg: cfg, nc: nc, js: pub.js, cons: cons, stream: stream, adv: adv, dlqStream: dlqStream, pub: pub}
	if clientFilter {
		c.types = map[string]bool{}
		for _, t := range cfg.Types {
			c.types[cfg.Names.Subject(t)] = true
		}
	}
	return c, nil
}

// Name returns the durable name.
func (c *Consumer) Name() string { return c.cfg.Durable }

// Run pulls and handles events until ctx is cancelled or the connection
// fails. On cancellation it shuts down gracefully: it stops pulling, lets
// in-flight handlers finish and settle their events, hands back (Naks)
// events that were pulled but not started, and never acks unprocessed work.
// It returns nil after a graceful shutdown.
//
// Run also listens to JetStream's max-deliveries advisory for this consumer,
// to dead-letter events whose last delivery never produced a result (a
// crashed or stuck handler).
func (c *Consumer) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrConsumerRunning
	}
	defer c.running.Store(false)

	// Handlers and the advisory listener outlive ctx's cancellation so that
	// in-flight work finishes; each handler is bounded by AckWait instead.
	workCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()

	// The advisory loop stops with Run, also when Run ends on an error.
	advCtx, stopAdvisories := context.WithCancel(ctx)
	defer stopAdvisories() // before wg.Wait: defers run last-in, first-out
	wg.Go(func() { c.runAdvisories(advCtx, workCtx) })

	sem := make(chan struct{}, c.cfg.Concurrency)
	retryWait := 50 * time.Millisecond
	for {
		// Wait for one free slot, then take every other free slot: a pull
		// asks for exactly as many events as can be started right away.
		// select picks at random among ready cases: check for shutdown
		// first, or a free slot could start pull after pull, each
		// waiting out PullWait, long after the context ended.
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case sem <- struct{}{}:
		}
		n := 1
		for n < c.cfg.MaxBatch {
			select {
			case sem <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		// The pull is deliberately not tied to ctx. Cancelling it on
		// shutdown would unsubscribe its inbox while the server may be
		// sending to it, and those events would come back only after
		// AckWait. Instead shutdown waits for the pull to end (PullWait at
		// most) and dispatch hands back what arrives meanwhile.
		batch, err := c.cons.Fetch(n, jetstream.FetchMaxWait(c.cfg.PullWait))
		if err != nil {
			release(sem, n)
			if fatal := c.fetchFailed(ctx, err, &retryWait); fatal != nil {
				return fatal
			}
			continue
		}
		used := c.dispatch(ctx, workCtx, batch.Messages(), sem, &wg)
		release(sem, n-used)
		if err := batch.Error(); err != nil && !isPullEnd(err) {
			if fatal := c.fetchFailed(ctx, err, &retryWait); fatal != nil {
				return fatal
			}
			continue
		}
		retryWait = 50 * time.Millisecond
	}
}

// isPullEnd reports the errors that only say a pull ended: its deadline
// passed before the server's timeout status arrived, or it was cancelled.
func isPullEnd(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fetchFailed decides whether a pull error ends Run. Transient errors
// (reconnecting, leader election) are retried after a growing pause.
func (c *Consumer) fetchFailed(ctx context.Context, err error, wait *time.Duration) error {
	if ctx.Err() != nil {
		return nil // shutting down: Run returns at the top of its loop
	}
	if c.nc.IsClosed() || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("eventbus: consumer %s: %w", c.cfg.Durable, nats.ErrConnectionClosed)
	}
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("eventbus: consumer %s: %w", c.cfg.Durable, err)
	}
	c.cfg.Logger.WarnContext(ctx, "eventbus: pull failed", slog.String("consumer", c.cfg.Durable), slog.Any("error", err))
	t := time.NewTimer(*wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	*wait = min(*wait*2, 5*time.Second)
	return nil
}

func release(sem chan struct{}, n int) {
	for range n {
		<-sem
	}
}

// dispatch hands the messages of one pull to workers. Each message holds one
// slot of sem until it is settled. Messages that arrive after ctx is
// cancelled are handed back. It returns the number of slots it consumed.
func (c *Consumer) dispatch(ctx, workCtx context.Context, msgs <-chan jetstream.Msg, sem chan struct{}, wg *sync.WaitGroup) int {
	used := 0
	if c.cfg.Handler != nil {
		for msg := range msgs {
			used++
			if ctx.Err() != nil {
				c.releaseMsg(workCtx, msg)
				<-sem
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				c.handleOne(workCtx, msg)
			})
		}
		return used
	}

	var pending []jetstream.Msg
	flush := func() {
		if len(pending) == 0 {
			return
		}
		batch := pending
		pending = nil
		wg.Go(func() {
			defer release(sem, len(batch))
			c.handleBatch(workCtx, batch)
		})
	}
	var linger <-chan time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				flush()
				return used
			}
			used++
			if ctx.Err() != nil {
				c.releaseMsg(workCtx, msg)
				<-sem
				continue
			}
			pending = append(pending, msg)
			if len(pending) >= c.cfg.MaxBatch {
				flush()
				linger = nil
			} else if len(pending) == 1 {
				if timer == nil {
					timer = time.NewTimer(c.cfg.BatchLinger)
				} else {
					timer.Reset(c.cfg.BatchLinger)
				}
				linger = timer.C
			}
		case <-linger:
			linger = nil
			flush()
		}
	}
}

// releaseMsg hands back an event pulled during shutdown, so that another
// instance (or this one after a restart) gets it without waiting AckWait.
// The delay outlasts this instance's open pull: an immediate Nak would
// have the server deliver the event straight back into that pull, using up
// the event's deliveries in a loop.
func (c *Consumer) releaseMsg(ctx context.Context, msg jetstream.Msg) {
	d := c.delivery(msg)
	err := msg.NakWithDelay(c.cfg.PullWait + 100*time.Millisecond)
	if err != nil {
		c.cfg.Logger.WarnContext(ctx, "eventbus: nak on shutdown failed; the event is redelivered after AckWait",
			slog.String("consumer", c.cfg.Durable), slog.Uint64("stream_seq", d.streamSeq), slog.Any("error", err))
	}
	c.report(Result{Event: d.ev, Outcome: OutcomeReleased, Err: err, Deliveries: d.deliveries, StreamSeq: d.streamSeq})
}

// delivery is one received message with its decoded envelope.
type delivery struct {
	msg        jetstream.Msg
	ev         Event
	decodeErr  error
	deliveries uint64
	streamSeq  uint64
}

func (c *Consumer) delivery(msg jetstream.Msg) delivery {
	d := delivery{msg: msg}
	if md, err := msg.Metadata(); err == nil {
		d.deliveries = md.NumDelivered
		d.streamSeq = md.Sequence.Stream
	}
	d.ev, d.decodeErr = decodeEvent(msg.Data())
	return d
}

// unwanted acks an event of a type this consumer did not ask for (only
// delivered by servers that cannot filter several subjects).
func (c *Consumer) unwanted(ctx context.Context, msg jetstream.Msg) bool {
	if c.types == nil || c.types[msg.Subject()] {
		return false
	}
	actx, cancel := context.WithTimeout(ctx, defaultAPITimeout)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		c.cfg.Logger.WarnContext(ctx, "eventbus: ack of a filtered-out event failed", slog.String("subject", msg.Subject()), slog.Any("error", err))
	}
	return true
}

func (c *Consumer) handleOne(ctx context.Context, msg jetstream.Msg) {
	if c.unwanted(ctx, msg) {
		return
	}
	d := c.delivery(msg)
	if d.decodeErr != nil {
		c.settle(ctx, d, Permanent(d.decodeErr))
		return
	}
	hctx, cancel := context.WithTimeout(ExtractTrace(ctx, msg.Headers()), c.cfg.AckWait)
	err := c.callHandler(hctx, d.ev)
	cancel()
	c.settle(ctx, d, err)
}

func (c *Consumer) handleBatch(ctx context.Context, msgs []jetstream.Msg) {
	ds := make([]delivery, 0, len(msgs))
	evs := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		if c.unwanted(ctx, m) {
			continue
		}
		d := c.delivery(m)
		if d.decodeErr != nil {
			c.settle(ctx, d, Permanent(d.decodeErr))
			continue
		}
		ds = append(ds, d)
		evs = append(evs, d.ev)
	}
	if len(evs) == 0 {
		return
	}
	// A batch mixes publishers; the first event's trace stands for it.
	hctx, cancel := context.WithTimeout(ExtractTrace(ctx, ds[0].msg.Headers()), c.cfg.AckWait)
	errs := c.callBatchHandler(hctx, evs)
	cancel()
	for i, d := range ds {
		c.settle(ctx, d, errs[i])
	}
}

// callHandler runs the handler, turning a panic into an error: one bad event
// must not take the service down.
func (c *Consumer) callHandler(ctx context.Context, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.ErrorContext(ctx, "eventbus: handler panicked", slog.String("consumer", c.cfg.Durable),
				slog.String("event_id", ev.ID), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			err = fmt.Errorf("eventbus: handler panic: %v", r)
		}
	}()
	return c.cfg.Handler(ctx, ev)
}

func (c *Consumer) callBatchHandler(ctx context.Context, evs []Event) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.ErrorContext(ctx, "eventbus: batch handler panicked", slog.String("consumer", c.cfg.Durable),
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
			errs = fill(len(evs), fmt.Errorf("eventbus: handler panic: %v", r))
		}
	}()
	errs = c.cfg.BatchHandler(ctx, evs)
	switch {
	case errs == nil:
		return make([]error, len(evs))
	case len(errs) != len(evs):
		return fill(len(evs), fmt.Errorf("eventbus: batch handler returned %d results for %d events", len(errs), len(evs)))
	}
	return errs
}

func fill(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// settle acks, naks or dead-letters one delivery according to the handler's
// result.
func (c *Consumer) settle(ctx context.Context, d delivery, herr error) {
	actx, cancel := context.WithTimeout(ctx, min(c.cfg.AckWait, defaultAPITimeout))
	defer cancel()
	res := Result{Event: d.ev, Err: herr, Deliveries: d.deliveries, StreamSeq: d.streamSeq}
	switch {
	case herr == nil:
		// DoubleAck waits for JetStream to confirm, so an event reported
		// as acked is never redelivered, even if this process dies now.
		if err := d.msg.DoubleAck(actx); err != nil {
			res.Outcome, res.Err = OutcomeAckFailed, err
			c.cfg.Logger.WarnContext(ctx, "eventbus: ack not confirmed; the event may be redelivered",
				slog.String("consumer", c.cfg.Durable), slog.String("event_id", d.ev.ID), slog.Any("error", err))
		} else {
			res.Outcome = OutcomeAcked
		}
	case IsPermanent(herr) || d.deliveries >= uint64(c.cfg.MaxDeliver):
		reason := herr.Error()
		if !IsPermanent(herr) {
			reason = fmt.Sprintf("failed %d deliveries: %s", d.deliveries, reason)
		}
		res.Outcome = OutcomeDeadLettered
		if err := c.deadLetter(actx, d, reason); err != nil {
			// Not recorded: leave the event to redelivery (or, at the last
			// delivery, to the max-deliveries advisory) rather than drop it.
			res.Outcome, res.Err = OutcomeRetry, errors.Join(herr, err)
			c.cfg.Logger.ErrorContext(ctx, "eventbus: dead-lettering failed", slog.String("consumer", c.cfg.Durable),
				slog.String("event_id", d.ev.ID), slog.Any("error", err))
			if nerr := d.msg.NakWithDelay(c.backoff(d.deliveries)); nerr != nil {
				res.Err = errors.Join(res.Err, nerr)
			}
			break
		}
		// Plain Term: nats-server < 2.10 does not understand a reason and
		// would ignore the term; the reason is in the dead letter anyway.
		if err := d.msg.Term(); err != nil {
			// Recorded but not terminated: a redelivery records it again
			// under the same message id, which the DLQ drops.
			c.cfg.Logger.WarnContext(ctx, "eventbus: term failed", slog.String("consumer", c.cfg.Durable),
				slog.String("event_id", d.ev.ID), slog.Any("error", err))
		}
		c.cfg.Logger.WarnContext(ctx, "eventbus: event dead-lettered", slog.String("consumer", c.cfg.Durable),
			slog.String("event_id", d.ev.ID), slog.String("type", d.ev.Type), slog.Uint64("deliveries", d.deliveries),
			slog.String("reason", reason))
	default:
		res.Outcome = OutcomeRetry
		delay := c.backoff(d.deliveries)
		if err := d.msg.NakWithDelay(delay); err != nil {
			res.Err = errors.Join(herr, err)
		}
		c.cfg.Logger.InfoContext(ctx, "eventbus: handler failed, will retry", slog.String("consumer", c.cfg.Durable),
			slog.String("event_id", d.ev.ID), slog.Uint64("deliveries", d.deliveries), slog.Duration("delay", delay),
			slog.Any("error", herr))
	}
	c.report(res)
}

// backoff returns the redelivery delay after the n-th failed delivery.
func (c *Consumer) backoff(n uint64) time.Duration {
	if n == 0 {
		n = 1
	}
	i := min(int(n-1), len(c.cfg.Backoff)-1)
	return c.cfg.Backoff[i]
}

func (c *Consumer) report(r Result) {
	if c.cfg.OnResult != nil {
		c.cfg.OnResult(r)
	}
}

// serverAtLeast reports whether a nats-server version string ("2.9.10") is
// at least major.minor. An unparsable version counts as recent.
func serverAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}
