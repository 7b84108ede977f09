package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/chatservice/internal/chat"
	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/stripe"
)

// InsertChannel stores a new channel.
func (s *Store) InsertChannel(ctx context.Context, ch chat.Channel) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.channels.InsertOne(ctx, docOfChannel(ch)); err != nil {
		if mongoutil.IsDuplicateKey(err) {
			return fmt.Errorf("channel %s: %w", ch.ID, chat.ErrDuplicate)
		}
		return fmt.Errorf("insert channel %s: %w", ch.ID, err)
	}
	return nil
}

// GetChannel returns a channel or chat.ErrNotFound.
func (s *Store) GetChannel(ctx context.Context, id string) (chat.Channel, error) {
	var d channelDoc
	if err := s.channels.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return chat.Channel{}, fmt.Errorf("find channel %s: %w", id, notFound(err))
	}
	return s.channelOf(d), nil
}

// GetChannels returns the channels among ids.
func (s *Store) GetChannels(ctx context.Context, ids []string) ([]chat.Channel, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cur, err := s.channels.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("find channels: %w", err)
	}
	var docs []channelDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read channels: %w", err)
	}
	out := make([]chat.Channel, len(docs))
	for i, d := range docs {
		out[i] = s.channelOf(d)
	}
	return out, nil
}

// BrowseChannels lists public channels by (name_lc, _id).
func (s *Store) BrowseChannels(ctx context.Context, q chat.BrowseQuery) ([]chat.Channel, error) {
	filter := bson.D{{Key: "type", Value: chat.ChannelPublic}}
	if q.NameContains != "" {
		filter = append(filter, bson.E{Key: "name_lc", Value: bson.D{{Key: "$regex", Value: regexp.QuoteMeta(q.NameContains)}}})
	}
	if q.AfterName != "" || q.AfterID != "" {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "name_lc", Value: bson.D{{Key: "$gt", Value: q.AfterName}}}},
			bson.D{{Key: "name_lc", Value: q.AfterName}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: q.AfterID}}}},
		}})
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "name_lc", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(q.Limit))
	cur, err := s.channels.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("browse channels: %w", err)
	}
	var docs []channelDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read channels: %w", err)
	}
	out := make([]chat.Channel, len(docs))
	for i, d := range docs {
		out[i] = s.channelOf(d)
	}
	return out, nil
}

// SetLastMessage records m as the channel's newest message unless a newer
// one is recorded. On MongoDB the seq guard in the filter makes this one
// atomic step. FerretDB v1 pushes a filter down to its backend only when it
// is _id alone; with the guard it decodes every channel document on every
// send. There the store reads the channel by _id, compares, and writes by
// _id, under a per-channel lock so this process never regresses the
// preview; FerretDB's update is a read-modify-write anyway, so replicas
// racing on one channel could leave an older preview either way, until the
// next message.
//
// In the one-writer mode the preview is written behind (behind.go), after
// the same comparison in memory.
func (s *Store) SetLastMessage(ctx context.Context, m chat.Message) error {
	if s.idFiltersOnly.Load() || s.behind != nil {
		return s.updatePreview(ctx, m, func(last int64) bool { return last < m.Seq })
	}
	_, err := s.gatedUpdateOne(ctx, s.channels,
		bson.D{{Key: "_id", Value: m.ChannelID}, {Key: "last_seq", Value: bson.D{{Key: "$lt", Value: m.Seq}}}}, previewUpdate(m))
	if err != nil {
		return fmt.Errorf("set last message of %s: %w", m.ChannelID, err)
	}
	return nil
}

// ReplaceLastMessage refreshes the preview if it shows m.
func (s *Store) ReplaceLastMessage(ctx context.Context, m chat.Message) error {
	if s.idFiltersOnly.Load() || s.behind != nil {
		return s.updatePreview(ctx, m, func(last int64) bool { return last == m.Seq })
	}
	_, err := s.gatedUpdateOne(ctx, s.channels, bson.D{{Key: "_id", Value: m.ChannelID}, {Key: "last_seq", Value: m.Seq}}, previewUpdate(m))
	if err != nil {
		return fmt.Errorf("replace last message of %s: %w", m.ChannelID, err)
	}
	return nil
}

