package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// NewMessage is what SendMessage needs.
type NewMessage struct {
	ChannelID    string
	Content      string
	Type         string
	ClientMsgID  string
	Metadata     map[string]string
	AttachmentID string
}

// SendMessage stores a message from a member and announces it. A returned
// message is persisted. With a ClientMsgID, every retry returns the message
// stored the first time (same id, same seq). An error means the outcome is
// unknown: retry with the same ClientMsgID.
func (s *Service) SendMessage(ctx context.Context, c Caller, in NewMessage) (Message, error) {
	if err := checkID("channel_id", in.ChannelID); err != nil {
		return Message{}, err
	}
	if in.Type != "" && !validMessageType(in.Type) {
		return Message{}, fmt.Errorf("%w: type %q must be text, image or file", ErrInvalidArgument, in.Type)
	}
	content, err := cleanContent(in.Content, in.AttachmentID == "")
	if err != nil {
		return Message{}, err
	}
	if err := checkMetadata(in.Metadata); err != nil {
		return Message{}, err
	}
	if in.ClientMsgID != "" {
		if err := checkID("client_msg_id", in.ClientMsgID); err != nil {
			return Message{}, err
		}
	}
	if in.AttachmentID != "" {
		if err := checkID("attachment_id", in.AttachmentID); err != nil {
			return Message{}, err
		}
	}
	ch, _, err := s.requireMember(ctx, c, in.ChannelID)
	if err != nil {
		return Message{}, err
	}

	id := newID("m")
	if in.ClientMsgID != "" {
		id = messageIDFor(ch.ID, c.UserID, in.ClientMsgID)
	}
	var att *Attachment
	if in.AttachmentID != "" {
		a, err := s.attachments.GetAttachment(ctx, in.AttachmentID)
		switch {
		case errors.Is(err, ErrNotFound):
			return Message{}, fmt.Errorf("%w: attachment %s does not exist", ErrInvalidArgument, in.AttachmentID)
		case err != nil:
			return Message{}, fmt.Errorf("load attachment: %w", err)
		case a.ChannelID != ch.ID || a.UploaderID != c.UserID:
			return Message{}, fmt.Errorf("%w: attachment %s was not uploaded to this channel by you", ErrInvalidArgument, a.ID)
		}
		att = &a
	}
	typ := in.Type
	if typ == "" {
		typ = MessageText
		if att != nil {
			typ = MessageFile
			if strings.HasPrefix(att.ContentType, "image/") {
				typ = MessageImage
			}
		}
	}
	now := s.clock.Now()
	m := Message{
		ID: id, ChannelID: ch.ID, UserID: c.UserID, Content: content, Type: typ,
		Metadata: in.Metadata, ClientMsgID: in.ClientMsgID, Attachment: att,
		CreatedAt: now, Terms: Terms(content),
	}
	if len(m.Metadata) == 0 {
		m.Metadata = nil
	}
	// A retry is not looked up before it is recorded: that would cost
	// every send a read. Recording tells an attempt still pending (its
	// outbox entry exists); a retry of a finished one finds its id taken
	// when it inserts (see storeMessage).
	ev := Event{
		ID: sentEventID(id), Type: EventMessageSent, ChannelID: ch.ID, ChannelType: ch.Type,
		ActorID: c.UserID, Time: now, Message: &m, Mentions: Mentions(content),
	}
	entry, pending, err := s.recordNew(ctx, ev)
	if err != nil {
		return Message{}, err
	}
	if pending {
		switch stored, err := s.messages.GetMessage(ctx, id); {
		case err == nil:
			return stored, nil // the earlier attempt stored it and finishes it
		case !errors.Is(err, ErrNotFound):
			return Message{}, fmt.Errorf("look up retried message: %w", err)
		}
		// Not stored yet: store it now; whichever attempt inserts first
		// wins, the other gets its message.
	}
	stored, err := s.storeMessage(ctx, m)
	if err != nil {
		if errors.Is(err, ErrAborted) {
			s.drop(ctx, entry) // certainly not stored
		}
		// Otherwise the outcome is unknown; the relay stores the message
		// if it is missing and announces it.
		return Message{}, err
	}
	entry.Event.Message = &stored
	fctx, cancel := detached(ctx)
	defer cancel()
	if err := s.afterSend(fctx, entry); err != nil {
		s.log.WarnContext(fctx, "finishing a send failed; the outbox relay will retry",
			slog.String("message_id", stored.ID), slog.String("event_id", entry.ID), slog.Any("error", err))
	}
	return stored, nil
}

