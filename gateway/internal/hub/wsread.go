package hub

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// The read side of the WebSocket protocol (RFC 6455 section 5) for the
// frames a client sends. gorilla/websocket still writes every frame; the
// hub reads them itself because gorilla's reader buffers ahead of the
// frame it returns and blocks until a data frame arrives, so it needs a
// goroutine per connection waiting in it. wsReader instead parses whatever
// bytes a read returned and keeps an incomplete frame for the next read,
// which is what lets one poller serve every idle connection (see
// poller_linux.go and docs/decisions/0012-read-poller.md).

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// maxControlPayload is the largest payload of a control frame.
const maxControlPayload = 125

// wsError is a client's violation of the protocol; code is the close code
// that answers it.
type wsError struct {
	code int
	text string
}

func (e *wsError) Error() string {
	return fmt.Sprintf("websocket: %s (close %d)", e.text, e.code)
}

func protocolError(text string) error {
	return &wsError{code: protocol.CloseProtocolError, text: text}
}

// errTooBig is a message over the read limit.
var errTooBig = &wsError{code: protocol.CloseTooBig, text: "message too big"}

// wsReader is a connection's read state between reads: the bytes of an
// incomplete frame, and a fragmented message being put together. Both are
// nil between whole messages, which is where an idle connection sits.
type wsReader struct {
	partial []byte
	msg     []byte
	// msgOp is the opcode of the fragmented message in progress; 0 when
	// there is none.
	msgOp byte
}

// parse reads the whole frames at the start of b, unmasking them in place,
// and calls emit for each control frame and each complete data message;
// the payload is valid only during the call. emit returning false stops
// parse after that frame. parse returns how many bytes of b it used: what
// is left is the start of a frame not yet complete. A frame whose header
// already breaks the protocol, or a message over limit bytes, is an error
// as soon as its header has arrived, so nothing past the limit is ever
// buffered.
func (r *wsReader) parse(b []byte, limit int64, emit func(op byte, payload []byte) bool) (int, error) {
	used := 0
	for {
		fin, op, payload, n, err := r.frame(b[used:], limit)
		if err != nil || n == 0 {
			return used, err
		}
		used += n
		switch {
		case op >= opClose:
			if op == opClose {
				if err := checkClosePayload(payload); err != nil {
					return used, err
				}
			}
			if !emit(op, payload) {
				return used, nil
			}
		case op == opContinuation:
			r.msg = append(r.msg, payload...)
			if fin {
				op, msg := r.msgOp, r.msg
				r.msgOp, r.msg = 0, nil
				if !emit(op, msg) {
					return used, nil
				}
			}
		case !fin:
			r.msgOp = op
			r.msg = append([]byte(nil), payload...)
		default:
			if !emit(op, payload) {
				return used, nil
			}
		}
	}
}

// frame parses one frame at the start of b. n is 0 when b holds no whole
// frame yet.
func (r *wsReader) frame(b []byte, limit int64) (fin bool, op byte, payload []byte, n int, err error) {
	if len(b) < 2 {
		return false, 0, nil, 0, nil
	}
	b0, b1 := b[0], b[1]
	fin, op = b0&0x80 != 0, b0&0x0f
	if b0&0x70 != 0 {
		return false, 0, nil, 0, protocolError("reserved bits set")
	}
	if b1&0x80 == 0 {
		return false, 0, nil, 0, protocolError("client frame not masked")
	}
	length, hdr := uint64(b1&0x7f), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return false, 0, nil, 0, nil
		}
		length, hdr = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return false, 0, nil, 0, nil
		}
		length, hdr = binary.BigEndian.Uint64(b[2:10]), 10
		if length>>63 != 0 {
			return false, 0, nil, 0, protocolError("invalid payload length")
		}
	}
	switch op {
	case opClose, opPing, opPong:
		if !fin || length > maxControlPayload {
			return false, 0, nil, 0, protocolError("invalid control frame")
		}
	case opText, opBinary:
		if r.msgOp != 0 {
			return false, 0, nil, 0, protocolError("data frame inside a fragmented message")
		}
		if length > uint64(limit) {
			return false, 0, nil, 0, errTooBig
		}
	case opContinuation:
		if r.msgOp == 0 {
			return false, 0, nil, 0, protocolError("continuation frame without a message")
		}
		if uint64(len(r.msg))+length > uint64(limit) {
			return false, 0, nil, 0, errTooBig
		}
	default:
		return false, 0, nil, 0, protocolError("unknown opcode")
	}
	hdr += 4 // the masking key
	if len(b) < hdr || uint64(len(b)-hdr) < length {
		return false, 0, nil, 0, nil
	}
	payload = b[hdr : hdr+int(length)]
	unmask(b[hdr-4:hdr], payload)
	return fin, op, payload, hdr + int(length), nil
}

func unmask(key, p []byte) {
	for i := range p {
		p[i] ^= key[i&3]
	}
}

// checkClosePayload checks a close frame's payload: empty, or a code a
// peer may send and a UTF-8 reason (RFC 6455 sections 5.5.1 and 7.4).
func checkClosePayload(p []byte) error {
	switch {
	case len(p) == 0:
		return nil
	case len(p) == 1:
		return protocolError("close frame with a one-byte payload")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validReceivedCloseCode(code) {
		return protocolError("invalid close code")
	}
	if !utf8.Valid(p[2:]) {
		return &wsError{code: protocol.CloseInvalidPayload, text: "close reason not UTF-8"}
	}
	return nil
}

// validReceivedCloseCode reports whether a peer may send code: 1000–1003
// and 1007–1014 of the registered codes, and the 3000–4999 range left to
// libraries and applications.
func validReceivedCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closeCodeOf returns the code of a close frame's payload, 1005 (no status)
// when it has none.
func closeCodeOf(p []byte) int {
	if len(p) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(p))
}

// errPeerClosed ends reading after the client's close frame.
var errPeerClosed = errors.New("websocket: the client closed the connection")
