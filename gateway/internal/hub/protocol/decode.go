package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// clientEnvelope is what a client frame may carry; timestamp and user_id are
// the server's and ignored (unknown envelope fields are ignored too, so a
// client may echo a server frame's fields back without error).
type clientEnvelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// NeedsChannel reports whether frames of type t must name a channel in the
// envelope.
func NeedsChannel(t string) bool {
	switch t {
	case TypeJoinChannel, TypeLeaveChannel, TypeSendMessage, TypeEditMessage,
		TypeDeleteMessage, TypeUserTyping, TypeMarkRead:
		return true
	}
	return false
}

// DecodeFrame parses and validates one client frame. On error the returned
// frame still carries whatever id could be read, so the error frame can echo
// it; the error wraps ErrMalformed, ErrUnknownType or ErrInvalidField.
func DecodeFrame(b []byte) (Frame, error) {
	var env clientEnvelope
	if !utf8.Valid(b) {
		return Frame{}, fmt.Errorf("%w: not UTF-8", ErrMalformed)
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Frame{}, fmt.Errorf("%w: a frame is a JSON object", ErrMalformed)
	}
	if err := json.Unmarshal(trimmed, &env); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			// Unmarshal fills the fields it could: echo a valid id.
			f := Frame{}
			if len(env.ID) <= MaxIDLength {
				f.ID = env.ID
			}
			return f, fmt.Errorf("%w: %s must be a %s", ErrInvalidField, typeErr.Field, typeErr.Type)
		}
		return Frame{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	f := Frame{Type: env.Type, Channel: env.Channel}
	if len(env.ID) > MaxIDLength {
		return f, fmt.Errorf("%w: id is longer than %d bytes", ErrInvalidField, MaxIDLength)
	}
	f.ID = env.ID
	if d := bytes.TrimSpace(env.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if d[0] != '{' {
			return f, fmt.Errorf("%w: data must be an object", ErrInvalidField)
		}
		f.Data = d
	}
	switch {
	case env.Type == "":
		return f, fmt.Errorf("%w: type is required", ErrInvalidField)
	case !IsClientType(env.Type):
		return f, fmt.Errorf("%w: %q", ErrUnknownType, truncate(env.Type, 32))
	case env.Channel != "" && !ValidID(env.Channel):
		return f, fmt.Errorf("%w: channel must match [A-Za-z0-9_-]{1,64}", ErrInvalidField)
	case env.Channel == "" && NeedsChannel(env.Type):
		return f, fmt.Errorf("%w: %s needs a channel", ErrInvalidField, env.Type)
	}
	return f, nil
}

// DecodeData decodes a frame's data into v, rejecting unknown fields (as the
// REST API does, so a typo is an error rather than silently ignored). Absent
// or null data leaves v at its zero value.
func DecodeData(data json.RawMessage, v any) error {
	if len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: data: %v", ErrInvalidField, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data: trailing content", ErrInvalidField)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Int is an int64 that decodes from a JSON number or a decimal string, since
// protojson (and so every message a client received) writes int64 fields such
// as seq as strings.
type Int int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if s == "null" {
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: not an integer: %s", ErrInvalidField, truncate(string(b), 24))
	}
	*n = Int(v)
	return nil
}
