// Package jobqueue is the notification service's delivery queue on a
// JetStream work-queue stream: jobs are published on <prefix>.<channel>
// (notify.jobs.push, notify.jobs.webpush, notify.jobs.email) with the job's
// key as Nats-Msg-Id, so queueing the same job twice stores it once; one
// durable pull consumer per channel hands them to workers.
//
// Retries follow the provider's signal: a handler error carrying a retry
// delay (FCM 429/503 Retry-After) is redelivered after max(delay, backoff);
// other errors after the backoff; permanent errors, and the last allowed
// delivery, are recorded in the dead-letter stream (in the eventbus
// library's DeadLetter format, so its DeadLetterQueue lists and retries
// them) and terminated. A job whose last delivery never produced a result
// (the process died) is found through JetStream's max-deliveries advisory
// and dead-lettered too.
//
// Jobs travel in the eventbus envelope (id = job key, type = channel,
// data = the job), which brings trace headers and the shared DLQ tooling.
package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// Defaults of Config.
const (
	DefaultStream           = "NOTIFY_JOBS"
	DefaultSubjectPrefix    = "notify.jobs"
	DefaultDLQStream        = "NOTIFY_DLQ"
	DefaultDLQSubjectPrefix = "notify.dlq"
	DefaultDurablePrefix    = "notificationservice"
	DefaultMaxDeliver       = 8
	DefaultAckWait          = time.Minute
	DefaultConcurrency      = 8
	DefaultPullWait         = 2 * time.Second
	DefaultMaxAge           = 24 * time.Hour
	DefaultDuplicateWindow  = 10 * time.Minute
	DefaultMaxRetryAfter    = time.Hour
	// jobSource is the envelope's source.
	jobSource = "notificationservice"
	// apiTimeout bounds JetStream API calls.
	apiTimeout = 10 * time.Second
)

// DefaultBackoff is the redelivery delay after the n-th failure (the last
// value repeating): about 40 minutes of retries over 8 deliveries.
func DefaultBackoff() []time.Duration {
	return []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute}
}

// Config names the streams and tunes the consumers. Zero values mean the
// defaults; tests sharing a NATS server give every name a unique value.
type Config struct {
	Stream           string
	SubjectPrefix    string
	DLQStream        string
	DLQSubjectPrefix string
	// DurablePrefix names the consumers: <prefix>-<channel>.
	DurablePrefix string
	Replicas      int
	// MaxAge drops jobs older than this (default 24h): a notification that
	// could not go out in a day is stale.
	MaxAge          time.Duration
	DuplicateWindow time.Duration

	MaxDeliver int
	Backoff    []time.Duration
	// MaxRetryAfter caps a provider's Retry-After (default 1h).
	MaxRetryAfter time.Duration
	// AckWait is how long a delivery may take before JetStream hands the job
	// to another worker; it is also the handler's deadline.
	AckWait     time.Duration
	Concurrency int
	PullWait    time.Duration
	Logger      *slog.Logger
	// OnResult, if set, observes every settled delivery (tests, metrics).
	OnResult func(Result)
}

