package notify_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// TestPreferenceMatrix crosses the kinds of notification with the
// switches, mutes and quiet hours.
func TestPreferenceMatrix(t *testing.T) {
	noon := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	night := time.Date(2026, 6, 10, 23, 30, 0, 0, time.UTC)
	quiet := notify.QuietHours{Enabled: true, Start: "22:00", End: "07:00"}
	def := notify.DefaultPreferences()
	with := func(f func(*notify.Preferences)) notify.Preferences {
		p := notify.DefaultPreferences()
		f(&p)
		return p
	}
	allOff := with(func(p *notify.Preferences) { p.Direct, p.Group, p.Public, p.Mentions = false, false, false, false })
	muted := with(func(p *notify.Preferences) { p.MutedChannels = []notify.MutedChannel{{ChannelID: "c1"}} })
	mutedUntilOne := with(func(p *notify.Preferences) {
		p.MutedChannels = []notify.MutedChannel{{ChannelID: "c1", Until: noon.Add(time.Hour)}}
	})
	quietP := with(func(p *notify.Preferences) { p.QuietHours = quiet })
	noMentions := with(func(p *notify.Preferences) { p.Mentions = false })
	publicOn := with(func(p *notify.Preferences) { p.Public = true })
	groupOff := with(func(p *notify.Preferences) { p.Group = false })

	direct := notify.Trigger{Kind: notify.KindDirect, ChannelType: notify.ChatPrivate, ChannelID: "c1"}
	groupMsg := notify.Trigger{Kind: notify.KindMessage, ChannelType: notify.ChatGroup, ChannelID: "c1"}
	publicMsg := notify.Trigger{Kind: notify.KindMessage, ChannelType: notify.ChatPublic, ChannelID: "c1"}
	publicMention := notify.Trigger{Kind: notify.KindMention, ChannelType: notify.ChatPublic, ChannelID: "c1", Mentioned: true}
	groupMention := notify.Trigger{Kind: notify.KindMention, ChannelType: notify.ChatGroup, ChannelID: "c1", Mentioned: true}
	friend := notify.Trigger{Kind: notify.KindFriendRequest}
	manual := notify.Trigger{Kind: notify.KindManual}

	type want struct {
		notify, suppressed bool
		reason             string
		digest             bool
	}
	send := want{notify: true}
	off := want{}
	mutedW := want{suppressed: true, reason: notify.ReasonMuted}
	quietW := want{suppressed: true, reason: notify.ReasonQuietHours}

	tests := []struct {
		name  string
		prefs notify.Preferences
		trig  notify.Trigger
		at    time.Time
		want  want
	}{
		// Defaults: direct, group and mentions on; public only via mentions.
		{"default direct", def, direct, noon, want{notify: true, digest: true}},
		{"default group message", def, groupMsg, noon, send},
		{"default public message", def, publicMsg, noon, off},
		{"default public mention", def, publicMention, noon, want{notify: true, digest: true}},
		{"default friend request", def, friend, noon, send},
		// Switches.
		{"all off: direct", allOff, direct, noon, want{digest: true}},
		{"all off: group", allOff, groupMsg, noon, off},
		{"all off: mention", allOff, publicMention, noon, want{digest: true}},
		{"all off: friend request has no switch", allOff, friend, noon, send},
		{"all off: manual ignores preferences", allOff, manual, night, send},
		{"public on", publicOn, publicMsg, noon, send},
		{"group off: message", groupOff, groupMsg, noon, off},
		{"group off: mention still notifies", groupOff, groupMention, noon, want{notify: true, digest: true}},
		{"mentions off: public mention", noMentions, publicMention, noon, want{digest: true}},
		{"mentions off: group mention via group switch", noMentions, groupMention, noon, want{notify: true, digest: true}},
		// Mute: silences everything in the channel, mentions included, and
		// keeps it out of the digest.
		{"muted: direct", muted, direct, noon, mutedW},
		{"muted: mention", muted, publicMention, noon, mutedW},
		{"muted: group", muted, groupMsg, noon, mutedW},
		{"muted: other channel", muted, notify.Trigger{Kind: notify.KindMessage, ChannelType: notify.ChatGroup, ChannelID: "c2"}, noon, send},
		{"muted: switched-off kind stays off", muted, publicMsg, noon, off},
		{"muted until: before", mutedUntilOne, groupMsg, noon.Add(59 * time.Minute), mutedW},
		{"muted until: after", mutedUntilOne, groupMsg, noon.Add(61 * time.Minute), send},
		// Quiet hours: nothing bypasses them but manual sends; the digest
		// still takes direct messages and mentions.
		{"quiet: direct at night", quietP, direct, night, want{suppressed: true, reason: notify.ReasonQuietHours, digest: true}},
		{"quiet: mention at night", quietP, publicMention, night, want{suppressed: true, reason: notify.ReasonQuietHours, digest: true}},
		{"quiet: group at night", quietP, groupMsg, night, quietW},
		{"quiet: friend request at night", quietP, friend, night, quietW},
		{"quiet: manual at night", quietP, manual, night, send},
		{"quiet: direct at noon", quietP, direct, noon, want{notify: true, digest: true}},
		{"quiet and muted: mute wins", with(func(p *notify.Preferences) { p.QuietHours = quiet; p.MutedChannels = muted.MutedChannels }), direct, night, mutedW},
		// The digest switch.
		{"digest off", with(func(p *notify.Preferences) { p.EmailDigest = false }), direct, noon, send},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.prefs.Decide(tt.trig, tt.at)
			got := want{notify: d.Notify, suppressed: d.Suppressed, reason: d.Reason, digest: tt.prefs.DigestWanted(tt.trig, tt.at)}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestQuietHours(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
		return time.Date(y, m, d, h, min, 0, 0, loc)
	}
	q := func(start, end, tz string) notify.QuietHours {
		return notify.QuietHours{Enabled: true, Start: start, End: end, TimeZone: tz}
	}
	tests := []struct {
		name string
		q    notify.QuietHours
		now  time.Time
		want bool
	}{
		{"disabled", notify.QuietHours{Start: "00:00", End: "23:59"}, at(time.UTC, 2026, 1, 1, 12, 0), false},
		{"same day range inside", q("09:00", "17:00", ""), at(time.UTC, 2026, 1, 1, 12, 0), true},
		{"same day range start is inclusive", q("09:00", "17:00", ""), at(time.UTC, 2026, 1, 1, 9, 0), true},
		{"same day range end is exclusive", q("09:00", "17:00", ""), at(time.UTC, 2026, 1, 1, 17, 0), false},
		{"across midnight, late", q("22:00", "07:00", "UTC"), at(time.UTC, 2026, 1, 1, 23, 59), true},
		{"across midnight, early", q("22:00", "07:00", "UTC"), at(time.UTC, 2026, 1, 2, 6, 59), true},
		{"across midnight, day", q("22:00", "07:00", "UTC"), at(time.UTC, 2026, 1, 2, 7, 0), false},
		{"empty period", q("08:00", "08:00", ""), at(time.UTC, 2026, 1, 1, 8, 0), false},
		// 21:30 UTC is 22:30 in Paris in winter (UTC+1)...
		{"zone: Paris winter", q("22:00", "07:00", "Europe/Paris"), time.Date(2026, 1, 15, 21, 30, 0, 0, time.UTC), true},
		// ...but 23:30 in summer (UTC+2), and 20:30 UTC is 22:30 there.
		{"zone: Paris summer", q("22:00", "23:00", "Europe/Paris"), time.Date(2026, 7, 15, 21, 30, 0, 0, time.UTC), false},
		{"zone: Paris summer inside", q("22:00", "23:00", "Europe/Paris"), time.Date(2026, 7, 15, 20, 30, 0, 0, time.UTC), true},
		// DST switch nights: the wall clock decides. On 2026-03-29 Paris
		// jumps from 02:00 to 03:00; 01:30 UTC is 03:30 local.
		{"DST spring forward, after the gap", q("01:00", "03:00", "Europe/Paris"), time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), false},
		{"DST spring forward, before the gap", q("01:00", "03:00", "Europe/Paris"), time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC), true},
		// On 2026-11-01 New York falls back from 02:00 to 01:00: 01:30 local
		// happens twice (05:30 and 06:30 UTC); both are quiet.
		{"DST fall back, first 01:30", q("01:00", "02:00", "America/New_York"), time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), true},
		{"DST fall back, second 01:30", q("01:00", "02:00", "America/New_York"), time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), true},
		{"DST fall back, 02:30", q("01:00", "02:00", "America/New_York"), time.Date(2026, 11, 1, 7, 30, 0, 0, time.UTC), false},
		{"now in another zone", q("22:00", "07:00", "America/New_York"), at(paris, 2026, 1, 15, 5, 0), true}, // 23:00 in New York
		{"local times", q("22:00", "07:00", "America/New_York"), at(ny, 2026, 1, 15, 12, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.q.Active(tt.now); got != tt.want {
				t.Errorf("Active(%s) = %v, want %v", tt.now.In(time.UTC), got, tt.want)
			}
		})
	}
}