// previewUpdate shows m as its channel's preview.
func previewUpdate(m chat.Message) bson.D {
	return bson.D{{Key: "$set", Value: bson.D{{Key: "last_seq", Value: m.Seq}, {Key: "last_message", Value: docOfPreview(m)}}}}
}

// updatePreview shows m as its channel's preview when the channel's
// last_seq passes cond, with filters on _id alone (see SetLastMessage),
// or queues it to be written behind.
//
// The last_seq this process read or wrote is remembered for
// previewMemoTTL, which saves the read on most sends: only this process
// moves a channel's preview between reads, except for another replica on
// the same FerretDB, whose newer preview this one could overwrite within
// the TTL, until the next message (the race the read-compare-write has
// anyway, in a longer window). A queued preview is newer than the stored
// one, and readLastSeq returns it.
func (s *Store) updatePreview(ctx context.Context, m chat.Message, cond func(lastSeq int64) bool) error {
	p := &s.previews[stripe.Index(m.ChannelID, len(s.previews))]
	p.mu.Lock()
	defer p.mu.Unlock()
	now := s.now()
	last, known := p.lookup(m.ChannelID, now)
	if !known {
		seq, exists, err := s.readLastSeq(ctx, m.ChannelID)
		switch {
		case err != nil:
			return err
		case !exists:
			return nil // deleted meanwhile: nothing to show
		}
		last = seq
		p.remember(m.ChannelID, last, now)
	}
	if !cond(last) {
		return nil
	}
	if s.behind != nil {
		s.behind.setPreview(s, m)
		p.remember(m.ChannelID, m.Seq, now)
		return nil
	}
	res, err := s.gatedUpdateOne(ctx, s.channels, bson.D{{Key: "_id", Value: m.ChannelID}}, previewUpdate(m))
	if err != nil {
		p.forget(m.ChannelID) // the write may or may not have happened
		return fmt.Errorf("update preview of %s: %w", m.ChannelID, err)
	}
	if res.MatchedCount == 0 {
		p.forget(m.ChannelID) // deleted
		return nil
	}
	p.remember(m.ChannelID, m.Seq, now)
	return nil
}

// AddMember stores a membership; an existing one is returned with false.
func (s *Store) AddMember(ctx context.Context, m chat.Member) (chat.Member, bool, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return chat.Member{}, false, err
	}
	defer unlock()
	d := docOfMember(m)
	_, err = s.members.InsertOne(ctx, d)
	if err == nil {
		return m, true, nil
	}
	if !mongoutil.IsDuplicateKey(err) {
		return chat.Member{}, false, fmt.Errorf("insert member %s: %w", d.ID, err)
	}
	existing, err := s.GetMember(ctx, m.ChannelID, m.UserID)
	if err != nil {
		return chat.Member{}, false, err
	}
	return existing, false, nil
}

// GetMember returns a membership or chat.ErrNotFound.
func (s *Store) GetMember(ctx context.Context, channelID, userID string) (chat.Member, error) {
	var d memberDoc
	if err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: memberID(channelID, userID)}}).Decode(&d); err != nil {
		return chat.Member{}, fmt.Errorf("find member %s of %s: %w", userID, channelID, notFound(err))
	}
	return s.memberOf(d), nil
}

// DeleteMember removes a membership and reports whether it existed.
func (s *Store) DeleteMember(ctx context.Context, channelID, userID string) (bool, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	if s.behind != nil {
		s.behind.forgetReads(channelID, userID)
	}
	res, err := s.members.DeleteOne(ctx, bson.D{{Key: "_id", Value: memberID(channelID, userID)}})
	if err != nil {
		return false, fmt.Errorf("delete member %s of %s: %w", userID, channelID, err)
	}
	return res.DeletedCount > 0, nil
}

// SetMemberRole changes a member's role.
func (s *Store) SetMemberRole(ctx context.Context, channelID, userID, role string) (chat.Member, error) {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return chat.Member{}, err
	}
	defer unlock()
	var d memberDoc
	err = s.members.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: memberID(channelID, userID)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: role}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		return chat.Member{}, fmt.Errorf("set role of %s in %s: %w", userID, channelID, notFound(err))
	}
	return s.memberOf(d), nil
}

