package eventbus

import "errors"

// Sentinel errors returned (wrapped) by the library. Match them with errors.Is.
var (
	// ErrInvalidEvent reports an event that cannot be published: a missing id,
	// type or source, or a type that is not a valid NATS subject fragment.
	ErrInvalidEvent = errors.New("eventbus: invalid event")

	// ErrInvalidConfig reports a configuration that cannot work, such as a
	// consumer without a handler or a durable name containing a dot.
	ErrInvalidConfig = errors.New("eventbus: invalid configuration")

	// ErrInvalidSubject reports a realtime subject that is empty or falls
	// under the durable event prefix (it would be captured by the stream).
	ErrInvalidSubject = errors.New("eventbus: invalid subject")

	// ErrPublish reports a durable publish that was not acknowledged by
	// JetStream after every allowed attempt.
	ErrPublish = errors.New("eventbus: publish failed")

	// ErrDeadLetterNotFound reports a dead letter that does not exist (never
	// recorded, or already retried or discarded).
	ErrDeadLetterNotFound = errors.New("eventbus: dead letter not found")

	// ErrConsumerRunning reports a second concurrent Run of one Consumer.
	ErrConsumerRunning = errors.New("eventbus: consumer already running")
)