func (c Config) withDefaults() Config {
	set := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	set(&c.Stream, DefaultStream)
	set(&c.SubjectPrefix, DefaultSubjectPrefix)
	set(&c.DLQStream, DefaultDLQStream)
	set(&c.DLQSubjectPrefix, DefaultDLQSubjectPrefix)
	set(&c.DurablePrefix, DefaultDurablePrefix)
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if len(c.Backoff) == 0 {
		c.Backoff = DefaultBackoff()
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.AckWait <= 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.PullWait <= 0 {
		c.PullWait = DefaultPullWait
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Names is the queue as the eventbus library sees it: pass it to
// eventbus.NewDeadLetterQueue to list, retry or discard dead jobs.
func (c Config) Names() eventbus.Names {
	c = c.withDefaults()
	return eventbus.Names{EventsStream: c.Stream, SubjectPrefix: c.SubjectPrefix, DLQStream: c.DLQStream, DLQSubjectPrefix: c.DLQSubjectPrefix}
}

// Durable is the consumer name of a channel's workers.
func (c Config) Durable(ch notify.Channel) string {
	return c.withDefaults().DurablePrefix + "-" + string(ch)
}

// EnsureStreams creates or updates the work-queue stream and its
// dead-letter stream.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	dup := min(cfg.DuplicateWindow, cfg.MaxAge)
	jobs := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Parley notification delivery jobs (work queue, Nats-Msg-Id = job key)",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.MaxAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  dup,
	}
	if _, err := js.CreateOrUpdateStream(ctx, jobs); err != nil {
		return fmt.Errorf("jobqueue: ensure stream %s: %w", cfg.Stream, err)
	}
	dlq := eventbus.StreamConfig{Names: cfg.Names(), Replicas: cfg.Replicas, DuplicateWindow: cfg.DuplicateWindow}.DLQStreamConfig()
	dlq.Description = "Parley notification jobs that could not be delivered"
	if _, err := js.CreateOrUpdateStream(ctx, dlq); err != nil {
		return fmt.Errorf("jobqueue: ensure stream %s: %w", cfg.DLQStream, err)
	}
	return nil
}

// Queue publishes jobs. It implements notify.JobQueue.
type Queue struct {
	pub *eventbus.Publisher
}

var _ notify.JobQueue = (*Queue)(nil)

// NewQueue returns a publisher of jobs on nc.
func NewQueue(nc *nats.Conn, cfg Config) (*Queue, error) {
	cfg = cfg.withDefaults()
	pub, err := eventbus.NewPublisher(nc, eventbus.PublisherConfig{Names: cfg.Names(), Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("jobqueue: %w", err)
	}
	return &Queue{pub: pub}, nil
}

// Enqueue publishes the jobs and waits for JetStream to store them.
func (q *Queue) Enqueue(ctx context.Context, jobs ...notify.Job) error {
	evs := make([]eventbus.Event, 0, len(jobs))
	for _, j := range jobs {
		ev, err := envelope(j)
		if err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	switch len(evs) {
	case 0:
		return nil
	case 1:
		return q.pub.Publish(ctx, evs[0])
	default:
		return q.pub.PublishBatch(ctx, evs)
	}
}

func envelope(j notify.Job) (eventbus.Event, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return eventbus.Event{}, fmt.Errorf("jobqueue: encode job %s: %w", j.Key(), err)
	}
	return eventbus.Event{
		ID: j.Key(), Type: string(j.Channel), Source: jobSource, Subject: j.UserID,
		Data: data, Timestamp: time.Now().UTC(), Version: eventbus.CurrentVersion,
	}, nil
}

// Handler performs jobs; notify.Service implements it.
type Handler interface {
	// Deliver performs one delivery of a job (see notify.Service.Deliver
	// for the error contract).
	Deliver(ctx context.Context, job notify.Job, at notify.Attempt) error
	// GiveUp records a job dead-lettered without a result.
	GiveUp(ctx context.Context, job notify.Job, reason string) error
}

// Outcome of one delivery.
type Outcome string

// Outcomes reported through Config.OnResult.
const (
	OutcomeAcked        Outcome = "acked"
	OutcomeRetry        Outcome = "retry"
	OutcomeDeadLettered Outcome = "dead_lettered"
	OutcomeAckFailed    Outcome = "ack_failed"
	OutcomeReleased     Outcome = "released"
)

// Result is one settled delivery.
type Result struct {
	JobKey     string
	Channel    notify.Channel
	Outcome    Outcome
	Delay      time.Duration // the redelivery delay of OutcomeRetry
	Deliveries uint64
	Err        error
}

// ReasonNoResult is the dead-letter reason of a job whose last delivery
// produced no result.
const ReasonNoResult = "max deliveries exceeded without a result"

// Worker consumes one channel's jobs.
type Worker struct {
	cfg     Config
	channel notify.Channel
	durable string
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	h       Handler
}

// NewWorker creates (or updates) the channel's durable consumer. The
// streams must exist (EnsureStreams).
func NewWorker(ctx context.Context, nc *nats.Conn, cfg Config, ch notify.Channel, h Handler) (*Worker, error) {
	cfg = cfg.withDefaults()
	if h == nil {
		return nil, fmt.Errorf("jobqueue: worker %s: nil handler", ch)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobqueue: jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	stream, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("jobqueue: stream %s: %w", cfg.Stream, err)
	}
	durable := cfg.Durable(ch)
	// Redelivery delays are applied with NakWithDelay, not the consumer's
	// BackOff, which would replace AckWait and cut slow deliveries short.
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "Parley notification " + string(ch) + " deliveries",
		FilterSubject: cfg.SubjectPrefix + "." + string(ch),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: max(1000, cfg.Concurrency*4),
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("jobqueue: consumer %s: %w", durable, err)
	}
	return &Worker{cfg: cfg, channel: ch, durable: durable, nc: nc, js: js, stream: stream, cons: cons, h: h}, nil
}

// Run handles jobs until ctx is done, then lets running deliveries finish
// and hands back jobs pulled but not started. It returns nil after a
// graceful stop.
func (w *Worker) Run(ctx context.Context) error {
	// Deliveries in flight outlive ctx so they can record their outcome;
	// each is bounded by AckWait.
	workCtx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()

	stopAdvisories, err := w.listenMaxDeliveries(workCtx, &wg)
	if err != nil {
		return err
	}
	defer stopAdvisories()

	sem := make(chan struct{}, w.cfg.Concurrency)
	wait := 50 * time.Millisecond
	for {
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
	fill:
		for n < w.cfg.Concurrency {
			select {
			case sem <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		batch, err := w.cons.Fetch(n, jetstream.FetchMaxWait(w.cfg.PullWait))
		if err != nil {
			release(sem, n)
			if fatal := w.pullFailed(ctx, err, &wait); fatal != nil {
				return fatal
			}
			continue
		}
		used := 0
		for msg := range batch.Messages() {
			used++
			if ctx.Err() != nil {
				w.release(workCtx, msg)
				<-sem
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				w.handle(workCtx, msg)
			})
		}
		release(sem, n-used)
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) {
			if fatal := w.pullFailed(ctx, err, &wait); fatal != nil {
				return fatal
			}
			continue
		}
		wait = 50 * time.Millisecond
	}
}

func release(sem chan struct{}, n int) {
	for range n {
		<-sem
	}
}

// pullFailed ends Run on a closed connection or a deleted consumer, and
// otherwise pauses (growing up to 5s) before the next pull.
func (w *Worker) pullFailed(ctx context.Context, err error, wait *time.Duration) error {
	if w.nc.IsClosed() || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("jobqueue: worker %s: %w", w.durable, nats.ErrConnectionClosed)
	}
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("jobqueue: worker %s: %w", w.durable, err)
	}
	w.cfg.Logger.WarnContext(ctx, "jobqueue: pull failed", slog.String("consumer", w.durable), slog.Any("error", err))
	t := time.NewTimer(*wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	*wait = min(*wait*2, 5*time.Second)
	return nil
}

