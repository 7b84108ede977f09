// Package protoconv converts the chat domain's types to and from their
// protobuf messages. The gRPC handlers, the realtime frames and the history
// cache all speak the same wire form, so the conversions live in one place.
package protoconv

import (
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// JSON is the protojson form every JSON consumer of Parley expects: proto
// field names (snake_case), as DESIGN section 3 requires.
func JSON() protojson.MarshalOptions {
	return protojson.MarshalOptions{UseProtoNames: true}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func fromTimestamp(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime().UTC()
}

// ToProtoChannel converts a channel.
func ToProtoChannel(ch chat.Channel) *chatv1.Channel {
	return &chatv1.Channel{
		Id:          ch.ID,
		Name:        ch.Name,
		Type:        ch.Type,
		Description: ch.Description,
		CreatedBy:   ch.CreatedBy,
		CreatedAt:   timestamp(ch.CreatedAt),
		MemberCount: ch.MemberCount,
		LastSeq:     ch.LastSeq,
	}
}

// ToProtoJoinedChannel converts a channel as a member sees it.
func ToProtoJoinedChannel(j chat.JoinedChannel) *chatv1.JoinedChannel {
	out := &chatv1.JoinedChannel{
		Channel:     ToProtoChannel(j.Channel),
		Role:        j.Role,
		LastReadSeq: j.LastReadSeq,
		UnreadCount: j.UnreadCount,
	}
	if j.Channel.LastMessage != nil {
		out.LastMessage = ToProtoMessage(*j.Channel.LastMessage)
	}
	return out
}

// ToProtoMember converts a membership.
func ToProtoMember(m chat.Member) *chatv1.Member {
	return &chatv1.Member{
		UserId:      m.UserID,
		Role:        m.Role,
		JoinedAt:    timestamp(m.JoinedAt),
		LastReadSeq: m.LastReadSeq,
	}
}

// ToProtoMessage converts a message.
func ToProtoMessage(m chat.Message) *chatv1.Message {
	out := &chatv1.Message{
		Id:          m.ID,
		ChannelId:   m.ChannelID,
		Seq:         m.Seq,
		UserId:      m.UserID,
		Content:     m.Content,
		Type:        m.Type,
		Metadata:    m.Metadata,
		ClientMsgId: m.ClientMsgID,
		CreatedAt:   timestamp(m.CreatedAt),
		EditedAt:    timestamp(m.EditedAt),
		Deleted:     m.Deleted,
	}
	if m.Attachment != nil {
		out.Attachment = ToProtoAttachment(*m.Attachment)
	}
	return out
}

// FromProtoMessage converts a message back (the history cache stores the
// wire form). Search terms are not part of it.
func FromProtoMessage(p *chatv1.Message) chat.Message {
	m := chat.Message{
		ID:          p.GetId(),
		ChannelID:   p.GetChannelId(),
		Seq:         p.GetSeq(),
		UserID:      p.GetUserId(),
		Content:     p.GetContent(),
		Type:        p.GetType(),
		Metadata:    p.GetMetadata(),
		ClientMsgID: p.GetClientMsgId(),
		CreatedAt:   fromTimestamp(p.GetCreatedAt()),
		EditedAt:    fromTimestamp(p.GetEditedAt()),
		Deleted:     p.GetDeleted(),
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	if a := p.GetAttachment(); a != nil {
		att := FromProtoAttachment(a)
		m.Attachment = &att
	}
	return m
}

// ToProtoAttachment converts attachment metadata; the URL is where the
// gateway serves the file.
func ToProtoAttachment(a chat.Attachment) *chatv1.Attachment {
	return &chatv1.Attachment{
		Id:          a.ID,
		ChannelId:   a.ChannelID,
		UploaderId:  a.UploaderID,
		Filename:    a.Filename,
		ContentType: a.ContentType,
		Size:        a.Size,
		Url:         a.URL(),
		CreatedAt:   timestamp(a.CreatedAt),
	}
}

// FromProtoAttachment converts attachment metadata back.
func FromProtoAttachment(p *chatv1.Attachment) chat.Attachment {
	return chat.Attachment{
		ID:          p.GetId(),
		ChannelID:   p.GetChannelId(),
		UploaderID:  p.GetUploaderId(),
		Filename:    p.GetFilename(),
		ContentType: p.GetContentType(),
		Size:        p.GetSize(),
		CreatedAt:   fromTimestamp(p.GetCreatedAt()),
	}
}
