package chat

import "time"

// Channel types.
const (
	// ChannelPublic is listed, and anyone signed in may join, read and search it.
	ChannelPublic = "public"
	// ChannelGroup is invite-only: owners and admins add members.
	ChannelGroup = "group"
	// ChannelPrivate is a direct conversation between exactly two users.
	ChannelPrivate = "private"
)

// Member roles, strongest first.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Message types.
const (
	MessageText  = "text"
	MessageImage = "image"
	MessageFile  = "file"
)

// Channel is a conversation.
type Channel struct {
	ID          string
	Name        string
	Type        string
	Description string
	CreatedBy   string
	CreatedAt   time.Time
	// DMKey is the sorted user pair of a direct channel ("a:b"); empty for
	// the other types.
	DMKey string
	// MemberCount is filled in by reads, never stored.
	MemberCount int64
	// LastSeq is the seq of the newest stored message (0 when empty); with
	// LastMessage it is kept on the channel so a channel list needs no
	// message query.
	LastSeq     int64
	LastMessage *Message
}

// Member is a user's membership of a channel.
type Member struct {
	ChannelID   string
	UserID      string
	Role        string
	JoinedAt    time.Time
	LastReadSeq int64
}

// Message is a stored chat message.
type Message struct {
	ID          string
	ChannelID   string
	Seq         int64
	UserID      string
	Content     string
	Type        string
	Metadata    map[string]string
	ClientMsgID string
	Attachment  *Attachment
	CreatedAt   time.Time
	// EditedAt is zero if the message was never edited.
	EditedAt time.Time
	Deleted  bool
	// Terms are the normalised words of Content, for search.
	Terms []string
}

// Attachment is a file stored for a channel.
type Attachment struct {
	ID          string
	ChannelID   string
	UploaderID  string
	Filename    string
	ContentType string
	Size        int64
	CreatedAt   time.Time
}

// URL is where an authenticated client downloads the attachment (the
// gateway serves it).
func (a Attachment) URL() string { return "/v1/attachments/" + a.ID }

// JoinedChannel is a channel as one of its members sees it.
type JoinedChannel struct {
	Channel     Channel
	Role        string
	LastReadSeq int64
	// UnreadCount is LastSeq - LastReadSeq: an upper bound, since seqs the
	// counter skipped are counted too (see the README).
	UnreadCount int64
}

// Caller is who is asking: a signed-in user, or another Parley service.
type Caller struct {
	UserID string
	// Service is true for calls between services (internal RPCs).
	Service bool
}

// Access is what a user may do in a channel.
type Access struct {
	CanRead     bool
	CanWrite    bool
	IsMember    bool
	Role        string
	ChannelType string
}

// roleRank orders roles so "at least admin" is a comparison.
func roleRank(role string) int {
	switch role {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

func validChannelType(t string) bool {
	return t == ChannelPublic || t == ChannelGroup || t == ChannelPrivate
}

func validRole(r string) bool { return roleRank(r) > 0 }

func validMessageType(t string) bool {
	return t == MessageText || t == MessageImage || t == MessageFile
}
