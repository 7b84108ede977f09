package health

import "errors"

var (
	// ErrCheckPanicked is reported for a check that panicked.
	ErrCheckPanicked = errors.New("health: check panicked")
	// ErrNATSNotConnected is reported while a NATS connection is not
	// connected (reconnecting, draining or closed).
	ErrNATSNotConnected = errors.New("health: nats not connected")
)
