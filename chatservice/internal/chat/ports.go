package chat

import (
	"context"
	"io"
	"time"
)

// ChannelStore keeps channels and memberships (MongoDB in production).
type ChannelStore interface {
	// InsertChannel stores a new channel; ErrDuplicate if its id or DM key
	// is taken.
	InsertChannel(ctx context.Context, ch Channel) error
	// GetChannel returns a channel or ErrNotFound. MemberCount is not set.
	GetChannel(ctx context.Context, id string) (Channel, error)
	// GetChannels returns the channels that exist among ids, in any order.
	GetChannels(ctx context.Context, ids []string) ([]Channel, error)
	// BrowseChannels lists public channels by (lower-cased name, id).
	BrowseChannels(ctx context.Context, q BrowseQuery) ([]Channel, error)
	// SetLastMessage records m as the channel's newest message unless one
	// with a higher seq is already recorded. The store may write it
	// behind (see MarkSenderRead).
	SetLastMessage(ctx context.Context, m Message) error
	// ReplaceLastMessage refreshes the preview if it shows m (same seq), for
	// edits and deletes. The store may write it behind.
	ReplaceLastMessage(ctx context.Context, m Message) error
	// MarkSenderRead raises a sender's read position to the seq of the
	// message it sent (never lowers it; a missing member is not an
	// error). Like the previews, it may be written behind: the store's
	// reads show it at once, and it is stored before any outbox entry
	// whose deletion is asked for afterwards (OutboxStore.DeleteOutbox),
	// so the send's own entry covers it until then.
	MarkSenderRead(ctx context.Context, channelID, userID string, seq int64) error

	// AddMember stores a membership. If the user is already a member it
	// returns the stored membership and false.
	AddMember(ctx context.Context, m Member) (Member, bool, error)
	// GetMember returns a membership or ErrNotFound.
	GetMember(ctx context.Context, channelID, userID string) (Member, error)
	// DeleteMember removes a membership and reports whether it existed.
	DeleteMember(ctx context.Context, channelID, userID string) (bool, error)
	// SetMemberRole changes a member's role; ErrNotFound if not a member.
	SetMemberRole(ctx context.Context, channelID, userID, role string) (Member, error)
	// ListMembers lists a channel's members by user id, after afterUserID.
	ListMembers(ctx context.Context, channelID, afterUserID string, limit int) ([]Member, error)
	// FirstMemberWithRole returns the earliest-joined member holding role,
	// other than exceptUserID, or ErrNotFound.
	FirstMemberWithRole(ctx context.Context, channelID, role, exceptUserID string) (Member, error)
	// CountMembers counts the members of each channel.
	CountMembers(ctx context.Context, channelIDs []string) (map[string]int64, error)
	// Memberships lists a user's memberships by channel id, after
	// afterChannelID.
	Memberships(ctx context.Context, userID, afterChannelID string, limit int) ([]Member, error)
	// MemberChannelIDs returns the ids of every channel the user belongs to.
	MemberChannelIDs(ctx context.Context, userID string) ([]string, error)
	// MarkRead raises the member's read position to seq (never lowers it)
	// and returns the stored position; ErrNotFound if not a member.
	MarkRead(ctx context.Context, channelID, userID string, seq int64) (int64, error)
}

// MessageStore keeps messages and the per-channel seq counters.
type MessageStore interface {
	// NextSeq increments and returns the channel's counter.
	NextSeq(ctx context.Context, channelID string) (int64, error)
	// RaiseSeq moves the channel's counter up to at least seq.
	RaiseSeq(ctx context.Context, channelID string, seq int64) error
	// ReleaseSeq moves the channel's counter back to seq-1 if seq is the
	// last one it handed out, and leaves it otherwise.
	ReleaseSeq(ctx context.Context, channelID string, seq int64) error
	// InsertMessage stores m: ErrMessageExists if its id is stored already,
	// ErrSeqTaken if another message of the channel holds its seq.
	InsertMessage(ctx context.Context, m Message) error
	// GetMessage returns a message or ErrNotFound.
	GetMessage(ctx context.Context, id string) (Message, error)
	// UpdateMessage stores the mutable fields of m (content, terms, type,
	// metadata, attachment, edited_at, deleted); ErrNotFound if absent.
	UpdateMessage(ctx context.Context, m Message) error
	// ListMessages answers a history query (see HistoryQuery).
	ListMessages(ctx context.Context, q HistoryQuery) ([]Message, error)
	// SearchMessages returns non-deleted messages of the channels holding
	// every term, newest first (created_at, seq, id descending), after the
	// cursor.
	SearchMessages(ctx context.Context, q SearchQuery) ([]Message, error)
}

