// Package chat holds the chat service's business rules: channels and their
// members, who may do what, messages with their per-channel sequence numbers,
// history paging over a bounded recent-history cache, search, attachments, and
// the outbox that makes store-then-publish lose no event.
//
// The package declares the small interfaces it consumes (the stores, the
// history cache, the event publisher, the user directory, the clock); the
// MongoDB, Redis and NATS adapters live in sibling packages and no driver,
// proto or gRPC type appears here.
package chat
