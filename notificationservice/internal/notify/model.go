package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Channel is how a notification reaches the user.
type Channel string

// Delivery channels, as the API spells them.
const (
	// ChannelPush is mobile push through Firebase Cloud Messaging.
	ChannelPush Channel = "push"
	// ChannelWebPush is browser push (RFC 8030, payload encrypted per RFC 8291).
	ChannelWebPush Channel = "webpush"
	// ChannelEmail is email over SMTP.
	ChannelEmail Channel = "email"
)

// Channels lists every delivery channel, one job consumer each.
func Channels() []Channel { return []Channel{ChannelPush, ChannelWebPush, ChannelEmail} }

// Kind says why a notification was sent.
type Kind string

// Notification kinds.
const (
	KindMessage       Kind = "message"
	KindMention       Kind = "mention"
	KindDirect        Kind = "direct"
	KindFriendRequest Kind = "friend_request"
	KindDigest        Kind = "digest"
	KindManual        Kind = "manual"
)

// Status is where a notification stands.
type Status string

// Notification statuses.
const (
	StatusQueued     Status = "queued"
	StatusSent       Status = "sent"
	StatusFailed     Status = "failed"
	StatusSuppressed Status = "suppressed"
	// StatusDryRun: no provider is configured for the channel, so nothing
	// was sent; the record shows what would have been.
	StatusDryRun Status = "dry_run"
)

// Terminal reports whether no further delivery happens in this status.
func (s Status) Terminal() bool { return s != StatusQueued }

// Priority of a push notification.
type Priority string

// Priorities. High wakes the device (FCM android priority HIGH, APNs
// priority 10, Web Push Urgency high): direct messages and mentions.
const (
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
)

// Platform of a registered device.
type Platform string

// Device platforms.
const (
	PlatformFCM     Platform = "fcm"
	PlatformWebPush Platform = "webpush"
)

// Channel is the delivery channel serving the platform.
func (p Platform) Channel() Channel {
	if p == PlatformWebPush {
		return ChannelWebPush
	}
	return ChannelPush
}

// Reasons recorded with failed, suppressed and dry-run notifications.
const (
	ReasonQuietHours   = "quiet hours"
	ReasonMuted        = "channel muted"
	ReasonUnregistered = "unregistered"
	ReasonDeviceGone   = "device no longer registered"
	ReasonNoProvider   = "dry run: no provider configured for this channel, nothing was sent"
	ReasonNoEmail      = "no email address"
)

// EmailTarget is the single delivery target of an email notification.
const EmailTarget = "email"

