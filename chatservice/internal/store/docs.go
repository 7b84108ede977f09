package store

import (
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/parleyhq/parley/chatservice/internal/chat"
)

// channelDoc is a document of the channels collection.
type channelDoc struct {
	ID          string    `bson:"_id"`
	Name        string    `bson:"name"`
	NameLC      string    `bson:"name_lc"`
	Type        string    `bson:"type"`
	Description string    `bson:"description,omitempty"`
	CreatedBy   string    `bson:"created_by"`
	CreatedAt   time.Time `bson:"created_at"`
	// DMKey is absent (not empty) on non-direct channels: the unique index
	// must not see them.
	DMKey       string      `bson:"dm_key,omitempty"`
	LastSeq     int64       `bson:"last_seq"`
	LastMessage *messageDoc `bson:"last_message,omitempty"`
}

// memberDoc is a document of the members collection; _id is
// "<channel_id>:<user_id>", so a membership exists at most once.
type memberDoc struct {
	ID          string    `bson:"_id"`
	ChannelID   string    `bson:"channel_id"`
	UserID      string    `bson:"user_id"`
	Role        string    `bson:"role"`
	JoinedAt    time.Time `bson:"joined_at"`
	LastReadSeq int64     `bson:"last_read_seq"`
}

// messageDoc is a document of the messages collection (and the preview on
// a channel, and the copy in an outbox entry).
type messageDoc struct {
	ID          string            `bson:"_id"`
	ChannelID   string            `bson:"channel_id"`
	Seq         int64             `bson:"seq"`
	UserID      string            `bson:"user_id"`
	Content     string            `bson:"content"`
	Type        string            `bson:"type"`
	Metadata    map[string]string `bson:"metadata,omitempty"`
	ClientMsgID string            `bson:"client_msg_id,omitempty"`
	Attachment  *attachmentDoc    `bson:"attachment,omitempty"`
	CreatedAt   time.Time         `bson:"created_at"`
	EditedAt    *time.Time        `bson:"edited_at,omitempty"`
	Deleted     bool              `bson:"deleted"`
	// Terms are the normalised words for search; always an array, so the
	// multikey index and $all see the same shape everywhere.
	Terms []string `bson:"terms"`
}

// attachmentDoc is the attachment summary embedded in a message.
type attachmentDoc struct {
	ID          string    `bson:"id"`
	ChannelID   string    `bson:"channel_id"`
	UploaderID  string    `bson:"uploader_id"`
	Filename    string    `bson:"filename"`
	ContentType string    `bson:"content_type"`
	Size        int64     `bson:"size"`
	CreatedAt   time.Time `bson:"created_at"`
}

// counterDoc is a document of the counters collection: the last seq handed
// out in a channel; in the one-writer mode the last one reserved (see
// seqmemo.go), which is never below a seq handed out.
type counterDoc struct {
	ID  string `bson:"_id"`
	Seq int64  `bson:"seq"`
}

// outboxDoc is a document of the outbox collection.
//
// The event is stored packed, as one BSON binary (EventBSON): FerretDB
// decodes every field of a document each time it reads it, through a JSON
// decoder of its own per value, and it reads an entry for every delete
// and claim, so a message's entry cost as much as the message itself. An
// entry written by an older version holds the event as a subdocument
// (Event), which is still read.
type outboxDoc struct {
	ID            string    `bson:"_id"`
	Type          string    `bson:"type"`
	ChannelID     string    `bson:"channel_id"`
	EventBSON     []byte    `bson:"event_bson,omitempty"`
	Event         *eventDoc `bson:"event,omitempty"`
	CreatedAt     time.Time `bson:"created_at"`
	NextAttemptAt time.Time `bson:"next_attempt_at"`
	Attempts      int       `bson:"attempts"`
}

