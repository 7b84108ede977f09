package protocol

import "encoding/json"

// Client frame data.

// AuthenticateData is the data of authenticate. Sent after welcome, it
// replaces the connection's token with a fresh one for the same user (access
// tokens expire; the connection need not).
type AuthenticateData struct {
	Token string `json:"token"`
}

// SendMessageData is the data of send_message; the channel is the
// envelope's.
type SendMessageData struct {
	Content      string            `json:"content"`
	Type         string            `json:"type"`
	ClientMsgID  string            `json:"client_msg_id"`
	Metadata     map[string]string `json:"metadata"`
	AttachmentID string            `json:"attachment_id"`
}

// EditMessageData is the data of edit_message.
type EditMessageData struct {
	MessageID string `json:"message_id"`
	Content   string `json:"content"`
}

// DeleteMessageData is the data of delete_message.
type DeleteMessageData struct {
	MessageID string `json:"message_id"`
}

// TypingData is the data of user_typing in both directions. Typing absent
// or true means "is typing"; false means "stopped typing". Clients expire an
// indicator by themselves after a few seconds without a new frame.
type TypingData struct {
	Typing *bool `json:"typing,omitempty"`
}

// SyncData is the data of sync: the last seq the client has of each
// channel (0 for none).
type SyncData struct {
	Channels map[string]Int `json:"channels"`
}

// MarkReadData is the data of mark_read.
type MarkReadData struct {
	Seq Int `json:"seq"`
}

// SetStatusData is the data of set_status; an absent status_message keeps
// the current one.
type SetStatusData struct {
	Status        string  `json:"status"`
	StatusMessage *string `json:"status_message,omitempty"`
}

// Server frame data.

// WelcomeData is the data of welcome, sent once authenticated.
type WelcomeData struct {
	UserID string `json:"user_id"`
	// SessionID identifies this WebSocket session (it is also its presence
	// connection id); it changes on every connection.
	SessionID string `json:"session_id"`
	// NodeID names the gateway replica holding the connection.
	NodeID string `json:"node_id"`
	// HeartbeatIntervalMS is how often the client should send ping when it
	// cannot answer WebSocket pings itself.
	HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms"`
	// MaxFrameBytes is the largest frame the server accepts.
	MaxFrameBytes int64 `json:"max_frame_bytes"`
}

// ErrorData is the data of error.
type ErrorData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// JoinResult is the ack data of join_channel.
type JoinResult struct {
	Channel     string `json:"channel"`
	ChannelType string `json:"channel_type"`
	IsMember    bool   `json:"is_member"`
	CanWrite    bool   `json:"can_write"`
	Role        string `json:"role,omitempty"`
}

// SyncResult is the ack data of sync.
type SyncResult struct {
	Channels map[string]SyncChannelResult `json:"channels"`
}

// SyncChannelResult reports what sync delivered for one channel. When
// Truncated is set, more messages exist than one sync replays: the client
// pages the rest with GET /v1/channels/{id}/messages?after_seq=NextAfterSeq
// until it reaches the live messages it receives from now on.
type SyncChannelResult struct {
	// Delivered counts the message frames sent before this ack.
	Delivered int `json:"delivered"`
	// LastSeq is the newest seq delivered (or the client's own if none).
	LastSeq      int64      `json:"last_seq"`
	Truncated    bool       `json:"truncated,omitempty"`
	NextAfterSeq int64      `json:"next_after_seq,omitempty"`
	Error        *ErrorData `json:"error,omitempty"`
}

// PresenceData is the data of user_online and user_offline.
type PresenceData struct {
	UserID string `json:"user_id"`
	// Status is online, away, busy (user_online) or offline (user_offline).
	Status string `json:"status"`
	// LastSeen is passed through as the presence service wrote it.
	LastSeen    json.RawMessage `json:"last_seen,omitempty"`
	DeviceCount int             `json:"device_count,omitempty"`
}

// ReceiptData is the data of receipt.
type ReceiptData struct {
	// Kind is "delivered" or "read".
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"`
	UserID string `json:"user_id"`
}

// Receipt kinds.
const (
	ReceiptDelivered = "delivered"
	ReceiptRead      = "read"
)

// Encode marshals a server frame.
func Encode(f Frame) ([]byte, error) { return json.Marshal(f) }