// storeMessage gives m the channel's next seq and inserts it. The counter's
// $inc is atomic on MongoDB; on FerretDB v1 it is a read-modify-write, so two
// sends can be handed the same seq (or the counter can fall back). The
// unique (channel_id, seq) index turns that into ErrSeqTaken, and the loser
// moves the counter past the taken seq and tries again. If the id is taken,
// a concurrent retry of the same send won: its message is returned.
//
// Within one process, allocation and insert of a channel's messages are
// serialized (a striped lock): seqs then reach the store in increasing
// order, so a reader that has seen seq N never later finds a new message
// below N from this replica, and FerretDB's racy counter is not raced.
// Replicas on MongoDB rely on the atomic $inc.
func (s *Service) storeMessage(ctx context.Context, m Message) (Message, error) {
	mu := s.seqLock(m.ChannelID)
	mu.Lock()
	defer mu.Unlock()
	for range s.seqAttempts {
		seq, err := s.messages.NextSeq(ctx, m.ChannelID)
		if err != nil {
			return Message{}, fmt.Errorf("next seq of %s: %w", m.ChannelID, err)
		}
		m.Seq = seq
		err = s.messages.InsertMessage(ctx, m)
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, ErrMessageExists):
			// A retry of a stored message: give the seq back, so the
			// channel's seqs stay without holes.
			if err := s.messages.ReleaseSeq(ctx, m.ChannelID, seq); err != nil {
				s.log.WarnContext(ctx, "release the seq of a retried send", slog.String("channel_id", m.ChannelID),
					slog.Int64("seq", seq), slog.Any("error", err))
			}
			stored, err := s.messages.GetMessage(ctx, m.ID)
			if err != nil {
				return Message{}, fmt.Errorf("load message stored by a concurrent retry: %w", err)
			}
			return stored, nil
		case errors.Is(err, ErrSeqTaken):
			if err := s.messages.RaiseSeq(ctx, m.ChannelID, seq); err != nil {
				return Message{}, fmt.Errorf("raise seq counter of %s: %w", m.ChannelID, err)
			}
		default:
			return Message{}, fmt.Errorf("insert message: %w", err)
		}
	}
	return Message{}, fmt.Errorf("%w: no free seq in channel %s after %d attempts", ErrAborted, m.ChannelID, s.seqAttempts)
}

// afterSend finishes a stored message: the history cache and the event
// first, so recipients get it as soon as possible; then the channel's
// preview and the sender's read position; then the outbox entry goes. The
// relay calls it again after a failure; every step is idempotent (a
// republished event is dropped by JetStream as a duplicate).
func (s *Service) afterSend(ctx context.Context, e OutboxEntry) error {
	m := *e.Event.Message
	cacheErr := s.cachePut(ctx, m)
	if err := s.events.Publish(ctx, e.Event); err != nil {
		return errors.Join(fmt.Errorf("publish %s %s: %w", e.Event.Type, e.ID, err), cacheErr)
	}
	if cacheErr != nil {
		return cacheErr // the entry stays, so the relay retries the cache
	}
	if err := s.channels.SetLastMessage(ctx, m); err != nil {
		return fmt.Errorf("update channel preview: %w", err)
	}
	if err := s.channels.MarkSenderRead(ctx, m.ChannelID, m.UserID, m.Seq); err != nil {
		return fmt.Errorf("advance the sender's read position: %w", err)
	}
	if err := s.outbox.DeleteOutbox(ctx, e.ID); err != nil {
		s.log.WarnContext(ctx, "delete outbox entry", slog.String("event_id", e.ID), slog.Any("error", err))
	}
	return nil
}