// eventDoc is the event an outbox entry will publish.
type eventDoc struct {
	ChannelType string      `bson:"channel_type,omitempty"`
	ActorID     string      `bson:"actor_id,omitempty"`
	Time        time.Time   `bson:"time"`
	Message     *messageDoc `bson:"message,omitempty"`
	Channel     *channelDoc `bson:"channel,omitempty"`
	MemberIDs   []string    `bson:"member_ids,omitempty"`
	Member      *memberDoc  `bson:"member,omitempty"`
	Mentions    []string    `bson:"mentions,omitempty"`
	ReadSeq     int64       `bson:"read_seq,omitempty"`
}

// fileMetadata is the metadata of an attachment's GridFS files document.
type fileMetadata struct {
	ChannelID   string    `bson:"channel_id"`
	UploaderID  string    `bson:"uploader_id"`
	ContentType string    `bson:"content_type"`
	CreatedAt   time.Time `bson:"created_at"`
}

// fileDoc is a GridFS files document.
type fileDoc struct {
	ID         string       `bson:"_id"`
	Length     int64        `bson:"length"`
	ChunkSize  int32        `bson:"chunkSize"`
	UploadDate time.Time    `bson:"uploadDate"`
	Filename   string       `bson:"filename"`
	Metadata   fileMetadata `bson:"metadata"`
}

func memberID(channelID, userID string) string { return channelID + ":" + userID }

func docOfChannel(ch chat.Channel) channelDoc {
	d := channelDoc{
		ID: ch.ID, Name: ch.Name, NameLC: strings.ToLower(ch.Name), Type: ch.Type,
		Description: ch.Description, CreatedBy: ch.CreatedBy, CreatedAt: ch.CreatedAt,
		DMKey: ch.DMKey, LastSeq: ch.LastSeq,
	}
	if ch.LastMessage != nil {
		d.LastMessage = docOfPreview(*ch.LastMessage)
	}
	return d
}

func fromDocChannel(d channelDoc) chat.Channel {
	ch := chat.Channel{
		ID: d.ID, Name: d.Name, Type: d.Type, Description: d.Description,
		CreatedBy: d.CreatedBy, CreatedAt: bsonTime(d.CreatedAt), DMKey: d.DMKey, LastSeq: d.LastSeq,
	}
	if d.LastMessage != nil {
		m := fromDocMessage(*d.LastMessage)
		ch.LastMessage = &m
	}
	return ch
}

func docOfMember(m chat.Member) memberDoc {
	return memberDoc{
		ID: memberID(m.ChannelID, m.UserID), ChannelID: m.ChannelID, UserID: m.UserID,
		Role: m.Role, JoinedAt: m.JoinedAt, LastReadSeq: m.LastReadSeq,
	}
}

func fromDocMember(d memberDoc) chat.Member {
	return chat.Member{
		ChannelID: d.ChannelID, UserID: d.UserID, Role: d.Role,
		JoinedAt: bsonTime(d.JoinedAt), LastReadSeq: d.LastReadSeq,
	}
}

func docOfMessage(m chat.Message) messageDoc {
	d := messageDoc{
		ID: m.ID, ChannelID: m.ChannelID, Seq: m.Seq, UserID: m.UserID, Content: m.Content,
		Type: m.Type, Metadata: m.Metadata, ClientMsgID: m.ClientMsgID, CreatedAt: m.CreatedAt,
		Deleted: m.Deleted, Terms: m.Terms,
	}
	if d.Terms == nil {
		d.Terms = []string{}
	}
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
	if !m.EditedAt.IsZero() {
		t := m.EditedAt
		d.EditedAt = &t
	}
	if m.Attachment != nil {
		a := docOfAttachment(*m.Attachment)
		d.Attachment = &a
	}
	return d
}

// docOfPreview is the message as a channel's preview: no search terms.
func docOfPreview(m chat.Message) *messageDoc {
	d := docOfMessage(m)
	d.Terms = nil
	return &d
}

