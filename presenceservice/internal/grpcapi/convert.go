package grpcapi

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// toProtoPresence converts a presence as a viewer sees it.
func toProtoPresence(p presence.Presence) *presencev1.Presence {
	return &presencev1.Presence{
		UserId:        p.UserID,
		Status:        string(p.Status),
		LastSeen:      toProtoTime(p.LastSeen),
		DeviceCount:   int32(p.DeviceCount),
		StatusMessage: p.StatusMessage,
	}
}

// toProtoUpdate converts one change of a presence stream.
func toProtoUpdate(c presence.Change) *presencev1.PresenceUpdate {
	return &presencev1.PresenceUpdate{
		UserId:      c.UserID,
		Status:      string(c.Status),
		LastSeen:    toProtoTime(c.LastSeen),
		DeviceCount: int32(c.DeviceCount),
		ChangedAt:   toProtoTime(c.ChangedAt),
	}
}

// toProtoTime converts t; the zero time is absent.
func toProtoTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
