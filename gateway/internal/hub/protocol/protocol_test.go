package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Frame
		wantErr error
	}{
		{"ping", `{"type":"ping","id":"1"}`, Frame{Type: TypePing, ID: "1"}, nil},
		{"send_message", `{"type":"send_message","id":"c-42","channel":"general","data":{"content":"hi"}}`,
			Frame{Type: TypeSendMessage, ID: "c-42", Channel: "general", Data: json.RawMessage(`{"content":"hi"}`)}, nil},
		{"server fields ignored", `{"type":"ping","timestamp":"x","user_id":7,"extra":true}`, Frame{Type: TypePing}, nil},
		{"null data", `{"type":"ping","data":null}`, Frame{Type: TypePing}, nil},
		{"surrounding space", " \n{\"type\":\"ping\"}\t", Frame{Type: TypePing}, nil},
		{"not JSON", `hello`, Frame{}, ErrMalformed},
		{"truncated", `{"type":"ping"`, Frame{}, ErrMalformed},
		{"array", `[{"type":"ping"}]`, Frame{}, ErrMalformed},
		{"empty", ``, Frame{}, ErrMalformed},
		{"not UTF-8", "{\"type\":\"\xff\"}", Frame{}, ErrMalformed},
		{"no type", `{"id":"1"}`, Frame{ID: "1"}, ErrInvalidField},
		{"numeric id echoes nothing", `{"type":"ping","id":5}`, Frame{}, ErrInvalidField},
		{"numeric type keeps the id", `{"type":5,"id":"k"}`, Frame{ID: "k"}, ErrInvalidField},
		{"unknown type", `{"type":"welcome","id":"1"}`, Frame{Type: "welcome", ID: "1"}, ErrUnknownType},
		{"id too long", `{"type":"ping","id":"` + strings.Repeat("x", MaxIDLength+1) + `"}`, Frame{Type: TypePing}, ErrInvalidField},
		{"data not an object", `{"type":"ping","id":"1","data":"x"}`, Frame{Type: TypePing, ID: "1"}, ErrInvalidField},
		{"channel required", `{"type":"join_channel","id":"1"}`, Frame{Type: TypeJoinChannel, ID: "1"}, ErrInvalidField},
		{"channel with a dot", `{"type":"join_channel","channel":"a.b"}`, Frame{Type: TypeJoinChannel, Channel: "a.b"}, ErrInvalidField},
		{"channel wildcard", `{"type":"join_channel","channel":">"}`, Frame{Type: TypeJoinChannel, Channel: ">"}, ErrInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeFrame([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got.Type != tt.want.Type || got.ID != tt.want.ID || got.Channel != tt.want.Channel || !bytes.Equal(got.Data, tt.want.Data) {
				t.Fatalf("frame = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeData(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		check   func(SyncData) bool
		wantErr bool
	}{
		{"numbers", `{"channels":{"a":3,"b":0}}`, func(d SyncData) bool { return d.Channels["a"] == 3 && d.Channels["b"] == 0 }, false},
		{"protojson strings", `{"channels":{"a":"42"}}`, func(d SyncData) bool { return d.Channels["a"] == 42 }, false},
		{"absent", ``, func(d SyncData) bool { return d.Channels == nil }, false},
		{"unknown field", `{"channels":{},"chanels":{}}`, nil, true},
		{"bad seq", `{"channels":{"a":"x"}}`, nil, true},
		{"fractional seq", `{"channels":{"a":1.5}}`, nil, true},
		{"trailing content", `{"channels":{}} {}`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d SyncData
			err := DecodeData(json.RawMessage(tt.in), &d)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidField) {
				t.Fatalf("err %v does not wrap ErrInvalidField", err)
			}
			if tt.check != nil && !tt.check(d) {
				t.Fatalf("decoded %+v", d)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"general", true}, {"A-b_9", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a.b", false}, {"a*", false},
		{">", false}, {"a b", false}, {"ü", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestTypeLists(t *testing.T) {
	for _, list := range [][]string{ClientTypes(), ServerTypes(), ErrorCodes()} {
		if len(slices.Compact(slices.Sorted(slices.Values(list)))) != len(list) {
			t.Errorf("duplicate in %v", list)
		}
	}
	for _, typ := range ClientTypes() {
		if !IsClientType(typ) {
			t.Errorf("IsClientType(%q) = false", typ)
		}
	}
	if IsClientType(TypeWelcome) {
		t.Error("welcome is not a client type")
	}
}

// FuzzDecodeFrame checks that no input panics the decoder, that accepted
// frames satisfy the envelope's rules, and that they survive a round trip.
func FuzzDecodeFrame(f *testing.F) {
	seeds := []string{
		`{"type":"ping","id":"1"}`,
		`{"type":"authenticate","data":{"token":"abc"}}`,
		`{"type":"send_message","id":"c-42","channel":"general","data":{"content":"hi","client_msg_id":"x","metadata":{"k":"v"}}}`,
		`{"type":"sync","id":"s","data":{"channels":{"general":"12","random":0}}}`,
		`{"type":"user_typing","channel":"c","data":{"typing":false}}`,
		`{"type":"mark_read","channel":"c","data":{"seq":3}}`,
		`{"type":"join_channel","channel":"a.b"}`,
		`{"type":5}`, `{"type":"ping","id":5}`, `[]`, `null`, `{`, ``, "\xff",
		`{"type":"ping","data":"\u0000"}`, `{"type":"ping","type":"sync"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if len(fr.ID) > MaxIDLength {
			t.Fatalf("id of %d bytes returned", len(fr.ID))
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidField) && !errors.Is(err, ErrUnknownType) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if !IsClientType(fr.Type) {
			t.Fatalf("accepted type %q", fr.Type)
		}
		if fr.Channel != "" && !ValidID(fr.Channel) {
			t.Fatalf("accepted channel %q", fr.Channel)
		}
		if NeedsChannel(fr.Type) && fr.Channel == "" {
			t.Fatalf("%s accepted without channel", fr.Type)
		}
		if len(fr.Data) > 0 && fr.Data[0] != '{' {
			t.Fatalf("accepted data %q", fr.Data)
		}
		enc, err := Encode(fr)
		if err != nil {
			t.Fatalf("encode accepted frame: %v", err)
		}
		again, err := DecodeFrame(enc)
		if err != nil {
			t.Fatalf("re-decode %s: %v", enc, err)
		}
		var want, got bytes.Buffer
		_ = json.Compact(&want, fr.Data)
		_ = json.Compact(&got, again.Data)
		if again.Type != fr.Type || again.ID != fr.ID || again.Channel != fr.Channel || want.String() != got.String() {
			t.Fatalf("round trip changed %+v into %+v", fr, again)
		}
	})
}
