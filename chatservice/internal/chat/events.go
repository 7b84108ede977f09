package chat

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event types. The durable ones are the eventbus types of the same name
// (published on events.<type>); EventReceipt is realtime only.
const (
	EventMessageSent    = "message.sent"
	EventMessageUpdated = "message.updated"
	EventMessageDeleted = "message.deleted"
	EventChannelCreated = "channel.created"
	EventUserJoined     = "user.joined"
	EventUserLeft       = "user.left"
	// EventReceipt moves a read position; only a realtime "receipt" frame.
	EventReceipt = "message.read"
)

// Event is something that happened in a channel, as the publisher needs it
// to build both the durable event and the realtime frame.
type Event struct {
	// ID is the event id: the JetStream Nats-Msg-Id, so republishing is
	// harmless.
	ID        string
	Type      string
	ChannelID string
	// ChannelType lets consumers (notifications) decide without a lookup.
	ChannelType string
	// ActorID is the user who caused the event (the sender, the joiner, the
	// remover); it becomes the frame's user_id.
	ActorID string
	Time    time.Time
	// Message is set for message.* events: the stored message.
	Message *Message
	// Channel and MemberIDs are set for channel.created.
	Channel   *Channel
	MemberIDs []string
	// Member is set for user.joined and user.left: the membership concerned.
	Member *Member
	// Mentions are the usernames a message.sent mentions (@name), lower-case.
	Mentions []string
	// ReadSeq is the new read position of a receipt.
	ReadSeq int64
}

// OutboxEntry is an event decided before the write it announces: stored
// first, so a crash or a NATS outage between the write and the publish is
// repaired by the relay, which finishes the write if needed and publishes.
type OutboxEntry struct {
	// ID is the event id.
	ID    string
	Event Event
	// CreatedAt is when the entry was written.
	CreatedAt time.Time
	// NextAttemptAt is when the relay may take the entry: a few seconds after
	// CreatedAt, so the request that wrote it normally finishes it first.
	NextAttemptAt time.Time
	// Attempts counts relay attempts.
	Attempts int
}

// sentEventID is deterministic so that concurrent retries of one send share
// one outbox entry and one event: JetStream stores it once.
func sentEventID(messageID string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("parley:chat:message.sent:"+messageID)).String()
}

// newEventID returns a time-ordered event id (UUIDv7), like the eventbus.
func newEventID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new event id: %w", err)
	}
	return u.String(), nil
}

// messageIDFor returns the id of the message a sender stores with a
// client_msg_id: a hash, so every retry names the same document and a
// concurrent retry collides on _id instead of storing a copy.
func messageIDFor(channelID, userID, clientMsgID string) string {
	sum := sha256.Sum256([]byte(channelID + "\x00" + userID + "\x00" + clientMsgID))
	return fmt.Sprintf("m%x", sum[:16])
}
