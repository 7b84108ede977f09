package notify

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide measures one preference decision with quiet hours in a
// named zone and 20 muted channels: as the fan-out makes it (zones cached
// per service) and through the exported method (zone loaded every call).
func BenchmarkDecide(b *testing.B) {
	p := DefaultPreferences()
	p.QuietHours = QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Europe/Paris"}
	for i := range 20 {
		p.MutedChannels = append(p.MutedChannels, MutedChannel{ChannelID: fmt.Sprintf("c%d", i)})
	}
	t := Trigger{Kind: KindMention, ChannelType: ChatPublic, ChannelID: "general", Mentioned: true}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var zones zoneCache
	b.Run("cached zone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.decide(t, now, zones.load).Notify {
				b.Fatal("not notified")
			}
		}
	})
	b.Run("zone loaded per call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !p.Decide(t, now).Notify {
				b.Fatal("not notified")
			}
		}
	})
}