// announceMessage updates the cache, publishes the message event, and
// deletes the outbox entry once both are done. The cache comes first: a
// client that subscribes to the channel and then catches up from the cache
// either finds a message there or receives its frame afterwards.
func (s *Service) announceMessage(ctx context.Context, e OutboxEntry) error {
	cacheErr := s.cachePut(ctx, *e.Event.Message)
	if err := s.events.Publish(ctx, e.Event); err != nil {
		return errors.Join(fmt.Errorf("publish %s %s: %w", e.Event.Type, e.ID, err), cacheErr)
	}
	if cacheErr != nil {
		// The entry stays, so the relay retries the cache (and republishes,
		// which JetStream drops as a duplicate).
		return cacheErr
	}
	if err := s.outbox.DeleteOutbox(ctx, e.ID); err != nil {
		s.log.WarnContext(ctx, "delete outbox entry", slog.String("event_id", e.ID), slog.Any("error", err))
	}
	return nil
}

// cachePut writes a message to the history cache, or forgets the channel
// if that fails: a cache that missed a write must not answer reads.
func (s *Service) cachePut(ctx context.Context, m Message) error {
	if s.cache == nil {
		return nil
	}
	err := s.cache.Put(ctx, m)
	if err == nil {
		return nil
	}
	s.log.WarnContext(ctx, "history cache write failed; invalidating the channel",
		slog.String("channel_id", m.ChannelID), slog.Any("error", err))
	if ierr := s.cache.Invalidate(ctx, m.ChannelID); ierr != nil {
		return fmt.Errorf("history cache: write: %w; invalidate: %w", err, ierr)
	}
	return nil
}

// afterChange finishes an edit or a delete: the preview if it shows this
// message, the events, the cache.
func (s *Service) afterChange(ctx context.Context, e OutboxEntry) error {
	if err := s.channels.ReplaceLastMessage(ctx, *e.Event.Message); err != nil {
		return fmt.Errorf("update channel preview: %w", err)
	}
	return s.announceMessage(ctx, e)
}

// loadChannelMessage returns a message of the channel, or ErrNotFound.
func (s *Service) loadChannelMessage(ctx context.Context, channelID, messageID string) (Message, error) {
	if err := checkID("message_id", messageID); err != nil {
		return Message{}, err
	}
	m, err := s.messages.GetMessage(ctx, messageID)
	if err != nil {
		return Message{}, fmt.Errorf("message %s: %w", messageID, err)
	}
	if m.ChannelID != channelID {
		return Message{}, fmt.Errorf("message %s: %w in channel %s", messageID, ErrNotFound, channelID)
	}
	return m, nil
}

// EditMessage replaces the content of the caller's own message. Only the
// author edits: an admin rewriting someone's words would put words in
// their mouth (admins delete instead).
func (s *Service) EditMessage(ctx context.Context, c Caller, channelID, messageID, content string) (Message, error) {
	content, err := cleanContent(content, true)
	if err != nil {
		return Message{}, err
	}
	ch, _, err := s.requireMember(ctx, c, channelID)
	if err != nil {
		return Message{}, err
	}
	m, err := s.loadChannelMessage(ctx, ch.ID, messageID)
	if err != nil {
		return Message{}, err
	}
	switch {
	case m.UserID != c.UserID:
		return Message{}, fmt.Errorf("%w: only the author edits a message", ErrPermissionDenied)
	case m.Deleted:
		return Message{}, fmt.Errorf("%w: message %s is deleted", ErrFailedPrecondition, m.ID)
	case m.Content == content:
		return m, nil
	}
	now := s.clock.Now()
	if !now.After(m.EditedAt) {
		now = m.EditedAt.Add(1) // edits stay ordered even if the clock is not
	}
	m.Content, m.EditedAt, m.Terms = content, now, Terms(content)
	return s.changeMessage(ctx, ch, c, m, EventMessageUpdated)
}

