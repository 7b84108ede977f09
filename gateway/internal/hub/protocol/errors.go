package protocol

import "errors"

var (
	// ErrMalformed: the frame is not a JSON object of the envelope's shape.
	ErrMalformed = errors.New("protocol: malformed frame")
	// ErrUnknownType: the frame's type is not a client frame type.
	ErrUnknownType = errors.New("protocol: unknown frame type")
	// ErrInvalidField: a field of the envelope or of data is invalid.
	ErrInvalidField = errors.New("protocol: invalid field")
)
