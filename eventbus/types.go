package eventbus

// Event types. The type is also the subject suffix: an event of type
// "message.sent" is published on "<prefix>.message.sent". The first five are
// the seed's; the rest are the facts the services announce.
const (
	// TypeUserJoined: a user joined a channel (subject id: the channel id).
	TypeUserJoined = "user.joined"
	// TypeUserLeft: a user left a channel (subject id: the channel id).
	TypeUserLeft = "user.left"
	// TypeMessageSent: a message was stored (subject id: the channel id).
	TypeMessageSent = "message.sent"
	// TypeChannelCreated: a channel was created (subject id: the channel id).
	TypeChannelCreated = "channel.created"
	// TypeUserTyping: a user is typing (subject id: the channel id). Usually
	// realtime only; defined so the realtime frame and the event share a name.
	TypeUserTyping = "user.typing"

	// TypeUserRegistered: an account was created (subject id: the user id).
	TypeUserRegistered = "user.registered"
	// TypeUserUpdated: a profile changed (subject id: the user id).
	TypeUserUpdated = "user.updated"
	// TypeFriendRequested: a user asked another to be friends (subject id:
	// the target user's id).
	TypeFriendRequested = "friend.requested"
	// TypeFriendAccepted: a friend request was accepted, the friendship is
	// mutual (subject id: the user id).
	TypeFriendAccepted = "friend.accepted"
	// TypeFriendRemoved: a friendship ended (subject id: the user id).
	TypeFriendRemoved = "friend.removed"
	// TypeChannelUpdated: a channel's name or settings changed (subject id: the channel id).
	TypeChannelUpdated = "channel.updated"
	// TypeMessageUpdated: a message was edited (subject id: the channel id).
	TypeMessageUpdated = "message.updated"
	// TypeMessageDeleted: a message was deleted (subject id: the channel id).
	TypeMessageDeleted = "message.deleted"
	// TypeMessageRead: a read receipt moved (subject id: the channel id).
	TypeMessageRead = "message.read"
	// TypePresenceChanged: a user's status changed (subject id: the user id).
	TypePresenceChanged = "presence.changed"
	// TypeNotificationSent: a notification was delivered (subject id: the user id).
	TypeNotificationSent = "notification.sent"
	// TypeNotificationFailed: a notification could not be delivered (subject id: the user id).
	TypeNotificationFailed = "notification.failed"
)