// DeleteMessage replaces a message with a tombstone: it keeps its id and
// seq, loses content, metadata and attachment. Authors delete their own
// messages, owners and admins anyone's. Deleting twice returns the
// tombstone.
func (s *Service) DeleteMessage(ctx context.Context, c Caller, channelID, messageID string) (Message, error) {
	ch, me, err := s.requireMember(ctx, c, channelID)
	if err != nil {
		return Message{}, err
	}
	m, err := s.loadChannelMessage(ctx, ch.ID, messageID)
	if err != nil {
		return Message{}, err
	}
	if m.UserID != c.UserID && roleRank(me.Role) < roleRank(RoleAdmin) {
		return Message{}, fmt.Errorf("%w: only the author, owners and admins delete a message", ErrPermissionDenied)
	}
	if m.Deleted {
		return m, nil
	}
	att := m.Attachment
	m.Content, m.Metadata, m.Attachment, m.Terms, m.Deleted = "", nil, nil, nil, true
	out, err := s.changeMessage(ctx, ch, c, m, EventMessageDeleted)
	if err == nil && att != nil {
		s.deleteAttachmentFile(ctx, att.ID)
	}
	return out, err
}

// changeMessage stores an edit or a tombstone through the outbox.
func (s *Service) changeMessage(ctx context.Context, ch Channel, c Caller, m Message, typ string) (Message, error) {
	id, err := newEventID()
	if err != nil {
		return Message{}, err
	}
	entry, err := s.record(ctx, Event{
		ID: id, Type: typ, ChannelID: ch.ID, ChannelType: ch.Type,
		ActorID: c.UserID, Time: s.clock.Now(), Message: &m,
	})
	if err != nil {
		return Message{}, err
	}
	if err := s.messages.UpdateMessage(ctx, m); err != nil {
		// Unknown outcome: the relay applies the change if it is missing.
		return Message{}, fmt.Errorf("store %s: %w", typ, err)
	}
	fctx, cancel := detached(ctx)
	defer cancel()
	if err := s.afterChange(fctx, entry); err != nil {
		s.log.WarnContext(fctx, "finishing a message change failed; the outbox relay will retry",
			slog.String("message_id", m.ID), slog.String("event_id", entry.ID), slog.Any("error", err))
	}
	return m, nil
}

// MarkRead moves the caller's read position up to seq (never down, and
// never past the newest message) and returns it with the unread count.
func (s *Service) MarkRead(ctx context.Context, c Caller, channelID string, seq int64) (int64, int64, error) {
	if seq < 0 {
		return 0, 0, fmt.Errorf("%w: seq must not be negative", ErrInvalidArgument)
	}
	ch, me, err := s.requireMember(ctx, c, channelID)
	if err != nil {
		return 0, 0, err
	}
	seq = min(seq, ch.LastSeq)
	stored, err := s.channels.MarkRead(ctx, ch.ID, c.UserID, seq)
	if err != nil {
		return 0, 0, fmt.Errorf("mark read: %w", err)
	}
	if stored > me.LastReadSeq {
		// Realtime only: a lost receipt is repaired by the next one.
		id, err := newEventID()
		if err == nil {
			err = s.events.Publish(ctx, Event{
				ID: id, Type: EventReceipt, ChannelID: ch.ID, ChannelType: ch.Type,
				ActorID: c.UserID, Time: s.clock.Now(), ReadSeq: stored,
			})
		}
		if err != nil {
			s.log.WarnContext(ctx, "publish read receipt", slog.String("channel_id", ch.ID), slog.Any("error", err))
		}
	}
	return stored, max(0, ch.LastSeq-stored), nil
}

// HistoryRequest is a GetMessages call. At most one of BeforeSeq and
// AfterSeq is set; neither asks for the latest messages.
type HistoryRequest struct {
	ChannelID string
	BeforeSeq *int64
	AfterSeq  *int64
	// Limit is 0-100; 0 means 50.
	Limit int
}