// ListMembers lists a channel's members by user id.
func (s *Store) ListMembers(ctx context.Context, channelID, afterUserID string, limit int) ([]chat.Member, error) {
	filter := bson.D{{Key: "channel_id", Value: channelID}}
	if afterUserID != "" {
		filter = append(filter, bson.E{Key: "user_id", Value: bson.D{{Key: "$gt", Value: afterUserID}}})
	}
	return s.findMembers(ctx, filter, bson.D{{Key: "user_id", Value: 1}}, limit)
}

// FirstMemberWithRole returns the earliest-joined member with role.
func (s *Store) FirstMemberWithRole(ctx context.Context, channelID, role, exceptUserID string) (chat.Member, error) {
	filter := bson.D{
		{Key: "channel_id", Value: channelID},
		{Key: "role", Value: role},
		{Key: "user_id", Value: bson.D{{Key: "$ne", Value: exceptUserID}}},
	}
	ms, err := s.findMembers(ctx, filter, bson.D{{Key: "joined_at", Value: 1}, {Key: "user_id", Value: 1}}, 1)
	if err != nil {
		return chat.Member{}, err
	}
	if len(ms) == 0 {
		return chat.Member{}, fmt.Errorf("no %s in %s: %w", role, channelID, chat.ErrNotFound)
	}
	return ms[0], nil
}

// Memberships lists a user's memberships by channel id.
func (s *Store) Memberships(ctx context.Context, userID, afterChannelID string, limit int) ([]chat.Member, error) {
	filter := bson.D{{Key: "user_id", Value: userID}}
	if afterChannelID != "" {
		filter = append(filter, bson.E{Key: "channel_id", Value: bson.D{{Key: "$gt", Value: afterChannelID}}})
	}
	return s.findMembers(ctx, filter, bson.D{{Key: "channel_id", Value: 1}}, limit)
}

// MemberChannelIDs returns every channel id the user belongs to.
func (s *Store) MemberChannelIDs(ctx context.Context, userID string) ([]string, error) {
	opts := options.Find().SetProjection(bson.D{{Key: "channel_id", Value: 1}})
	cur, err := s.members.Find(ctx, bson.D{{Key: "user_id", Value: userID}}, opts)
	if err != nil {
		return nil, fmt.Errorf("find channels of %s: %w", userID, err)
	}
	var docs []memberDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read channels of %s: %w", userID, err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ChannelID
	}
	return ids, nil
}

func (s *Store) findMembers(ctx context.Context, filter, sort bson.D, limit int) ([]chat.Member, error) {
	opts := options.Find().SetSort(sort)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.members.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find members: %w", err)
	}
	var docs []memberDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	out := make([]chat.Member, len(docs))
	for i, d := range docs {
		out[i] = s.memberOf(d)
	}
	return out, nil
}

// ScansAllMembers reports whether a query of the members by channel reads
// the whole collection: on FerretDB v1, which filters in memory. The
// member cache then loads every channel at once (AllMembers).
func (s *Store) ScansAllMembers() bool { return s.idFiltersOnly.Load() }

// AllMembers returns every membership, by channel, each channel's sorted
// by user id: one read of the collection, sorted here rather than by the
// server (FerretDB v1 sorts in memory too).
func (s *Store) AllMembers(ctx context.Context) (map[string][]chat.Member, error) {
	cur, err := s.members.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("find all members: %w", err)
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	out := map[string][]chat.Member{}
	for cur.Next(ctx) {
		var d memberDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("read members: %w", err)
		}
		out[d.ChannelID] = append(out[d.ChannelID], s.memberOf(d))
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read members: %w", err)
	}
	for _, ms := range out {
		slices.SortFunc(ms, func(a, b chat.Member) int { return strings.Compare(a.UserID, b.UserID) })
	}
	return out, nil
}

// CountMembers counts members per channel with one $group/$sum.
func (s *Store) CountMembers(ctx context.Context, channelIDs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(channelIDs))
	if len(channelIDs) == 0 {
		return out, nil
	}
	pipeline := mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "channel_id", Value: bson.D{{Key: "$in", Value: channelIDs}}}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$channel_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	}
	cur, err := s.members.Aggregate(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("count members: %w", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
		N  int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read member counts: %w", err)
	}
	for _, r := range rows {
		out[r.ID] = r.N
	}
	return out, nil
}