// Notification is one notification over one channel, with the outcome of
// each of its delivery targets (the user's devices of that channel, or the
// email address).
type Notification struct {
	ID       string
	UserID   string // empty for an email to a bare address
	Channel  Channel
	Kind     Kind
	Title    string
	Body     string
	Data     map[string]string
	Priority Priority
	// ChatChannelID is the chat channel the notification is about, if any.
	ChatChannelID string
	Status        Status
	FailureReason string
	// Attempts counts provider calls, retries included.
	Attempts int
	// Targets are the delivery targets chosen when it was created: device
	// ids, or EmailTarget.
	Targets []string
	// Deliveries holds the final outcome per target; a target without an
	// entry is still queued.
	Deliveries map[string]Delivery
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Delivery is the final outcome for one target.
type Delivery struct {
	Status Status
	Reason string
	At     time.Time
}

// aggregate is the overall status implied by the deliveries: sent as soon
// as one target got it, failed or dry_run once every target is settled
// without success, queued before. ok is false while queued.
func (n Notification) aggregate() (st Status, reason string, ok bool) {
	settled, dry := 0, 0
	for _, t := range n.Targets {
		d, found := n.Deliveries[t]
		if !found {
			continue
		}
		settled++
		switch d.Status {
		case StatusSent:
			return StatusSent, "", true
		case StatusDryRun:
			dry++
		default:
			if reason == "" {
				reason = d.Reason
			}
		}
	}
	if settled < len(n.Targets) {
		return StatusQueued, "", false
	}
	if dry == settled {
		return StatusDryRun, ReasonNoProvider, true
	}
	return StatusFailed, reason, true
}

// Device is a registered push endpoint of a user.
type Device struct {
	ID       string
	UserID   string
	Platform Platform
	// FCMToken is the registration token (PlatformFCM).
	FCMToken string
	// WebPush is the browser subscription (PlatformWebPush).
	WebPush   WebPushSubscription
	CreatedAt time.Time
	UpdatedAt time.Time
}

// WebPushSubscription is a browser's PushSubscription.
type WebPushSubscription struct {
	Endpoint string
	P256dh   string
	Auth     string
}

// Key identifies the token or subscription endpoint regardless of the user:
// registering it again finds the same device.
func (d Device) Key() string {
	v := d.FCMToken
	if d.Platform == PlatformWebPush {
		v = d.WebPush.Endpoint
	}
	sum := sha256.Sum256([]byte(string(d.Platform) + "\x00" + v))
	return hex.EncodeToString(sum[:])
}

// Job is one delivery: one notification to one target. It travels through
// the work queue as JSON.
type Job struct {
	NotificationID string            `json:"notification_id"`
	UserID         string            `json:"user_id,omitempty"`
	Channel        Channel           `json:"channel"`
	Target         string            `json:"target"`
	Kind           Kind              `json:"kind"`
	Title          string            `json:"title"`
	Body           string            `json:"body,omitempty"`
	Data           map[string]string `json:"data,omitempty"`
	Priority       Priority          `json:"priority,omitempty"`
	Email          *EmailContent     `json:"email,omitempty"`
	CreatedAt      time.Time         `json:"created_at"`
}

// Key is the job's idempotency key (the queue's message id): the same
// notification to the same target is queued once.
func (j Job) Key() string { return j.NotificationID + "." + j.Target }

// EmailContent is what an email job sends.
type EmailContent struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// ListUnsubscribe are the URIs of the List-Unsubscribe header (RFC
	// 2369); OneClick adds List-Unsubscribe-Post (RFC 8058).
	ListUnsubscribe []string `json:"list_unsubscribe,omitempty"`
	OneClick        bool     `json:"one_click,omitempty"`
}

// Attempt describes the delivery of a job being handled.
type Attempt struct {
	// Number is 1 for the first delivery.
	Number int
	// Final is set on the last delivery the queue allows: a temporary
	// failure now is final.
	Final bool
}

// PushMessage is what a push provider delivers to one device.
type PushMessage struct {
	NotificationID string
	Device         Device
	Kind           Kind
	Title          string
	Body           string
	Data           map[string]string
	Priority       Priority
}

// EmailMessage is what the email provider sends.
type EmailMessage struct {
	NotificationID string
	EmailContent
}

// User is what the notification service needs to know about a user.
type User struct {
	ID          string
	Username    string
	DisplayName string
}

// Name is how notifications call the user.
func (u User) Name() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	if u.Username != "" {
		return u.Username
	}
	return "Someone"
}

// Presence is what the presence service says about a user.
type Presence struct {
	// Connected: at least one live connection (WebSocket) right now.
	Connected bool
	// LastSeen is when the user was last connected; zero if never.
	LastSeen time.Time
}

// DigestItem is an unread direct message or mention waiting for the email
// digest.
type DigestItem struct {
	ID          string
	UserID      string
	Kind        Kind
	ChannelID   string
	ChannelName string
	MessageID   string
	Seq         int64
	SenderName  string
	Text        string
	CreatedAt   time.Time
}

// MessageSent is the part of a message.sent event the service uses.
type MessageSent struct {
	EventID     string
	ChannelID   string
	ChannelType string // "public", "group" or "private"
	ChannelName string
	MessageID   string
	Seq         int64
	SenderID    string
	Content     string
	MessageType string // "text", "image" or "file"
	// Mentions are usernames (without '@') the chat service found; the
	// content is parsed too.
	Mentions []string
	// MentionedUserIDs, when the event carries them, skip the lookup.
	MentionedUserIDs []string
	SentAt           time.Time
}

// FriendRequested is the part of a friend.requested event the service uses.
type FriendRequested struct {
	EventID    string
	FromUserID string
	ToUserID   string
}

// Chat channel types.
const (
	ChatPublic  = "public"
	ChatGroup   = "group"
	ChatPrivate = "private"
)
