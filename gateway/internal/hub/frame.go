package hub

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// frameKind is a server frame type as a small integer: outFrame carries it
// instead of a string, and the per-type metrics are an array.
type frameKind uint8

const (
	kindOther frameKind = iota
	kindWelcome
	kindAck
	kindError
	kindMessage
	kindMessageUpdated
	kindMessageDeleted
	kindUserTyping
	kindUserJoined
	kindUserLeft
	kindUserOnline
	kindUserOffline
	kindReceipt
	kindPong
	numKinds
)

func kindOf(t string) frameKind {
	switch t {
	case protocol.TypeWelcome:
		return kindWelcome
	case protocol.TypeAck:
		return kindAck
	case protocol.TypeError:
		return kindError
	case protocol.TypeMessage:
		return kindMessage
	case protocol.TypeMessageUpdated:
		return kindMessageUpdated
	case protocol.TypeMessageDeleted:
		return kindMessageDeleted
	case protocol.TypeUserTyping:
		return kindUserTyping
	case protocol.TypeUserJoined:
		return kindUserJoined
	case protocol.TypeUserLeft:
		return kindUserLeft
	case protocol.TypeUserOnline:
		return kindUserOnline
	case protocol.TypeUserOffline:
		return kindUserOffline
	case protocol.TypeReceipt:
		return kindReceipt
	case protocol.TypePong:
		return kindPong
	}
	return kindOther
}

func (k frameKind) String() string {
	switch k {
	case kindWelcome:
		return protocol.TypeWelcome
	case kindAck:
		return protocol.TypeAck
	case kindError:
		return protocol.TypeError
	case kindMessage:
		return protocol.TypeMessage
	case kindMessageUpdated:
		return protocol.TypeMessageUpdated
	case kindMessageDeleted:
		return protocol.TypeMessageDeleted
	case kindUserTyping:
		return protocol.TypeUserTyping
	case kindUserJoined:
		return protocol.TypeUserJoined
	case kindUserLeft:
		return protocol.TypeUserLeft
	case kindUserOnline:
		return protocol.TypeUserOnline
	case kindUserOffline:
		return protocol.TypeUserOffline
	case kindReceipt:
		return protocol.TypeReceipt
	case kindPong:
		return protocol.TypePong
	}
	return labelOther
}

// outFrame is one encoded server frame on its way to sockets. A frame that
// fans out is encoded once and the same *outFrame is queued on every
// recipient's connection, so it must not be modified once queued.
type outFrame struct {
	// data is the whole WebSocket frame, header included (wsText).
	data []byte
	kind frameKind
	// ping marks the hub's ping request: the write loop sends a WebSocket
	// ping control frame instead of data.
	ping bool
	// receipts: a delivered receipt is recorded when this message frame is
	// written to a connection of a user other than the sender.
	receipts bool
	// seq of a message frame (0 otherwise).
	seq int64
	// sender is the user who caused the frame (sender, typist).
	sender  string
	channel string
	// recvAt (unix ns) is when the frame arrived from NATS (0 for replies);
	// pubAt when its publisher stamped it, if it did.
	recvAt, pubAt int64
}

// rtHeader is what the hub reads of a realtime frame from NATS; the frame
// itself is forwarded byte for byte.
type rtHeader struct {
	Type      string       `json:"type"`
	Timestamp protocol.Int `json:"timestamp"`
	UserID    string       `json:"user_id"`
	Data      struct {
		Seq    protocol.Int `json:"seq"`
		UserID string       `json:"user_id"`
		Kind   string       `json:"kind"`
	} `json:"data"`
}

// marshalProto writes protos the way the REST API does: proto field names,
// zero values included.
func marshalProto(m proto.Message) (json.RawMessage, error) {
	return protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
}

// encodeFrame encodes a server frame; data may be nil, a json.RawMessage,
// a proto message or any JSON-marshalable value.
func encodeFrame(typ, id, channel string, data any, ts time.Time, userID string) ([]byte, error) {
	f := protocol.Frame{Type: typ, ID: id, Channel: channel, Timestamp: ts.UnixMilli(), UserID: userID}
	switch d := data.(type) {
	case nil:
	case json.RawMessage:
		f.Data = d
	case proto.Message:
		raw, err := marshalProto(d)
		if err != nil {
			return nil, err
		}
		f.Data = raw
	default:
		raw, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		f.Data = raw
	}
	return protocol.Encode(f)
}

// messageFrame encodes a stored message as the `message` frame the chat
// service publishes, for replays from history.
func messageFrame(m *chatv1.Message) (*outFrame, error) {
	ts := time.Now()
	if m.GetCreatedAt() != nil {
		ts = m.GetCreatedAt().AsTime()
	}
	b, err := encodeFrame(protocol.TypeMessage, "", m.GetChannelId(), m, ts, m.GetUserId())
	if err != nil {
		return nil, err
	}
	return &outFrame{data: wsText(b), kind: kindMessage, seq: m.GetSeq(), sender: m.GetUserId(), channel: m.GetChannelId()}, nil
}