// HistoryQuery selects a slice of a channel's history. AfterSeq > 0 or
// BeforeSeq > 0 bound the seqs (exclusive); Descending returns the newest
// first (for "latest" and "before" pages), otherwise the oldest first.
type HistoryQuery struct {
	ChannelID  string
	AfterSeq   int64
	BeforeSeq  int64
	Descending bool
	Limit      int
}

// SearchQuery is a message search. Terms are already normalised.
type SearchQuery struct {
	ChannelIDs []string
	Terms      []string
	After      *SearchCursor
	Limit      int
}

// SearchCursor is the position after the last message of a search page.
type SearchCursor struct {
	CreatedAt time.Time
	Seq       int64
	ID        string
}

// BrowseQuery pages through public channels.
type BrowseQuery struct {
	// NameContains filters on the lower-cased name; empty for all.
	NameContains string
	// AfterName and AfterID continue after the last channel of a page.
	AfterName string
	AfterID   string
	Limit     int
}

// CacheStatus says how much of a query the history cache could answer.
type CacheStatus int

const (
	// CacheMiss: the channel is not cached at all.
	CacheMiss CacheStatus = iota
	// CachePartial: the channel is cached, but not back far enough for this
	// query.
	CachePartial
	// CacheHit: the answer is exactly what the store would return.
	CacheHit
)

// HistoryCache is the bounded recent-history cache (Redis in production).
// MongoDB stays the source of truth: every method may fail, and the
// service then reads the store.
type HistoryCache interface {
	// Read answers q if the cache covers it completely.
	Read(ctx context.Context, q HistoryQuery) ([]Message, CacheStatus, error)
	// Fill adds a channel's newest messages to the cache; complete says
	// they reach back to the channel's first message.
	Fill(ctx context.Context, channelID string, newest []Message, complete bool) error
	// Put adds or replaces one message (after a send, an edit, a delete).
	Put(ctx context.Context, m Message) error
	// Invalidate forgets a channel, after a write that could not be cached.
	Invalidate(ctx context.Context, channelID string) error
}

// OutboxStore keeps the events that are decided but not yet published.
type OutboxStore interface {
	// PutOutbox stores an entry; ErrDuplicate if its id exists.
	PutOutbox(ctx context.Context, e OutboxEntry) error
	// DeleteOutbox removes an entry (no error if absent), but only after
	// the writes asked for before it, including those written behind; it
	// may return before the entry is gone.
	DeleteOutbox(ctx context.Context, id string) error
	// DueOutbox lists entries whose NextAttemptAt is not after now, oldest
	// first.
	DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxEntry, error)
	// ClaimOutbox leases a due entry until until (so other replicas skip
	// it), counting an attempt; false if it is gone or leased elsewhere.
	ClaimOutbox(ctx context.Context, id string, now, until time.Time) (bool, error)
}

// AttachmentStore keeps attachment files (GridFS in production).
type AttachmentStore interface {
	// SaveAttachment stores body under a.ID with a's metadata and returns
	// what was stored. If reading body fails, the partial file is removed
	// and the read error returned (wrapped).
	SaveAttachment(ctx context.Context, a Attachment, body io.Reader) (Attachment, error)
	// GetAttachment returns an attachment's metadata or ErrNotFound.
	GetAttachment(ctx context.Context, id string) (Attachment, error)
	// OpenAttachment opens an attachment's content; ErrNotFound if absent.
	OpenAttachment(ctx context.Context, id string) (io.ReadCloser, error)
	// DeleteAttachment removes an attachment; ErrNotFound if absent.
	DeleteAttachment(ctx context.Context, id string) error
}

// EventPublisher announces what happened: the durable event (JetStream) for
// event types that have one, and the realtime frame (core NATS) for those
// that have one. Publishing the same event id twice stores it once.
type EventPublisher interface {
	Publish(ctx context.Context, ev Event) error
}

// UserDirectory tells which user ids exist (the user service in production).
type UserDirectory interface {
	// MissingUsers returns the ids among ids that name no user.
	MissingUsers(ctx context.Context, ids []string) ([]string, error)
}

// Clock tells the time; tests inject a fixed or stepping one.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC, truncated to milliseconds (what BSON
// dates keep), so a value read back compares equal to the one written.
func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
