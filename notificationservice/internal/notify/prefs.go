package notify

import (
	"fmt"
	"sync"
	"time"
	// The zone database is embedded so quiet hours work in minimal
	// container images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Preferences decide which notifications a user receives.
type Preferences struct {
	// Direct, Group and Public switch push for messages in channels of
	// that type.
	Direct bool
	Group  bool
	Public bool
	// Mentions switches push for @mentions, even in channels otherwise off.
	Mentions bool
	// EmailDigest switches the email digest of unread direct messages and
	// mentions.
	EmailDigest   bool
	MutedChannels []MutedChannel
	QuietHours    QuietHours
}

// MutedChannel silences one chat channel until Until (zero: until unmuted).
type MutedChannel struct {
	ChannelID string
	Until     time.Time
}

// QuietHours is a daily period without push notifications, in the user's
// time zone. Start after End spans midnight (22:00-07:00).
type QuietHours struct {
	Enabled  bool
	Start    string // "HH:MM"
	End      string // "HH:MM"
	TimeZone string // IANA name; empty means UTC
}

// DefaultPreferences are a user's preferences until they change them:
// direct messages, group messages and mentions push; public channels only
// through mentions; the email digest is on.
func DefaultPreferences() Preferences {
	return Preferences{Direct: true, Group: true, Public: false, Mentions: true, EmailDigest: true}
}

// Validate checks what the API validation cannot: the clock times and the
// time zone.
func (p Preferences) Validate() error {
	q := p.QuietHours
	if q.Enabled || q.Start != "" || q.End != "" {
		if _, err := clockMinutes(q.Start); err != nil {
			return fmt.Errorf("%w: quiet_hours.start: %w", ErrInvalidArgument, err)
		}
		if _, err := clockMinutes(q.End); err != nil {
			return fmt.Errorf("%w: quiet_hours.end: %w", ErrInvalidArgument, err)
		}
	}
	if _, err := loadZone(q.TimeZone); err != nil {
		return fmt.Errorf("%w: quiet_hours.time_zone: %w", ErrInvalidArgument, err)
	}
	seen := make(map[string]bool, len(p.MutedChannels))
	for _, m := range p.MutedChannels {
		if m.ChannelID == "" {
			return fmt.Errorf("%w: muted channel without id", ErrInvalidArgument)
		}
		if seen[m.ChannelID] {
			return fmt.Errorf("%w: channel %s muted twice", ErrInvalidArgument, m.ChannelID)
		}
		seen[m.ChannelID] = true
	}
	return nil
}

// Muted reports whether channelID is muted at now.
func (p Preferences) Muted(channelID string, now time.Time) bool {
	if channelID == "" {
		return false
	}
	for _, m := range p.MutedChannels {
		if m.ChannelID == channelID && (m.Until.IsZero() || now.Before(m.Until)) {
			return true
		}
	}
	return false
}

// Active reports whether now falls within the quiet hours. The comparison
// is on the wall clock of the user's zone, so it follows DST changes: 22:00
// stays 22:00 local whatever the UTC offset. A period whose start equals
// its end is empty. A zone that no longer loads counts as UTC rather than
// silencing or waking the user at random.
func (q QuietHours) Active(now time.Time) bool { return q.activeIn(now, loadZone) }

func (q QuietHours) activeIn(now time.Time, load zoneLoader) bool {
	if !q.Enabled {
		return false
	}
	start, err1 := clockMinutes(q.Start)
	end, err2 := clockMinutes(q.End)
	if err1 != nil || err2 != nil || start == end {
		return false
	}
	loc, err := load(q.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	if start < end {
		return m >= start && m < end
	}
	return m >= start || m < end // spans midnight
}

func clockMinutes(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil || len(s) != 5 {
		return 0, fmt.Errorf("%q is not a HH:MM time", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// zoneLoader resolves an IANA zone name.
type zoneLoader func(name string) (*time.Location, error)

func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "UTC" {
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

// zoneCache remembers loaded zones: time.LoadLocation parses the zone
// database on every call (about 15µs), and a fan-out decides for every
// recipient of a message.
type zoneCache struct{ m sync.Map }

func (z *zoneCache) load(name string) (*time.Location, error) {
	if loc, ok := z.m.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := loadZone(name)
	if err != nil {
		return nil, err
	}
	z.m.Store(name, loc)
	return loc, nil
}

// Trigger describes what a notification would be about.
type Trigger struct {
	Kind Kind
	// ChannelType is the chat channel's type for message kinds.
	ChannelType string
	// ChannelID is the chat channel, for muting.
	ChannelID string
	// Mentioned: the message mentions the recipient.
	Mentioned bool
}

// Decision is what the preferences say about a push notification.
type Decision struct {
	// Notify: send it.
	Notify bool
	// Suppressed: it would have been sent but a mute or quiet hours
	// stopped it; recorded with Reason so the history explains the silence.
	// Neither Notify nor Suppressed: the user switched this kind off, and
	// nothing is recorded.
	Suppressed bool
	Reason     string
}

// Decide applies the preferences to a push notification at now.
//
// Order: the kind must be switched on (a mention passes if mentions or the
// channel's type are on); then a muted channel suppresses it, mentions
// included (the API calls muted channels "never notify"); then quiet hours
// suppress it. Nothing bypasses quiet hours, not even direct messages or
// mentions: the email digest still covers those. Manual notifications
// (SendPushNotification by an administrator or another service) are
// explicit sends and ignore preferences; friend requests have no switch
// but respect quiet hours.
func (p Preferences) Decide(t Trigger, now time.Time) Decision { return p.decide(t, now, loadZone) }

func (p Preferences) decide(t Trigger, now time.Time, load zoneLoader) Decision {
	if t.Kind == KindManual {
		return Decision{Notify: true}
	}
	if !p.kindOn(t) {
		return Decision{}
	}
	if p.Muted(t.ChannelID, now) {
		return Decision{Suppressed: true, Reason: ReasonMuted}
	}
	if p.QuietHours.activeIn(now, load) {
		return Decision{Suppressed: true, Reason: ReasonQuietHours}
	}
	return Decision{Notify: true}
}

func (p Preferences) kindOn(t Trigger) bool {
	switch t.Kind {
	case KindFriendRequest:
		return true
	case KindDirect:
		return p.Direct || (t.Mentioned && p.Mentions)
	case KindMention, KindMessage:
		if t.Mentioned && p.Mentions {
			return true
		}
		switch t.ChannelType {
		case ChatPrivate:
			return p.Direct
		case ChatGroup:
			return p.Group
		case ChatPublic:
			return p.Public
		}
	}
	return false
}

// DigestWanted reports whether a message belongs in the user's email
// digest: direct messages and mentions, digest on, channel not muted.
// Quiet hours do not apply: they are about push waking people up.
func (p Preferences) DigestWanted(t Trigger, now time.Time) bool {
	if !p.EmailDigest || p.Muted(t.ChannelID, now) {
		return false
	}
	return t.Kind == KindDirect || t.Kind == KindMention
}
