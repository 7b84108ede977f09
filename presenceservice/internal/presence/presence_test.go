package presence

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestVisible(t *testing.T) {
	seen := time.UnixMilli(1_800_000_000_000)
	tests := []struct {
		name        string
		r           Record
		want        Status
		selfDevices int
		otherDevs   int
	}{
		{"never connected", Record{}, StatusOffline, 0, 0},
		{"connected, nothing chosen", Record{Devices: 2}, StatusOnline, 2, 2},
		{"connected and away", Record{Devices: 1, Chosen: StatusAway}, StatusAway, 1, 1},
		{"connected and busy", Record{Devices: 1, Chosen: StatusBusy}, StatusBusy, 1, 1},
		{"invisible: offline, but the user sees their devices", Record{Devices: 3, Chosen: StatusOffline, LastSeen: seen}, StatusOffline, 3, 0},
		{"busy chosen while disconnected", Record{Chosen: StatusBusy}, StatusOffline, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.UserID = "u"
			if got := tt.r.Visible(); got != tt.want {
				t.Errorf("Visible() = %s, want %s", got, tt.want)
			}
			self, other := tt.r.ForSelf(), tt.r.ForOthers()
			if self.Status != tt.want || other.Status != tt.want {
				t.Errorf("statuses self %s others %s, want %s", self.Status, other.Status, tt.want)
			}
			if self.DeviceCount != tt.selfDevices || other.DeviceCount != tt.otherDevs {
				t.Errorf("device counts self %d others %d, want %d %d", self.DeviceCount, other.DeviceCount, tt.selfDevices, tt.otherDevs)
			}
			if !self.LastSeen.Equal(tt.r.LastSeen) || !other.LastSeen.Equal(tt.r.LastSeen) {
				t.Errorf("last seen changed by the view")
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    Status
		wantErr bool
	}{
		{"online", StatusOnline, false},
		{"away", StatusAway, false},
		{"busy", StatusBusy, false},
		{"offline", StatusOffline, false},
		{"invisible", "", true},
		{"", "", true},
		{"Online", "", true},
	}
	for _, tt := range tests {
		got, err := ParseStatus(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrInvalidStatus)) {
			t.Errorf("ParseStatus(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestPageToken(t *testing.T) {
	tok := encodePageToken("ids:a,b,c", "b")
	tests := []struct {
		name    string
		token   string
		key     string
		want    string
		wantErr bool
	}{
		{"round trip", tok, "ids:a,b,c", "b", false},
		{"other query", tok, "ids:a,b", "", true},
		{"not base64", "%%%", "ids:a,b,c", "", true},
		{"garbage", encodeRaw("hello"), "ids:a,b,c", "", true},
		{"other version", encodeRaw("p0:" + keyHash("ids:a,b,c") + ":b"), "ids:a,b,c", "", true},
		{"no position", encodeRaw("p1:" + keyHash("ids:a,b,c") + ":"), "ids:a,b,c", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePageToken(tt.token, tt.key)
			if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrInvalidPageToken)) {
				t.Errorf("decode = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func encodeRaw(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestChangeOrder(t *testing.T) {
	t1 := time.UnixMilli(1000)
	t2 := time.UnixMilli(2000)
	tests := []struct {
		name string
		c    Change
		at   time.Time
		v    int64
		want bool
	}{
		{"later time", Change{ChangedAt: t2, Version: 1}, t1, 5, true},
		{"earlier time", Change{ChangedAt: t1, Version: 9}, t2, 1, false},
		{"same time, higher version", Change{ChangedAt: t1, Version: 3}, t1, 2, true},
		{"same time, same version", Change{ChangedAt: t1, Version: 2}, t1, 2, false},
		{"anything after an unknown snapshot", Change{ChangedAt: t1, Version: 1}, time.Time{}, 0, true},
	}
	for _, tt := range tests {
		if got := tt.c.newerThan(tt.at, tt.v); got != tt.want {
			t.Errorf("%s: newerThan = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMerge(t *testing.T) {
	older, newer := time.UnixMilli(1000), time.UnixMilli(2000)
	tests := []struct {
		name    string
		r       Record
		d       Durable
		wantLS  time.Time
		wantMsg string
	}{
		{"empty state takes the durable copy", Record{}, Durable{LastSeen: older, Message: "hi", HasMessage: true}, older, "hi"},
		{"newer state wins", Record{LastSeen: newer}, Durable{LastSeen: older}, newer, ""},
		{"newer durable wins", Record{LastSeen: older}, Durable{LastSeen: newer}, newer, ""},
		{"state's own (even empty) message wins", Record{HasMessage: true}, Durable{Message: "old", HasMessage: true}, time.Time{}, ""},
	}
	for _, tt := range tests {
		got := merge(tt.r, tt.d)
		if !got.LastSeen.Equal(tt.wantLS) || got.Message != tt.wantMsg || !got.Hydrated {
			t.Errorf("%s: %+v", tt.name, got)
		}
	}
}

func TestDedupe(t *testing.T) {
	got := sortedSet([]string{"b", "a", "", "b", "c", "a"})
	want := []string{"a", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("sortedSet = %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sortedSet = %v, want %v", got, want)
		}
	}
}
