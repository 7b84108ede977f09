// Package presence holds the presence rules of Parley: who appears online,
// away, busy or offline, when they were last seen, which changes are worth
// telling others about, and how a crashed gateway node's connections are
// swept. It knows nothing about gRPC, Redis, MongoDB or NATS: it declares the
// small interfaces it needs (ports.go) and the adapters implement them.
//
// The rules, in one place:
//
//   - A user is connected while at least one of their connections lives
//     (Connect until Disconnect, or until the node holding it stops
//     heartbeating and is swept).
//   - A connected user shows the status they chose (online by default, away
//     or busy). Choosing "offline" while connected is invisibility: others
//     see offline, with last_seen the moment the user went invisible; the
//     user's own GetUserStatus also says offline, but with the real device
//     count, which is how a client knows it is invisible rather than gone.
//   - The chosen status lasts for a session: when the last connection ends
//     it resets to online. A status chosen while not connected is kept and
//     applies from the next connection (so a user can come online
//     invisibly).
//   - last_seen is recorded when a user starts to appear offline: when the
//     last connection ends (for a swept node: the node's last heartbeat),
//     or when they go invisible. An invisible user who disconnects keeps
//     the last_seen of the moment they went invisible, so disconnecting
//     does not reveal they were there.
//   - A change is published only when what others see changes: the status
//     or last_seen. A second device, a repeated identical UpdateStatus, or
//     an invisible user disconnecting publish nothing. The device count in
//     a change is the count at that moment.
//   - Every change carries a per-user (changed_at, version) pair that only
//     grows, so a consumer can drop a change older than what it already
//     has (publishes from several replicas may arrive out of order).
package presence

import (
	"fmt"
	"time"
)

// Status is what a user shows to others.
type Status string

// The statuses; see the package documentation for what they mean.
const (
	StatusOnline  Status = "online"
	StatusAway    Status = "away"
	StatusBusy    Status = "busy"
	StatusOffline Status = "offline"
)

// ParseStatus returns the Status named s, or ErrInvalidStatus.
func ParseStatus(s string) (Status, error) {
	switch st := Status(s); st {
	case StatusOnline, StatusAway, StatusBusy, StatusOffline:
		return st, nil
	}
	return "", fmt.Errorf("%w: %q (want online, away, busy or offline)", ErrInvalidStatus, s)
}

// Record is the stored presence state of one user.
type Record struct {
	UserID string
	// Chosen is the status the user picked; "" means online.
	Chosen Status
	// Devices is the number of live connections.
	Devices int
	// LastSeen is when the user last started to appear offline; zero if
	// never.
	LastSeen time.Time
	// Message is the user's status line; HasMessage says whether the
	// state store holds one at all (it may not after a Redis flush).
	Message    string
	HasMessage bool
	// ChangedAt and Version order the changes of this user.
	ChangedAt time.Time
	Version   int64
	// Hydrated reports that the durable fields (LastSeen, Message) were
	// already merged from the durable store, so they need no lookup.
	Hydrated bool
}

// Visible returns the status others see.
func (r Record) Visible() Status {
	if r.Devices == 0 || r.Chosen == StatusOffline {
		return StatusOffline
	}
	if r.Chosen == "" {
		return StatusOnline
	}
	return r.Chosen
}

// ForOthers is the user's presence as anybody else sees it.
func (r Record) ForOthers() Presence {
	p := r.ForSelf()
	if p.Status == StatusOffline {
		p.DeviceCount = 0
	}
	return p
}

// ForSelf is the user's presence as they see it themself: like ForOthers,
// but with the real device count even when invisible.
func (r Record) ForSelf() Presence {
	return Presence{
		UserID:        r.UserID,
		Status:        r.Visible(),
		LastSeen:      r.LastSeen,
		DeviceCount:   r.Devices,
		StatusMessage: r.Message,
		ChangedAt:     r.ChangedAt,
		Version:       r.Version,
	}
}

// Presence is a user's presence as one viewer sees it.
type Presence struct {
	UserID      string
	Status      Status
	LastSeen    time.Time // zero if never seen
	DeviceCount int
	// StatusMessage is the user's status line.
	StatusMessage string
	// ChangedAt and Version identify the last change; zero when unknown
	// (e.g. rebuilt from the durable store).
	ChangedAt time.Time
	Version   int64
}

// Change is one change of what others see of a user, as published to
// gateways and presence streams.
type Change struct {
	UserID      string
	Status      Status
	LastSeen    time.Time
	DeviceCount int
	ChangedAt   time.Time
	Version     int64
}

// changeOf returns p as a Change.
func changeOf(p Presence) Change {
	return Change{
		UserID:      p.UserID,
		Status:      p.Status,
		LastSeen:    p.LastSeen,
		DeviceCount: p.DeviceCount,
		ChangedAt:   p.ChangedAt,
		Version:     p.Version,
	}
}

// newerThan reports whether c is a later change than (at, version).
func (c Change) newerThan(at time.Time, version int64) bool {
	if !c.ChangedAt.Equal(at) {
		return c.ChangedAt.After(at)
	}
	return c.Version > version
}

// Transition is the outcome of one change to a user's stored state.
type Transition struct {
	// Record is the state after the change.
	Record Record
	// Changed reports that what others see (status or last_seen) changed.
	Changed bool
	// WentOffline reports that the user started to appear offline and
	// Record.LastSeen was set; it is then written to the durable store.
	WentOffline bool
}

// Caller is who makes a request.
type Caller struct {
	UserID string
	// Token is the caller's bearer token, forwarded when asking another
	// service on their behalf (friends, channel members).
	Token string
	// Service marks another Parley service rather than a user.
	Service bool
}

// Durable is what the durable store keeps of a user, so that last-seen
// times and status lines survive the loss of the state store.
type Durable struct {
	UserID   string
	LastSeen time.Time
	Message  string
	// HasMessage says whether a status line was ever stored.
	HasMessage bool
}

// Node is a gateway node and its last sign of life.
type Node struct {
	ID       string
	LastBeat time.Time
}
