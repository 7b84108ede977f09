package hub

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// wireFrame is one frame as a client puts it on the wire.
type wireFrame struct {
	fin      bool
	rsv      byte // the three reserved bits, in place (0x70)
	op       byte
	payload  []byte
	unmasked bool
	// length overrides the 7-bit length field (126, 127 and their
	// extended lengths are chosen from the payload otherwise).
	length64 bool
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

func (f wireFrame) bytes() []byte {
	b0 := f.op | f.rsv
	if f.fin {
		b0 |= 0x80
	}
	var b1 byte
	if !f.unmasked {
		b1 = 0x80
	}
	out := []byte{b0, b1}
	n := len(f.payload)
	switch {
	case f.length64 || n > 0xffff:
		out[1] |= 127
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	case n > 125:
		out[1] |= 126
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out[1] |= byte(n)
	}
	if f.unmasked {
		return append(out, f.payload...)
	}
	out = append(out, testMask[:]...)
	for i, c := range f.payload {
		out = append(out, c^testMask[i&3])
	}
	return out
}

func wire(frames ...wireFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.bytes()...)
	}
	return b
}

func text(s string) wireFrame { return wireFrame{fin: true, op: opText, payload: []byte(s)} }

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// parsed is what parse emitted, as "op:payload".
func parseAll(r *wsReader, b []byte, limit int64) ([]string, int, error) {
	var got []string
	n, err := r.parse(b, limit, func(op byte, p []byte) bool {
		got = append(got, fmt.Sprintf("%x:%s", op, p))
		return true
	})
	return got, n, err
}

func TestWSReaderParse(t *testing.T) {
	const limit = 300
	big := strings.Repeat("b", 200) // a 16-bit length
	tests := []struct {
		name     string
		in       []byte
		want     []string
		wantCode int // close code of the error; 0: none
	}{
		{name: "text", in: wire(text("hello")), want: []string{"1:hello"}},
		{name: "empty text", in: wire(text("")), want: []string{"1:"}},
		{name: "binary", in: wire(wireFrame{fin: true, op: opBinary, payload: []byte{0, 1, 2}}), want: []string{"2:\x00\x01\x02"}},
		{name: "16-bit length", in: wire(text(big)), want: []string{"1:" + big}},
		{name: "64-bit length", in: wire(wireFrame{fin: true, op: opText, payload: []byte("x"), length64: true}), want: []string{"1:x"}},
		{name: "several frames", in: wire(text("a"), text("b"), text("c")), want: []string{"1:a", "1:b", "1:c"}},
		{
			name: "fragmented, with a ping between fragments",
			in: wire(
				wireFrame{op: opText, payload: []byte("he")},
				wireFrame{fin: true, op: opPing, payload: []byte("p")},
				wireFrame{op: opContinuation, payload: []byte("ll")},
				wireFrame{fin: true, op: opContinuation, payload: []byte("o")},
				text("next"),
			),
			want: []string{"9:p", "1:hello", "1:next"},
		},
		{name: "pong", in: wire(wireFrame{fin: true, op: opPong, payload: []byte("x")}), want: []string{"a:x"}},
		{name: "close without payload", in: wire(wireFrame{fin: true, op: opClose}), want: []string{"8:"}},
		{name: "close with a code and reason", in: wire(wireFrame{fin: true, op: opClose, payload: closePayload(1000, "bye")}), want: []string{"8:" + string(closePayload(1000, "bye"))}},
		{name: "application close code", in: wire(wireFrame{fin: true, op: opClose, payload: closePayload(4000, "")}), want: []string{"8:" + string(closePayload(4000, ""))}},
		{name: "message of exactly the limit", in: wire(text(strings.Repeat("x", limit))), want: []string{"1:" + strings.Repeat("x", limit)}},

		{name: "unmasked", in: wire(wireFrame{fin: true, op: opText, payload: []byte("x"), unmasked: true}), wantCode: protocol.CloseProtocolError},
		{name: "reserved bit", in: wire(wireFrame{fin: true, rsv: 0x40, op: opText, payload: []byte("x")}), wantCode: protocol.CloseProtocolError},
		{name: "unknown data opcode", in: wire(wireFrame{fin: true, op: 0x3}), wantCode: protocol.CloseProtocolError},
		{name: "unknown control opcode", in: wire(wireFrame{fin: true, op: 0xb}), wantCode: protocol.CloseProtocolError},
		{name: "fragmented control frame", in: wire(wireFrame{op: opPing}), wantCode: protocol.CloseProtocolError},
		{name: "control frame over 125 bytes", in: wire(wireFrame{fin: true, op: opPing, payload: bytes.Repeat([]byte("p"), 126)}), wantCode: protocol.CloseProtocolError},
		{name: "continuation without a message", in: wire(wireFrame{fin: true, op: opContinuation, payload: []byte("x")}), wantCode: protocol.CloseProtocolError},
		{name: "new message inside a fragmented one", in: wire(wireFrame{op: opText, payload: []byte("a")}, text("b")), wantCode: protocol.CloseProtocolError},
		{name: "message over the limit", in: wire(text(strings.Repeat("x", limit+1))), wantCode: protocol.CloseTooBig},
		{
			name:     "fragments over the limit",
			in:       wire(wireFrame{op: opText, payload: bytes.Repeat([]byte("x"), 200)}, wireFrame{fin: true, op: opContinuation, payload: bytes.Repeat([]byte("x"), 101)}),
			wantCode: protocol.CloseTooBig,
		},
		{name: "close with one byte", in: wire(wireFrame{fin: true, op: opClose, payload: []byte{3}}), wantCode: protocol.CloseProtocolError},
		{name: "close code 1005 on the wire", in: wire(wireFrame{fin: true, op: opClose, payload: closePayload(1005, "")}), wantCode: protocol.CloseProtocolError},
		{name: "close code 999", in: wire(wireFrame{fin: true, op: opClose, payload: closePayload(999, "")}), wantCode: protocol.CloseProtocolError},
		{name: "close reason not UTF-8", in: wire(wireFrame{fin: true, op: opClose, payload: closePayload(1000, "\xff")}), wantCode: protocol.CloseInvalidPayload},
		{name: "errors after whole frames", in: wire(text("ok"), wireFrame{fin: true, op: 0x3}), want: []string{"1:ok"}, wantCode: protocol.CloseProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r wsReader
			got, n, err := parseAll(&r, bytes.Clone(tt.in), limit)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("emitted %q, want %q", got, tt.want)
			}
			var wsErr *wsError
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantCode == 0 && n != len(tt.in):
				t.Fatalf("used %d of %d bytes", n, len(tt.in))
			case tt.wantCode != 0 && !errors.As(err, &wsErr):
				t.Fatalf("error %v, want close %d", err, tt.wantCode)
			case tt.wantCode != 0 && wsErr.code != tt.wantCode:
				t.Fatalf("close %d (%v), want %d", wsErr.code, err, tt.wantCode)
			}
		})
	}
}

