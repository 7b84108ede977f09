// Package protocol is Parley's WebSocket protocol v1 (DESIGN section 3, the
// AsyncAPI document apis/asyncapi/parley-ws.yaml): the frame envelope, the
// frame types of both directions, the data each carries, the error and close
// codes, and strict decoding of what clients send.
//
// It has no transport in it, so the hub, the load generator's expectations
// and the conformance tests all agree on one definition.
package protocol

import (
	"encoding/json"
	"slices"
)

// Client -> server frame types.
const (
	TypeAuthenticate  = "authenticate"
	TypeJoinChannel   = "join_channel"
	TypeLeaveChannel  = "leave_channel"
	TypeSendMessage   = "send_message"
	TypeEditMessage   = "edit_message"
	TypeDeleteMessage = "delete_message"
	TypeUserTyping    = "user_typing" // both directions
	TypeSync          = "sync"
	TypeMarkRead      = "mark_read"
	TypeSetStatus     = "set_status"
	TypePing          = "ping"
)

// Server -> client frame types.
const (
	TypeWelcome        = "welcome"
	TypeAck            = "ack"
	TypeError          = "error"
	TypeMessage        = "message"
	TypeMessageUpdated = "message_updated"
	TypeMessageDeleted = "message_deleted"
	TypeUserJoined     = "user_joined"
	TypeUserLeft       = "user_left"
	TypeUserOnline     = "user_online"
	TypeUserOffline    = "user_offline"
	TypeReceipt        = "receipt"
	TypePong           = "pong"
)

// ClientTypes lists every frame type a client may send.
func ClientTypes() []string {
	return []string{
		TypeAuthenticate, TypeJoinChannel, TypeLeaveChannel, TypeSendMessage,
		TypeEditMessage, TypeDeleteMessage, TypeUserTyping, TypeSync,
		TypeMarkRead, TypeSetStatus, TypePing,
	}
}

// ServerTypes lists every frame type the server sends.
func ServerTypes() []string {
	return []string{
		TypeWelcome, TypeAck, TypeError, TypeMessage, TypeMessageUpdated,
		TypeMessageDeleted, TypeUserTyping, TypeUserJoined, TypeUserLeft,
		TypeUserOnline, TypeUserOffline, TypeReceipt, TypePong,
	}
}

// IsClientType reports whether t is a frame type clients may send.
func IsClientType(t string) bool { return slices.Contains(ClientTypes(), t) }

// Error codes carried by error frames.
const (
	CodeUnauthenticated = "unauthenticated"
	CodeForbidden       = "forbidden"
	CodeNotFound        = "not_found"
	CodeInvalidArgument = "invalid_argument"
	CodeRateLimited     = "rate_limited"
	CodeSlowConsumer    = "slow_consumer"
	CodeInternal        = "internal"
)

// ErrorCodes lists every error code.
func ErrorCodes() []string {
	return []string{
		CodeUnauthenticated, CodeForbidden, CodeNotFound, CodeInvalidArgument,
		CodeRateLimited, CodeSlowConsumer, CodeInternal,
	}
}

// WebSocket close codes the server uses.
const (
	// CloseNormal ends a connection the client asked to close.
	CloseNormal = 1000
	// CloseGoingAway: the server is draining (shutdown or deploy); reconnect
	// (to another replica) and sync.
	CloseGoingAway = 1001
	// CloseProtocolError: the client broke the WebSocket protocol (an
	// unmasked frame, an unknown opcode, a malformed close frame).
	CloseProtocolError = 1002
	// CloseInvalidPayload: a close frame's reason was not UTF-8.
	CloseInvalidPayload = 1007
	// CloseTooBig: a frame exceeded the maximum frame size.
	CloseTooBig = 1009
	// CloseServiceRestart: the server lost more live traffic than it can
	// replay (a NATS outage longer than the sync bound); reconnect and sync.
	CloseServiceRestart = 1012
	// CloseTryAgainLater: the server is busy setting up other connections
	// (a reconnect storm); reconnect after a short, randomised delay.
	CloseTryAgainLater = 1013
	// CloseAuthFailed: authentication failed or did not arrive in time.
	CloseAuthFailed = 4001
	// ClosePolicy: sustained rate-limit abuse, or a connection cap reached
	// after first-frame authentication.
	ClosePolicy = 4008
	// CloseSlowConsumer: the client did not read fast enough and its send
	// queue overflowed.
	CloseSlowConsumer = 4013
)

// CloseCodes lists every close code the server sends.
func CloseCodes() []int {
	return []int{CloseNormal, CloseGoingAway, CloseProtocolError, CloseInvalidPayload, CloseTooBig, CloseServiceRestart, CloseTryAgainLater, CloseAuthFailed, ClosePolicy, CloseSlowConsumer}
}

// Field bounds of the envelope.
const (
	// MaxIDLength bounds the client's request id echoed in ack/error.
	MaxIDLength = 128
	// MaxChannelIDLength matches the services' channel id validation.
	MaxChannelIDLength = 64
)

// ValidID reports whether s is a well-formed channel, user or message id:
// `^[A-Za-z0-9_-]{1,64}$`, the syntax every Parley service accepts. Checking
// it here also keeps NATS wildcards ('*', '>') and token separators ('.') out
// of the subjects built from channel ids.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxChannelIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// Frame is the envelope of every frame in both directions. Timestamp (unix
// milliseconds) and UserID are set by the server on the frames it sends and
// ignored on frames clients send.
type Frame struct {
	Type      string          `json:"type"`
	ID        string          `json:"id,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp int64           `json:"timestamp,omitempty"`
	UserID    string          `json:"user_id,omitempty"`
}
