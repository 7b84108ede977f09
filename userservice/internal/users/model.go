package users

import (
	"encoding/json"
	"time"
)

// User is an account. Username and Email are stored normalised (see
// NormalizeUsername, NormalizeEmail); Roles are not stored but derived from
// the configuration whenever the service returns a user to its owner.
type User struct {
	ID            string
	Username      string
	Email         string
	DisplayName   string
	AvatarURL     string
	StatusMessage string
	// PasswordHash is the encoded argon2id hash; it never leaves the
	// service.
	PasswordHash string
	Roles        []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// ProfileUpdate lists the profile fields to change; nil means unchanged.
type ProfileUpdate struct {
	DisplayName   *string
	AvatarURL     *string
	StatusMessage *string
}

// Session is what a successful Register, Login or Refresh hands out.
type Session struct {
	User             User
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
}

// RefreshToken is the stored form of a refresh token: only its hash is
// kept, so a leaked database does not leak usable tokens. Every token
// descends from one login; they share a FamilyID, which is also the session
// id (`sid`) of the access tokens issued with them.
type RefreshToken struct {
	// Hash is the hex SHA-256 of the token.
	Hash      string
	FamilyID  string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is set when the token was exchanged for the next one; zero if
	// unused.
	UsedAt time.Time
	// RevokedAt is set by logout or reuse detection; zero if not revoked.
	RevokedAt time.Time
}

// FriendshipStatus is the stored state of the relation between two users.
type FriendshipStatus string

// Friendship statuses.
const (
	// StatusPending: Requester asked the other user.
	StatusPending FriendshipStatus = "pending"
	// StatusAccepted: both agreed.
	StatusAccepted FriendshipStatus = "accepted"
	// StatusRemoved: a friendship or request that was ended; kept as a
	// tombstone so the document (and its pending events) survive and a
	// new request reuses it.
	StatusRemoved FriendshipStatus = "removed"
)

// Friendship is the relation between two users, one per unordered pair.
type Friendship struct {
	// ID is PairID(Users[0], Users[1]).
	ID string
	// Users holds the two user ids, sorted.
	Users     [2]string
	Requester string
	Status    FriendshipStatus
	// Since is when Status was reached.
	Since     time.Time
	CreatedAt time.Time
	// Version increases with every change; updates are conditional on it
	// (optimistic concurrency, since there are no transactions).
	Version int64
}

// Other returns the user of the pair who is not userID.
func (f Friendship) Other(userID string) string {
	if f.Users[0] == userID {
		return f.Users[1]
	}
	return f.Users[0]
}

// PairID is the id of the friendship between a and b, whatever the order.
// User ids never contain ':'.
func PairID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + ":" + b
}

// FriendState is a friendship as one of its two users sees it.
type FriendState string

// Friend states, as the API spells them.
const (
	StateFriend   FriendState = "friend"
	StateIncoming FriendState = "incoming"
	StateOutgoing FriendState = "outgoing"
)

// StateFor returns how userID sees f; ok is false for a removed friendship.
func (f Friendship) StateFor(userID string) (FriendState, bool) {
	switch f.Status {
	case StatusAccepted:
		return StateFriend, true
	case StatusPending:
		if f.Requester == userID {
			return StateOutgoing, true
		}
		return StateIncoming, true
	default:
		return "", false
	}
}

// Friend is one entry of a user's friend list.
type Friend struct {
	// User is the other user (public fields only are meant to be shown).
	User  User
	State FriendState
	Since time.Time
}

// Event is a fact to announce on the event bus. It is stored with the
// change it announces (the outbox) and removed once published, so a crash
// or a bus outage between the two delays it but never loses it; its ID
// makes the republishing idempotent.
type Event struct {
	ID   string
	Type string
	// Subject is the id of the user the event is about.
	Subject    string
	Data       json.RawMessage
	OccurredAt time.Time
	// Entity and EntityID name the stored document carrying the event.
	Entity   Entity
	EntityID string
}

// Entity names a kind of stored document that can carry pending events.
type Entity string

// Entities with an outbox.
const (
	EntityUser       Entity = "user"
	EntityFriendship Entity = "friendship"
)

// Event types this service publishes.
const (
	EventUserRegistered  = "user.registered"
	EventFriendRequested = "friend.requested"
	EventFriendAccepted  = "friend.accepted"
	EventFriendRemoved   = "friend.removed"
)

// UserRegistered is the data of a user.registered event.
type UserRegistered struct {
	UserID      string    `json:"user_id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	CreatedAt   time.Time `json:"created_at"`
}

// FriendChanged is the data of the friend.* events: UserID acted,
// FriendID is the other user.
type FriendChanged struct {
	UserID   string `json:"user_id"`
	FriendID string `json:"friend_id"`
	// State is the friendship as FriendID now sees it: "incoming" after a
	// request, "friend" after an acceptance, "" after a removal.
	State string `json:"state"`
}
