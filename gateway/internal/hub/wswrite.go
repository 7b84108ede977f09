package hub

import "encoding/binary"

// wsText frames payload as one final, unmasked WebSocket text frame (RFC
// 6455 section 5.2; server frames are never masked): header and payload
// in one buffer. A frame that fans out is framed once and the same bytes
// go to every recipient, each socket taking its frame in a single write
// (see conn.writeNow).
func wsText(payload []byte) []byte {
	n := len(payload)
	var b []byte
	switch {
	case n < 126:
		b = make([]byte, 2, 2+n)
		b[1] = byte(n)
	case n <= 0xffff:
		b = make([]byte, 4, 4+n)
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
	default:
		b = make([]byte, 10, 10+n)
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
	}
	b[0] = 0x80 | 0x1 // FIN, text
	return append(b, payload...)
}