// GetMessages pages through a channel's history, always in ascending seq
// order. hasMore says more messages exist in the direction of the request:
// older ones for BeforeSeq and the latest page, newer ones for AfterSeq.
func (s *Service) GetMessages(ctx context.Context, c Caller, r HistoryRequest) ([]Message, bool, error) {
	switch {
	case r.BeforeSeq != nil && r.AfterSeq != nil:
		return nil, false, fmt.Errorf("%w: set at most one of before_seq and after_seq", ErrInvalidArgument)
	case r.BeforeSeq != nil && *r.BeforeSeq < 1:
		return nil, false, fmt.Errorf("%w: before_seq must be at least 1", ErrInvalidArgument)
	case r.AfterSeq != nil && *r.AfterSeq < 0:
		return nil, false, fmt.Errorf("%w: after_seq must not be negative", ErrInvalidArgument)
	case r.Limit < 0 || r.Limit > MaxHistoryLimit:
		return nil, false, fmt.Errorf("%w: limit must be 0-%d", ErrInvalidArgument, MaxHistoryLimit)
	}
	limit := r.Limit
	if limit == 0 {
		limit = DefaultHistoryLimit
	}
	ch, _, err := s.requireReader(ctx, c, r.ChannelID)
	if err != nil {
		return nil, false, err
	}
	q := HistoryQuery{ChannelID: ch.ID, Limit: limit + 1, Descending: true}
	switch {
	case r.BeforeSeq != nil:
		q.BeforeSeq = *r.BeforeSeq
	case r.AfterSeq != nil:
		q.AfterSeq, q.Descending = *r.AfterSeq, false
	}
	msgs, err := s.history(ctx, q)
	if err != nil {
		return nil, false, err
	}
	hasMore := len(msgs) > limit
	if hasMore {
		msgs = msgs[:limit]
	}
	if q.Descending {
		slices.Reverse(msgs)
	}
	return msgs, hasMore, nil
}

// history answers q from the cache when it can, else from the store. A
// channel missing from the cache is filled when the query is about recent
// history (the latest page, or catching up after a seq); scrolling far back
// goes to the store without disturbing the cache. A cache failure is
// logged and never fails the read.
func (s *Service) history(ctx context.Context, q HistoryQuery) ([]Message, error) {
	if s.cache != nil {
		msgs, status, err := s.cache.Read(ctx, q)
		if err == nil && status == CacheMiss && q.BeforeSeq == 0 {
			if err = s.fillCacheOnce(ctx, q.ChannelID); err == nil {
				msgs, status, err = s.cache.Read(ctx, q)
			}
		}
		switch {
		case err != nil:
			s.log.WarnContext(ctx, "history cache unavailable; reading MongoDB",
				slog.String("channel_id", q.ChannelID), slog.Any("error", err))
		case status == CacheHit:
			return msgs, nil
		}
	}
	msgs, err := s.messages.ListMessages(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", q.ChannelID, err)
	}
	return msgs, nil
}

// fillTimeout bounds a cache fill, which on FerretDB v1 scans the whole
// messages collection (it uses no secondary index).
const fillTimeout = 2 * time.Minute

// fillCacheOnce fills a channel's cache once for all the readers that miss
// it at the same time (after a Redis restart every reader of a busy channel
// would otherwise run the same expensive query). The fill outlives a
// caller that gives up; the caller waits only as long as its context.
func (s *Service) fillCacheOnce(ctx context.Context, channelID string) error {
	ch := s.fills.DoChan(channelID, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fillTimeout)
		defer cancel()
		return nil, s.fillCache(fctx, channelID)
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fillCache loads a channel's newest messages into the cache.
func (s *Service) fillCache(ctx context.Context, channelID string) error {
	newest, err := s.messages.ListMessages(ctx, HistoryQuery{ChannelID: channelID, Descending: true, Limit: s.cacheSize})
	if err != nil {
		return fmt.Errorf("load recent history: %w", err)
	}
	complete := len(newest) < s.cacheSize
	slices.Reverse(newest)
	return s.cache.Fill(ctx, channelID, newest, complete)
}
