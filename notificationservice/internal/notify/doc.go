// Package notify holds the notification service's business rules: who is
// notified of a chat event and how (preferences, quiet hours, muted
// channels, presence), what a delivery job does with each provider's
// answer (sent, retried later, failed, device unregistered), the history of
// what was sent, and the email digest of unread direct messages and
// mentions.
//
// It declares the small interfaces it consumes (Store, JobQueue,
// MemberLister, PresenceChecker, UserDirectory, PushSender, EmailSender);
// the adapters in the sibling packages implement them. No transport or
// driver type appears in its signatures.
package notify