func (w *Worker) release(ctx context.Context, msg jetstream.Msg) {
	err := msg.Nak()
	if err != nil {
		w.cfg.Logger.WarnContext(ctx, "jobqueue: nak on shutdown failed; redelivered after AckWait", slog.Any("error", err))
	}
	w.report(Result{Channel: w.channel, Outcome: OutcomeReleased, Err: err})
}

// handle performs one delivery and settles it.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	var deliveries, seq uint64
	if md, err := msg.Metadata(); err == nil {
		deliveries, seq = md.NumDelivered, md.Sequence.Stream
	}
	ev, job, err := decode(msg.Data())
	if err != nil {
		w.deadLetter(ctx, msg, ev, deliveries, seq, "undecodable job: "+err.Error())
		w.report(Result{JobKey: ev.ID, Channel: w.channel, Outcome: OutcomeDeadLettered, Deliveries: deliveries, Err: err})
		return
	}
	at := notify.Attempt{Number: int(deliveries), Final: deliveries >= uint64(w.cfg.MaxDeliver)}
	hctx, cancel := context.WithTimeout(eventbus.ExtractTrace(ctx, msg.Headers()), w.cfg.AckWait)
	herr := w.call(hctx, job, at)
	cancel()

	res := Result{JobKey: job.Key(), Channel: w.channel, Deliveries: deliveries, Err: herr}
	actx, acancel := context.WithTimeout(ctx, apiTimeout)
	defer acancel()
	switch {
	case herr == nil:
		res.Outcome = OutcomeAcked
		if err := msg.DoubleAck(actx); err != nil {
			// The outcome is recorded, so a redelivery is skipped.
			res.Outcome, res.Err = OutcomeAckFailed, err
		}
	case notify.IsPermanent(herr) || at.Final:
		res.Outcome = OutcomeDeadLettered
		if !w.deadLetter(actx, msg, ev, deliveries, seq, herr.Error()) {
			res.Outcome = OutcomeRetry
		}
	default:
		res.Outcome = OutcomeRetry
		res.Delay = w.retryDelay(deliveries, notify.RetryAfterOf(herr))
		if err := msg.NakWithDelay(res.Delay); err != nil {
			res.Err = errors.Join(herr, err)
		}
	}
	w.report(res)
}

