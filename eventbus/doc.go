// Package eventbus is Parley's event library, used by every service: the
// event envelope, JetStream stream provisioning, a de-duplicating publisher,
// durable pull consumers with retries and dead-lettering, and the
// dead-letter queue administration. The event-bus service itself (the audit
// log) is in package auditservice of this module.
//
// Durable events travel in the Event envelope on "<prefix>.<type>" subjects
// (events.message.sent) of the EVENTS stream; the event id is the
// Nats-Msg-Id, so a publish retried within the duplicate window is stored
// once. Realtime traffic (typing, fan-out frames, presence) goes over core
// NATS with PublishRealtime and is never stored.
//
// A service typically does, at startup:
//
//	js, _ := jetstream.New(nc)
//	err := eventbus.EnsureStreams(ctx, js, eventbus.StreamConfig{Replicas: 3})
//	pub, err := eventbus.NewPublisher(nc, eventbus.PublisherConfig{})
//	cons, err := eventbus.NewConsumer(ctx, nc, eventbus.ConsumerConfig{
//		Durable: "notifications",
//		Types:   []string{eventbus.TypeMessageSent},
//		Handler: func(ctx context.Context, ev eventbus.Event) error { ... },
//	})
//	go cons.Run(ctx) // returns after a graceful shutdown when ctx ends
//
// and publishes with
//
//	ev, err := eventbus.NewEvent(eventbus.TypeMessageSent, "chatservice", channelID, msg)
//	err = pub.Publish(ctx, ev)
//
// A handler error is retried after the configured backoff; after MaxDeliver
// failed deliveries, or at once for an error wrapped with Permanent, the
// event is recorded in the DLQ stream with the failure reason and
// terminated. Events whose last delivery produced no result at all (a
// crash) are dead-lettered from JetStream's max-deliveries advisory, which
// the DLQ stream captures. DeadLetterQueue lists, retries and discards dead
// letters.
//
// Handlers must be idempotent: delivery is at least once (an ack lost with
// the connection, a retried dead letter, a publish repeated after the
// duplicate window). W3C trace context travels in the traceparent and
// tracestate headers; see WithTraceParent.
package eventbus
