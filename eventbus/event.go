package eventbus

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CurrentVersion is the envelope version this library writes.
const CurrentVersion = 1

// Event is the envelope every durable event travels in. Its JSON form is
//
//	{"id","type","source","subject","data","timestamp","version"}
//
// ID is a UUIDv7 (time-ordered, so ids sort by creation time) and doubles as
// the JetStream Nats-Msg-Id, which makes publishing idempotent. Subject is the
// id of the thing the event is about (a channel id, a user id) so the audit
// log can filter by it; it is not the NATS subject.
type Event struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Source    string          `json:"source"`
	Subject   string          `json:"subject"`
	Data      json.RawMessage `json:"data"`
	Timestamp time.Time       `json:"timestamp"`
	Version   int             `json:"version"`
}

// NewEvent builds an event with a fresh time-ordered id and the current time.
// data is marshalled to JSON; a json.RawMessage or []byte holding JSON is
// used as is.
func NewEvent(typ, source, subject string, data any) (Event, error) {
	id, err := NewID()
	if err != nil {
		return Event{}, err
	}
	raw, err := marshalData(data)
	if err != nil {
		return Event{}, fmt.Errorf("%w: data: %w", ErrInvalidEvent, err)
	}
	ev := Event{
		ID:        id,
		Type:      typ,
		Source:    source,
		Subject:   subject,
		Data:      raw,
		Timestamp: time.Now().UTC(),
		Version:   CurrentVersion,
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// NewID returns a new UUIDv7 string. Within one process the ids are strictly
// increasing, across processes they sort by millisecond.
func NewID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("eventbus: new id: %w", err)
	}
	return u.String(), nil
}

func marshalData(data any) (json.RawMessage, error) {
	switch d := data.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return d, nil
	case []byte:
		if !json.Valid(d) {
			return nil, fmt.Errorf("not valid JSON")
		}
		return json.RawMessage(d), nil
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}

// Decode unmarshals the event's data into v.
func (e Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return fmt.Errorf("eventbus: decode %s %s: no data", e.Type, e.ID)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("eventbus: decode %s %s: %w", e.Type, e.ID, err)
	}
	return nil
}

// Validate reports whether the event can be published: it needs an id, a
// source, and a type made of dot-separated tokens that are valid in a NATS
// subject (letters, digits, '_' and '-').
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: empty id", ErrInvalidEvent)
	case strings.ContainsAny(e.ID, " \t\r\n"):
		return fmt.Errorf("%w: id %q contains whitespace", ErrInvalidEvent, e.ID)
	case e.Source == "":
		return fmt.Errorf("%w: empty source", ErrInvalidEvent)
	}
	if err := validType(e.Type); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

// validType checks that typ can be appended to a subject prefix: wildcards,
// whitespace and empty tokens would change which subscriptions match.
func validType(typ string) error {
	if typ == "" {
		return fmt.Errorf("empty type")
	}
	for tok := range strings.SplitSeq(typ, ".") {
		if tok == "" {
			return fmt.Errorf("type %q has an empty token", typ)
		}
		for _, r := range tok {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
			if !ok {
				return fmt.Errorf("type %q: character %q not allowed", typ, r)
			}
		}
	}
	return nil
}

// marshal encodes the envelope. Events come from NewEvent or from the wire,
// so the only failure is invalid raw data, which Validate does not inspect.
func (e Event) marshal() ([]byte, error) {
	if len(e.Data) == 0 {
		e.Data = json.RawMessage("null")
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return b, nil
}

// decodeEvent parses an envelope received from the stream.
func decodeEvent(b []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if ev.ID == "" || ev.Type == "" {
		return Event{}, fmt.Errorf("%w: envelope without id or type", ErrInvalidEvent)
	}
	return ev, nil
}