// call runs the handler, turning a panic into an error: one bad job must
// not stop the service.
func (w *Worker) call(ctx context.Context, job notify.Job, at notify.Attempt) (err error) {
	defer func() {
		if r := recover(); r != nil {
			w.cfg.Logger.ErrorContext(ctx, "jobqueue: handler panicked", slog.String("job", job.Key()), slog.Any("panic", r))
			err = fmt.Errorf("jobqueue: handler panic: %v", r)
		}
	}()
	return w.h.Deliver(ctx, job, at)
}

// retryDelay is the backoff for the n-th failure, or the provider's
// Retry-After if longer (capped).
func (w *Worker) retryDelay(n uint64, retryAfter time.Duration) time.Duration {
	i := 0
	if n > 0 {
		i = min(int(n-1), len(w.cfg.Backoff)-1)
	}
	return max(w.cfg.Backoff[i], min(retryAfter, w.cfg.MaxRetryAfter))
}

// deadLetter records the job in the DLQ stream and terminates it (which
// removes it from the work queue). It reports false if the record could
// not be written; the job is then left for redelivery (or, after its last
// delivery, for the advisory) rather than dropped.
func (w *Worker) deadLetter(ctx context.Context, msg jetstream.Msg, ev eventbus.Event, deliveries, seq uint64, reason string) bool {
	dl := eventbus.DeadLetter{
		Event: ev, Subject: msg.Subject(), Stream: w.cfg.Stream, StreamSequence: seq, Consumer: w.durable,
		Deliveries: deliveries, Reason: reason, FailedAt: time.Now().UTC(),
	}
	if ev.ID == "" {
		dl.Payload = msg.Data()
	}
	if err := w.recordDeadLetter(ctx, dl, msg.Headers()); err != nil {
		w.cfg.Logger.ErrorContext(ctx, "jobqueue: dead-lettering failed", slog.String("consumer", w.durable), slog.Any("error", err))
		if nerr := msg.NakWithDelay(w.retryDelay(deliveries, 0)); nerr != nil {
			w.cfg.Logger.WarnContext(ctx, "jobqueue: nak failed", slog.Any("error", nerr))
		}
		return false
	}
	if err := msg.TermWithReason(truncate(reason, 200)); err != nil {
		// Recorded but still queued: a redelivery records it again under
		// the same message id, which the DLQ stream drops.
		w.cfg.Logger.WarnContext(ctx, "jobqueue: term failed", slog.String("consumer", w.durable), slog.Any("error", err))
	}
	// Recent servers drop a terminated message from a work queue, but
	// older ones (2.9) keep one terminated on its last delivery forever:
	// delete it explicitly, now that the dead letter holds it.
	if seq > 0 {
		if err := w.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			w.cfg.Logger.WarnContext(ctx, "jobqueue: delete dead job from the work queue", slog.Any("error", err))
		}
	}
	w.cfg.Logger.WarnContext(ctx, "jobqueue: job dead-lettered", slog.String("consumer", w.durable),
		slog.String("job", ev.ID), slog.Uint64("deliveries", deliveries), slog.String("reason", reason))
	return true
}

