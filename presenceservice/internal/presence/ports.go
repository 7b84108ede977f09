package presence

import (
	"context"
	"time"
)

// StateStore keeps the live presence state (connections, chosen statuses,
// node liveness). Every method that changes a user's state does it
// atomically and reports whether what others see changed, so that exactly
// one caller publishes each change.
type StateStore interface {
	// Connect records connection connID of userID on nodeID. It returns the
	// user's transition last, preceded by the transition of another user
	// who held the same connection id on that node (a gateway bug, but
	// handled).
	Connect(ctx context.Context, userID, connID, nodeID string, now time.Time) ([]Transition, error)
	// Disconnect removes connection connID of userID on nodeID; removing an
	// unknown connection changes nothing.
	Disconnect(ctx context.Context, userID, connID, nodeID string, now time.Time) (Transition, error)
	// SetStatus records the status userID chose and, when message is not
	// nil, their status line.
	SetStatus(ctx context.Context, userID string, status Status, message *string, now time.Time) (Transition, error)
	// Heartbeat marks nodeID alive at now, reports which of connIDs (no
	// duplicates) it does not hold, and removes the node's connections
	// that are missing from connIDs and were connected before pruneBefore
	// (their Disconnect was lost), returning those users' transitions.
	Heartbeat(ctx context.Context, nodeID string, connIDs []string, now, pruneBefore time.Time) (unknown []string, pruned []Transition, err error)
	// Load returns the records of userIDs, in the same order; a user the
	// store knows nothing about has a zero record with only UserID set.
	Load(ctx context.Context, userIDs []string) ([]Record, error)
	// Hydrate merges durable fields into the state store without
	// overwriting newer values there, and marks the users hydrated.
	Hydrate(ctx context.Context, ds []Durable) error
	// StaleNodes returns the nodes whose last sign of life is before
	// cutoff.
	StaleNodes(ctx context.Context, cutoff time.Time) ([]Node, error)
	// LockNode takes a short exclusive lock on sweeping nodeID, so that
	// replicas do not sweep the same node at once. ok is false when
	// another holder has it; unlock releases it.
	LockNode(ctx context.Context, nodeID string, ttl time.Duration) (unlock func(context.Context) error, ok bool, err error)
	// SweepNode removes every connection of nodeID if its last sign of life
	// is still before cutoff, and forgets the node. Users left without
	// connections appear offline with last_seen = the node's last sign of
	// life.
	SweepNode(ctx context.Context, nodeID string, cutoff, now time.Time) ([]Transition, error)
}

// DurableStore keeps last-seen times and status lines beyond the state
// store's lifetime.
type DurableStore interface {
	// SaveLastSeen records each entry's LastSeen as that user's last-seen
	// time unless a later one is stored. A sweep passes thousands at once.
	SaveLastSeen(ctx context.Context, seen []Durable) error
	// SaveMessage records userID's status line.
	SaveMessage(ctx context.Context, userID, message string, now time.Time) error
	// Load returns what is stored of userIDs; unknown users are absent.
	Load(ctx context.Context, userIDs []string) (map[string]Durable, error)
}

// ChangePublisher tells gateways and presence streams about a change.
type ChangePublisher interface {
	PublishChange(ctx context.Context, c Change) error
}

// ChangeFeed delivers published changes.
type ChangeFeed interface {
	// Subscribe starts delivering the changes of userIDs. When it returns,
	// the subscription is in place: a change published afterwards is
	// delivered.
	Subscribe(ctx context.Context, userIDs []string) (Subscription, error)
}

// Subscription is a live feed of changes.
type Subscription interface {
	// Next returns the next change, in the order the changes arrived (a
	// single publisher's changes arrive in publish order, across users
	// too). It fails with ErrSlowSubscriber once changes had to be dropped
	// because the reader fell behind, and with ctx's error when ctx ends.
	Next(ctx context.Context) (Change, error)
	// Close stops the delivery.
	Close() error
}

// FriendLister names a user's friends.
type FriendLister interface {
	// FriendIDs returns the ids of the caller's friends, at most limit+1
	// (so that the caller can tell the limit was exceeded).
	FriendIDs(ctx context.Context, caller Caller, limit int) ([]string, error)
}

// MemberLister names a channel's members, as the caller may see them.
type MemberLister interface {
	// MemberIDs returns the ids of channelID's members, at most limit+1.
	// It fails with ErrChannelNotFound or ErrForbidden when the caller may
	// not see the channel.
	MemberIDs(ctx context.Context, caller Caller, channelID string, limit int) ([]string, error)
}
