package eventbus

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewEvent(t *testing.T) {
	type payload struct {
		Text string `json:"text"`
	}
	tests := []struct {
		name     string
		typ      string
		source   string
		data     any
		wantErr  error
		wantData string
	}{
		{name: "struct data", typ: TypeMessageSent, source: "chatservice", data: payload{Text: "hi"}, wantData: `{"text":"hi"}`},
		{name: "raw JSON", typ: TypeUserJoined, source: "chatservice", data: json.RawMessage(`{"a":1}`), wantData: `{"a":1}`},
		{name: "bytes JSON", typ: TypeUserLeft, source: "chatservice", data: []byte(`[1,2]`), wantData: `[1,2]`},
		{name: "nil data", typ: TypeChannelCreated, source: "chatservice", data: nil, wantData: `null`},
		{name: "invalid raw JSON", typ: TypeMessageSent, source: "s", data: json.RawMessage(`{`), wantErr: ErrInvalidEvent},
		{name: "unmarshalable data", typ: TypeMessageSent, source: "s", data: make(chan int), wantErr: ErrInvalidEvent},
		{name: "empty type", typ: "", source: "s", wantErr: ErrInvalidEvent},
		{name: "wildcard type", typ: "message.*", source: "s", wantErr: ErrInvalidEvent},
		{name: "tail wildcard type", typ: "message.>", source: "s", wantErr: ErrInvalidEvent},
		{name: "empty token", typ: "message..sent", source: "s", wantErr: ErrInvalidEvent},
		{name: "space in type", typ: "message sent", source: "s", wantErr: ErrInvalidEvent},
		{name: "empty source", typ: TypeMessageSent, source: "", wantErr: ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			ev, err := NewEvent(tt.typ, tt.source, "c1", tt.data)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("NewEvent() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewEvent() error = %v", err)
			}
			if string(ev.Data) != tt.wantData {
				t.Errorf("Data = %s, want %s", ev.Data, tt.wantData)
			}
			if ev.ID == "" || ev.Type != tt.typ || ev.Source != tt.source || ev.Subject != "c1" || ev.Version != CurrentVersion {
				t.Errorf("unexpected envelope %+v", ev)
			}
			if ev.Timestamp.Before(before.Add(-time.Millisecond)) || ev.Timestamp.After(time.Now()) {
				t.Errorf("Timestamp = %v, not around now", ev.Timestamp)
			}
		})
	}
}

func TestEventJSONShape(t *testing.T) {
	ev := Event{
		ID: "0190a0b0-0000-7000-8000-000000000001", Type: TypeMessageSent, Source: "chatservice",
		Subject: "chan-1", Data: json.RawMessage(`{"text":"hi"}`),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Version: 1,
	}
	b, err := ev.marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0190a0b0-0000-7000-8000-000000000001","type":"message.sent","source":"chatservice",` +
		`"subject":"chan-1","data":{"text":"hi"},"timestamp":"2026-01-02T03:04:05.123456789Z","version":1}`
	if string(b) != want {
		t.Errorf("JSON =\n%s\nwant\n%s", b, want)
	}
	back, err := decodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != ev.ID || !back.Timestamp.Equal(ev.Timestamp) || string(back.Data) != string(ev.Data) {
		t.Errorf("round trip = %+v, want %+v", back, ev)
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "valid", in: `{"id":"x","type":"a.b","source":"s","data":{}}`},
		{name: "not JSON", in: `garbage`, wantErr: true},
		{name: "no id", in: `{"type":"a.b"}`, wantErr: true},
		{name: "no type", in: `{"id":"x"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeEvent([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("decodeEvent() error = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v is not ErrInvalidEvent", err)
			}
		})
	}
}

func TestEventDecode(t *testing.T) {
	ev, err := NewEvent(TypeMessageSent, "s", "c", map[string]any{"text": "hello", "n": 3})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Text string `json:"text"`
		N    int    `json:"n"`
	}
	if err := ev.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Text != "hello" || got.N != 3 {
		t.Errorf("Decode = %+v", got)
	}
	if err := (Event{ID: "x", Type: "t"}).Decode(&got); err == nil {
		t.Error("Decode of an event without data succeeded")
	}
	var wrong []int
	if err := ev.Decode(&wrong); err == nil {
		t.Error("Decode into the wrong type succeeded")
	}
}

func TestIDsSortByTime(t *testing.T) {
	ids := make([]string, 1000)
	for i := range ids {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	if !slices.IsSorted(ids) {
		t.Error("ids generated in sequence are not sorted")
	}
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Error("duplicate ids")
	}
	if !strings.HasPrefix(ids[0][14:15], "7") {
		t.Errorf("id %s is not a UUIDv7", ids[0])
	}
}