func (w *Worker) recordDeadLetter(ctx context.Context, dl eventbus.DeadLetter, h nats.Header) error {
	body, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	typ := dl.Event.Type
	if typ == "" {
		typ = string(w.channel)
	}
	out := &nats.Msg{Subject: w.cfg.DLQSubjectPrefix + "." + w.durable + "." + typ, Data: body, Header: nats.Header{}}
	for _, k := range []string{eventbus.HeaderTraceParent, eventbus.HeaderTraceState} {
		if v := h.Get(k); v != "" {
			out.Header.Set(k, v)
		}
	}
	// The same id scheme as the eventbus consumers: recording twice (the
	// handler's last failure and the advisory) stores one dead letter.
	msgID := "dlq." + w.cfg.Stream + "." + w.durable + "." + strconv.FormatUint(dl.StreamSequence, 10)
	if _, err := w.js.PublishMsg(ctx, out, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(w.cfg.DLQStream)); err != nil {
		return fmt.Errorf("record dead letter: %w", err)
	}
	return nil
}

// listenMaxDeliveries dead-letters jobs whose last delivery produced no
// result. JetStream leaves such a job in the work-queue stream, so it is
// deleted once recorded. A queue group makes one replica handle each
// advisory.
func (w *Worker) listenMaxDeliveries(ctx context.Context, wg *sync.WaitGroup) (stop func(), err error) {
	subject := "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + w.cfg.Stream + "." + w.durable
	ch := make(chan *nats.Msg, 64)
	sub, err := w.nc.ChanQueueSubscribe(subject, "jobqueue-dlq-"+w.durable, ch)
	if err != nil {
		return nil, fmt.Errorf("jobqueue: subscribe to max-deliveries advisory: %w", err)
	}
	done := make(chan struct{})
	wg.Go(func() {
		defer func() {
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				w.cfg.Logger.WarnContext(ctx, "jobqueue: unsubscribe advisory", slog.Any("error", err))
			}
		}()
		for {
			select {
			case <-done:
				return
			case m := <-ch:
				w.onMaxDeliveries(ctx, m.Data)
			}
		}
	})
	return func() { close(done) }, nil
}

type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

func (w *Worker) onMaxDeliveries(ctx context.Context, data []byte) {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(data, &adv); err != nil || adv.Stream != w.cfg.Stream || adv.Consumer != w.durable {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	raw, err := w.stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return // settled meanwhile (terminated by the handler's last failure)
	}
	if err != nil {
		w.cfg.Logger.ErrorContext(ctx, "jobqueue: fetch job for max-deliveries advisory", slog.Any("error", err))
		return
	}
	ev, job, derr := decode(raw.Data)
	if derr == nil {
		if err := w.h.GiveUp(ctx, job, ReasonNoResult); err != nil {
			w.cfg.Logger.ErrorContext(ctx, "jobqueue: record given-up job", slog.String("job", job.Key()), slog.Any("error", err))
		}
	}
	dl := eventbus.DeadLetter{Event: ev, Subject: raw.Subject, Stream: w.cfg.Stream, StreamSequence: adv.StreamSeq,
		Consumer: w.durable, Deliveries: adv.Deliveries, Reason: ReasonNoResult, FailedAt: time.Now().UTC()}
	if derr != nil {
		dl.Payload = raw.Data
	}
	if err := w.recordDeadLetter(ctx, dl, raw.Header); err != nil {
		w.cfg.Logger.ErrorContext(ctx, "jobqueue: dead-letter from advisory", slog.Any("error", err))
		return
	}
	if err := w.stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		w.cfg.Logger.WarnContext(ctx, "jobqueue: delete dead job from the work queue", slog.Any("error", err))
	}
	w.report(Result{JobKey: ev.ID, Channel: w.channel, Outcome: OutcomeDeadLettered, Deliveries: adv.Deliveries, Err: errors.New(ReasonNoResult)})
}

func (w *Worker) report(r Result) {
	if w.cfg.OnResult != nil {
		w.cfg.OnResult(r)
	}
}

// decode parses a job message: the envelope, then the job inside.
func decode(b []byte) (eventbus.Event, notify.Job, error) {
	var ev eventbus.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return eventbus.Event{}, notify.Job{}, fmt.Errorf("envelope: %w", err)
	}
	var job notify.Job
	if err := json.Unmarshal(ev.Data, &job); err != nil {
		return ev, notify.Job{}, fmt.Errorf("job %s: %w", ev.ID, err)
	}
	if job.NotificationID == "" || job.Target == "" {
		return ev, notify.Job{}, fmt.Errorf("job %s: no notification id or target", ev.ID)
	}
	return ev, job, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
