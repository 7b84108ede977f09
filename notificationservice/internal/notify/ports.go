package notify

import (
	"context"
	"time"
)

// Store keeps notifications, preferences, devices and the digest queue.
type Store interface {
	NotificationStore
	PreferenceStore
	DeviceStore
	DigestStore
}

// NotificationStore keeps the notification history.
type NotificationStore interface {
	// CreateNotifications stores ns in one round trip and returns the ids
	// that already existed (those documents are left as they were).
	CreateNotifications(ctx context.Context, ns []Notification) (existing []string, err error)
	// Notification returns one notification or ErrNotFound.
	Notification(ctx context.Context, id string) (Notification, error)
	// NotificationsByID returns the notifications found among ids.
	NotificationsByID(ctx context.Context, ids []string) (map[string]Notification, error)
	// RecordDelivery stores the outcome of one target unless the target is
	// already sent: it then reports false and changes nothing. It counts
	// the attempt. It returns the notification after the change.
	RecordDelivery(ctx context.Context, id, target string, d Delivery) (Notification, bool, error)
	// RecordRetry counts a failed attempt that will be retried, keeping
	// its reason for the history.
	RecordRetry(ctx context.Context, id, reason string, at time.Time) error
	// SetStatus sets the overall status, except over StatusSent: once one
	// target got the notification, it stays sent.
	SetStatus(ctx context.Context, id string, st Status, reason string, at time.Time) error
	// ListNotifications returns up to limit notifications of userID, newest
	// first, strictly after the cursor (nil: from the newest).
	ListNotifications(ctx context.Context, userID string, after *Cursor, limit int) ([]Notification, error)
}

// Cursor is a position in a user's history: (CreatedAt, ID) descending.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// PreferenceStore keeps preferences; absent means DefaultPreferences.
type PreferenceStore interface {
	// PreferencesOf returns the stored preferences of the users that have
	// any; the others are missing from the map.
	PreferencesOf(ctx context.Context, userIDs []string) (map[string]Preferences, error)
	// SavePreferences replaces a user's preferences.
	SavePreferences(ctx context.Context, userID string, p Preferences, at time.Time) error
	// SetEmailDigest switches only the digest (one-click unsubscribe).
	SetEmailDigest(ctx context.Context, userID string, on bool, at time.Time) error
}

// DeviceStore keeps registered devices.
type DeviceStore interface {
	// RegisterDevice stores d, or returns the device already registered
	// with the same Key (moving it to d.UserID: a token belongs to the app
	// installation, whoever signed in last).
	RegisterDevice(ctx context.Context, d Device) (Device, error)
	// Device returns a device or ErrNotFound.
	Device(ctx context.Context, id string) (Device, error)
	// DevicesOf returns the devices of each user that has any.
	DevicesOf(ctx context.Context, userIDs []string) (map[string][]Device, error)
	// DeleteDevice removes a device; with userID set, only that user's
	// (ErrNotFound otherwise).
	DeleteDevice(ctx context.Context, userID, id string) error
}

// DigestStore keeps the unread items waiting for an email digest and when
// each user last got one.
type DigestStore interface {
	// AddDigestItem stores it once (its id is deterministic).
	AddDigestItem(ctx context.Context, it DigestItem) error
	// DigestUsers returns up to limit users with an item created at or
	// before the cutoff.
	DigestUsers(ctx context.Context, cutoff time.Time, limit int) ([]string, error)
	// DigestItems returns up to limit items of a user, oldest first.
	DigestItems(ctx context.Context, userID string, limit int) ([]DigestItem, error)
	// DeleteDigestItems removes items of a user.
	DeleteDigestItems(ctx context.Context, userID string, ids []string) error
	// ClaimDigest records that a digest is sent to userID at now, unless one
	// was sent less than window ago: at most one digest per window, even
	// with several replicas racing.
	ClaimDigest(ctx context.Context, userID string, now time.Time, window time.Duration) (bool, error)
}

// JobQueue queues delivery jobs; enqueueing the same Job.Key twice within
// the queue's duplicate window stores it once.
type JobQueue interface {
	Enqueue(ctx context.Context, jobs ...Job) error
}

// Member is a chat channel's member and how far they have read it.
type Member struct {
	UserID      string
	LastReadSeq int64
}

// MemberLister lists a chat channel's members (the chat service).
type MemberLister interface {
	ListMembers(ctx context.Context, channelID string) ([]Member, error)
}

// ReadTracker tells how far a member has read a channel (the chat
// service); the digest leaves out what was read meanwhile.
type ReadTracker interface {
	LastReadSeq(ctx context.Context, channelID, userID string) (int64, error)
}

// ChannelDirectory names chat channels for notification titles.
type ChannelDirectory interface {
	ChannelName(ctx context.Context, channelID string) (string, error)
}

// PresenceChecker asks the presence service who is connected.
type PresenceChecker interface {
	// Connected returns the users among ids with a live connection.
	Connected(ctx context.Context, ids []string) (map[string]bool, error)
	// Presence returns one user's presence.
	Presence(ctx context.Context, userID string) (Presence, error)
}

// UserDirectory looks users up (the user service).
type UserDirectory interface {
	// Users returns the users found among ids.
	Users(ctx context.Context, ids []string) (map[string]User, error)
	// Email returns a user's email address, or ErrNoEmail.
	Email(ctx context.Context, userID string) (string, error)
}

// PushSender delivers to one device (FCM or Web Push). It returns nil when
// the push service accepted the message, ErrUnregistered when the device
// is gone, a Temporary error to retry, or a Permanent one.
type PushSender interface {
	Send(ctx context.Context, m PushMessage) error
}

// EmailSender sends one email, with the same error contract as PushSender.
type EmailSender interface {
	SendEmail(ctx context.Context, m EmailMessage) error
}

// Clock returns the current time; tests inject a fixed one.
type Clock func() time.Time