// MarkRead raises last_read_seq with $max and returns the stored value.
func (s *Store) MarkRead(ctx context.Context, channelID, userID string, seq int64) (int64, error) {
	if s.memberUpdates != nil {
		return s.markReadBatched(ctx, channelID, userID, seq)
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var d memberDoc
	err = s.members.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: memberID(channelID, userID)}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "last_read_seq", Value: seq}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, fmt.Errorf("member %s of %s: %w", userID, channelID, chat.ErrNotFound)
		}
		return 0, fmt.Errorf("mark read: %w", err)
	}
	return d.LastReadSeq, nil
}

// markReadBatched is MarkRead in the one-writer mode: it reads the
// member (a read is not queued behind the writes), and raises the
// position with the other sends' updates (batch.go) only if it moves.
// A concurrent raise of the same member can go higher than seq; the
// position returned is then the lower of the two, which the next read
// corrects. A member who leaves between the read and the update is not
// reported as missing; the update then matches nothing.
func (s *Store) markReadBatched(ctx context.Context, channelID, userID string, seq int64) (int64, error) {
	id := bson.D{{Key: "_id", Value: memberID(channelID, userID)}}
	var d struct {
		LastReadSeq int64 `bson:"last_read_seq"`
	}
	err := s.members.FindOne(ctx, id, options.FindOne().SetProjection(bson.D{{Key: "last_read_seq", Value: 1}})).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, fmt.Errorf("member %s of %s: %w", userID, channelID, chat.ErrNotFound)
	case err != nil:
		return 0, fmt.Errorf("mark read: %w", err)
	}
	if s.behind != nil {
		d.LastReadSeq = max(d.LastReadSeq, s.behind.readSeq(channelID, userID))
	}
	if d.LastReadSeq >= seq {
		return d.LastReadSeq, nil
	}
	if err := s.RaiseReadSeq(ctx, channelID, userID, seq); err != nil {
		return 0, err
	}
	return seq, nil
}

// MarkSenderRead raises the sender's read position to the seq of the
// message it sent, with $max; a missing member is not reported. In the
// one-writer mode it is written behind (behind.go).
func (s *Store) MarkSenderRead(ctx context.Context, channelID, userID string, seq int64) error {
	if s.behind != nil {
		s.behind.raiseRead(s, channelID, userID, seq)
		return nil
	}
	return s.RaiseReadSeq(ctx, channelID, userID, seq)
}

// channelOf converts a stored channel, showing a preview queued to be
// written behind.
func (s *Store) channelOf(d channelDoc) chat.Channel {
	ch := fromDocChannel(d)
	if s.behind != nil {
		if m, ok := s.behind.preview(ch.ID); ok && m.Seq >= ch.LastSeq {
			m = fromDocMessage(*docOfPreview(m))
			ch.LastSeq, ch.LastMessage = m.Seq, &m
		}
	}
	return ch
}

// memberOf converts a stored membership, with a read position queued to
// be written behind.
func (s *Store) memberOf(d memberDoc) chat.Member {
	m := fromDocMember(d)
	if s.behind != nil {
		m.LastReadSeq = max(m.LastReadSeq, s.behind.readSeq(m.ChannelID, m.UserID))
	}
	return m
}

// RaiseReadSeq raises a member's read position to seq with $max, without
// reading it: for a caller that knows the member and its position (the
// member-list cache of the only writer, rostercache.Config.Exact). A
// missing member is not reported: the update matches nothing. In the
// one-writer mode it goes with the other sends' updates (batch.go).
func (s *Store) RaiseReadSeq(ctx context.Context, channelID, userID string, seq int64) error {
	id := bson.D{{Key: "_id", Value: memberID(channelID, userID)}}
	update := bson.D{{Key: "$max", Value: bson.D{{Key: "last_read_seq", Value: seq}}}}
	var err error
	if s.memberUpdates != nil {
		err = s.memberUpdates.do(ctx, mongo.NewUpdateOneModel().SetFilter(id).SetUpdate(update))
	} else {
		_, err = s.gatedUpdateOne(ctx, s.members, id, update)
	}
	if err != nil {
		return fmt.Errorf("raise read position of %s in %s: %w", userID, channelID, err)
	}
	return nil
}