func fromDocMessage(d messageDoc) chat.Message {
	m := chat.Message{
		ID: d.ID, ChannelID: d.ChannelID, Seq: d.Seq, UserID: d.UserID, Content: d.Content,
		Type: d.Type, Metadata: d.Metadata, ClientMsgID: d.ClientMsgID,
		CreatedAt: bsonTime(d.CreatedAt), Deleted: d.Deleted, Terms: d.Terms,
	}
	if d.EditedAt != nil {
		m.EditedAt = bsonTime(*d.EditedAt)
	}
	if d.Attachment != nil {
		a := fromDocAttachment(*d.Attachment)
		m.Attachment = &a
	}
	return m
}

func docOfAttachment(a chat.Attachment) attachmentDoc {
	return attachmentDoc{
		ID: a.ID, ChannelID: a.ChannelID, UploaderID: a.UploaderID, Filename: a.Filename,
		ContentType: a.ContentType, Size: a.Size, CreatedAt: a.CreatedAt,
	}
}

func fromDocAttachment(d attachmentDoc) chat.Attachment {
	return chat.Attachment{
		ID: d.ID, ChannelID: d.ChannelID, UploaderID: d.UploaderID, Filename: d.Filename,
		ContentType: d.ContentType, Size: d.Size, CreatedAt: bsonTime(d.CreatedAt),
	}
}

func fromDocFile(d fileDoc) chat.Attachment {
	return chat.Attachment{
		ID: d.ID, ChannelID: d.Metadata.ChannelID, UploaderID: d.Metadata.UploaderID,
		Filename: d.Filename, ContentType: d.Metadata.ContentType, Size: d.Length,
		CreatedAt: bsonTime(d.Metadata.CreatedAt),
	}
}

func docOfOutbox(e chat.OutboxEntry) (outboxDoc, error) {
	ev := e.Event
	d := outboxDoc{
		ID: e.ID, Type: ev.Type, ChannelID: ev.ChannelID, CreatedAt: e.CreatedAt,
		NextAttemptAt: e.NextAttemptAt, Attempts: e.Attempts,
	}
	ed := eventDoc{
		ChannelType: ev.ChannelType, ActorID: ev.ActorID, Time: ev.Time,
		MemberIDs: ev.MemberIDs, Mentions: ev.Mentions, ReadSeq: ev.ReadSeq,
	}
	if ev.Message != nil {
		m := docOfMessage(*ev.Message)
		ed.Message = &m
	}
	if ev.Channel != nil {
		c := docOfChannel(*ev.Channel)
		ed.Channel = &c
	}
	if ev.Member != nil {
		m := docOfMember(*ev.Member)
		ed.Member = &m
	}
	b, err := bson.Marshal(ed)
	if err != nil {
		return outboxDoc{}, fmt.Errorf("pack event %s: %w", e.ID, err)
	}
	d.EventBSON = b
	return d, nil
}

func fromDocOutbox(d outboxDoc) (chat.OutboxEntry, error) {
	ed := d.Event
	if len(d.EventBSON) > 0 {
		ed = &eventDoc{}
		if err := bson.Unmarshal(d.EventBSON, ed); err != nil {
			return chat.OutboxEntry{}, fmt.Errorf("unpack event %s: %w", d.ID, err)
		}
	}
	if ed == nil {
		return chat.OutboxEntry{}, fmt.Errorf("outbox entry %s holds no event", d.ID)
	}
	ev := chat.Event{
		ID: d.ID, Type: d.Type, ChannelID: d.ChannelID, ChannelType: ed.ChannelType,
		ActorID: ed.ActorID, Time: bsonTime(ed.Time), MemberIDs: ed.MemberIDs,
		Mentions: ed.Mentions, ReadSeq: ed.ReadSeq,
	}
	if ed.Message != nil {
		m := fromDocMessage(*ed.Message)
		ev.Message = &m
	}
	if ed.Channel != nil {
		c := fromDocChannel(*ed.Channel)
		ev.Channel = &c
	}
	if ed.Member != nil {
		m := fromDocMember(*ed.Member)
		ev.Member = &m
	}
	return chat.OutboxEntry{
		ID: d.ID, Event: ev, CreatedAt: bsonTime(d.CreatedAt),
		NextAttemptAt: bsonTime(d.NextAttemptAt), Attempts: d.Attempts,
	}, nil
}