func TestValidatePreferences(t *testing.T) {
	tests := []struct {
		name string
		p    notify.Preferences
		ok   bool
	}{
		{"defaults", notify.DefaultPreferences(), true},
		{"quiet hours", notify.Preferences{QuietHours: notify.QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Asia/Tokyo"}}, true},
		{"unknown zone", notify.Preferences{QuietHours: notify.QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Mars/Olympus"}}, false},
		{"bad time", notify.Preferences{QuietHours: notify.QuietHours{Enabled: true, Start: "25:00", End: "07:00"}}, false},
		{"short time", notify.Preferences{QuietHours: notify.QuietHours{Enabled: true, Start: "7:00", End: "08:00"}}, false},
		{"muted twice", notify.Preferences{MutedChannels: []notify.MutedChannel{{ChannelID: "a"}, {ChannelID: "a"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, notify.ErrInvalidArgument) {
				t.Errorf("error %v is not ErrInvalidArgument", err)
			}
		})
	}
}

func TestParseMentions(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"hi @ann", []string{"ann"}},
		{"@Bob.Smith and @carol_9, @bob.smith again", []string{"bob.smith", "carol_9"}},
		{"mail me at ann@example.com", nil},
		{"end of sentence @dave.", []string{"dave"}},
		{"(@eve) [@frank]", []string{"eve", "frank"}},
		{"too short @ab, @@ann", nil},
		{"@" + string(make([]byte, 0)) + "abcdefghijklmnopqrstuvwxyz0123456789", nil},
		{"", nil},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := notify.ParseMentions(tt.text); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ParseMentions(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}