// TestWSReaderSplit feeds the same frames cut at every byte boundary, as
// reads from a socket may return them: parse must keep what is incomplete
// and emit the same messages.
func TestWSReaderSplit(t *testing.T) {
	in := wire(
		text("first"),
		wireFrame{op: opText, payload: []byte(strings.Repeat("f", 130))},
		wireFrame{fin: true, op: opPong, payload: []byte("pong")},
		wireFrame{fin: true, op: opContinuation, payload: []byte("end")},
		text(""),
		wireFrame{fin: true, op: opClose, payload: closePayload(1000, "")},
	)
	var r wsReader
	want, _, err := parseAll(&r, bytes.Clone(in), 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	for cut := range len(in) {
		var r wsReader
		var pending []byte
		var got []string
		for _, part := range [][]byte{in[:cut], in[cut:]} {
			buf := append(pending, part...)
			g, n, err := parseAll(&r, buf, 1<<10)
			if err != nil {
				t.Fatalf("cut at %d: %v", cut, err)
			}
			got = append(got, g...)
			pending = bytes.Clone(buf[n:])
		}
		if len(pending) != 0 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cut at %d: emitted %q with %d bytes left, want %q", cut, got, len(pending), want)
		}
	}
}

// TestWSReaderRefusesEarly: a frame too big for the limit is refused as soon
// as its header has arrived, before its payload is buffered.
func TestWSReaderRefusesEarly(t *testing.T) {
	hdr := wire(wireFrame{fin: true, op: opText, payload: make([]byte, 70_000)})[:14]
	var r wsReader
	if _, _, err := parseAll(&r, hdr, 64<<10); !errors.Is(err, errTooBig) {
		t.Fatalf("header of a 70,000-byte frame: %v, want %v", err, errTooBig)
	}
}

// FuzzWSReader: no input panics the reader, and reading it in two parts
// gives what reading it whole gives.
func FuzzWSReader(f *testing.F) {
	f.Add(wire(text("hello"), wireFrame{fin: true, op: opPing}), 3)
	f.Add(wire(wireFrame{op: opText, payload: []byte("a")}, wireFrame{fin: true, op: opContinuation, payload: []byte("b")}), 7)
	f.Add(wire(wireFrame{fin: true, op: opClose, payload: closePayload(1001, "x")}), 1)
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 4)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		const limit = 1 << 10
		var whole wsReader
		want, wantN, wantErr := parseAll(&whole, bytes.Clone(in), limit)
		if cut < 0 || cut > len(in) {
			cut = len(in) / 2
		}
		var split wsReader
		got, n, err := parseAll(&split, bytes.Clone(in[:cut]), limit)
		if err == nil {
			rest := append(bytes.Clone(in[n:cut]), in[cut:]...)
			var more []string
			var m int
			more, m, err = parseAll(&split, rest, limit)
			got, n = append(got, more...), n+m
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || (err == nil) != (wantErr == nil) {
			t.Fatalf("split at %d: %q, %v; whole: %q, %v", cut, got, err, want, wantErr)
		}
		if err == nil && n != wantN {
			t.Fatalf("split at %d used %d bytes, whole %d", cut, n, wantN)
		}
	})
}
