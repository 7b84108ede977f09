package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/mongoutil"
)

// ---- preferences ----

type mutedDoc struct {
	ChannelID string     `bson:"channel_id"`
	Until     *time.Time `bson:"until,omitempty"`
}

type quietDoc struct {
	Enabled  bool   `bson:"enabled"`
	Start    string `bson:"start,omitempty"`
	End      string `bson:"end,omitempty"`
	TimeZone string `bson:"time_zone,omitempty"`
}

type preferencesDoc struct {
	UserID        string     `bson:"_id"`
	Direct        bool       `bson:"direct"`
	Group         bool       `bson:"group"`
	Public        bool       `bson:"public"`
	Mentions      bool       `bson:"mentions"`
	EmailDigest   bool       `bson:"email_digest"`
	MutedChannels []mutedDoc `bson:"muted_channels"`
	QuietHours    quietDoc   `bson:"quiet_hours"`
	UpdatedAt     time.Time  `bson:"updated_at"`
}

func docOfPreferences(userID string, p notify.Preferences, at time.Time) preferencesDoc {
	d := preferencesDoc{
		UserID: userID, Direct: p.Direct, Group: p.Group, Public: p.Public, Mentions: p.Mentions, EmailDigest: p.EmailDigest,
		MutedChannels: []mutedDoc{},
		QuietHours:    quietDoc{Enabled: p.QuietHours.Enabled, Start: p.QuietHours.Start, End: p.QuietHours.End, TimeZone: p.QuietHours.TimeZone},
		UpdatedAt:     at.UTC(),
	}
	for _, m := range p.MutedChannels {
		md := mutedDoc{ChannelID: m.ChannelID}
		if !m.Until.IsZero() {
			u := m.Until.UTC()
			md.Until = &u
		}
		d.MutedChannels = append(d.MutedChannels, md)
	}
	return d
}

func fromDocPreferences(d preferencesDoc) notify.Preferences {
	p := notify.Preferences{
		Direct: d.Direct, Group: d.Group, Public: d.Public, Mentions: d.Mentions, EmailDigest: d.EmailDigest,
		QuietHours: notify.QuietHours{Enabled: d.QuietHours.Enabled, Start: d.QuietHours.Start, End: d.QuietHours.End, TimeZone: d.QuietHours.TimeZone},
	}
	for _, m := range d.MutedChannels {
		mc := notify.MutedChannel{ChannelID: m.ChannelID}
		if m.Until != nil {
			mc.Until = m.Until.UTC()
		}
		p.MutedChannels = append(p.MutedChannels, mc)
	}
	return p
}

// PreferencesOf implements notify.PreferenceStore.
func (s *Store) PreferencesOf(ctx context.Context, userIDs []string) (map[string]notify.Preferences, error) {
	out := make(map[string]notify.Preferences, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cur, err := s.prefs.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: userIDs}}}})
	if err != nil {
		return nil, fmt.Errorf("store: find preferences: %w", err)
	}
	var docs []preferencesDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: find preferences: %w", err)
	}
	for _, d := range docs {
		out[d.UserID] = fromDocPreferences(d)
	}
	return out, nil
}

// SavePreferences implements notify.PreferenceStore.
func (s *Store) SavePreferences(ctx context.Context, userID string, p notify.Preferences, at time.Time) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	doc := docOfPreferences(userID, p, at)
	replace := func() error {
		_, err := s.prefs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: userID}}, doc, options.Replace().SetUpsert(true))
		return err
	}
	err := replace()
	if mongoutil.IsDuplicateKey(err) {
		// Two first saves raced: the other inserted; replace it now.
		err = replace()
	}
	if err != nil {
		return fmt.Errorf("store: save preferences: %w", err)
	}
	return nil
}

// SetEmailDigest implements notify.PreferenceStore. A user without stored
// preferences gets the defaults with the digest switched.
func (s *Store) SetEmailDigest(ctx context.Context, userID string, on bool, at time.Time) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	def := docOfPreferences(userID, notify.DefaultPreferences(), at)
	update := func() error {
		_, err := s.prefs.UpdateOne(ctx, bson.D{{Key: "_id", Value: userID}}, bson.D{
			{Key: "$set", Value: bson.D{{Key: "email_digest", Value: on}, {Key: "updated_at", Value: at.UTC()}}},
			{Key: "$setOnInsert", Value: bson.D{
				{Key: "direct", Value: def.Direct}, {Key: "group", Value: def.Group}, {Key: "public", Value: def.Public},
				{Key: "mentions", Value: def.Mentions}, {Key: "muted_channels", Value: def.MutedChannels},
				{Key: "quiet_hours", Value: def.QuietHours},
			}},
		}, options.UpdateOne().SetUpsert(true))
		return err
	}
	err := update()
	if mongoutil.IsDuplicateKey(err) {
		err = update()
	}
	if err != nil {
		return fmt.Errorf("store: set email digest: %w", err)
	}
	return nil
}

// ---- devices ----

type webPushDoc struct {
	Endpoint string `bson:"endpoint"`
	P256dh   string `bson:"p256dh"`
	Auth     string `bson:"auth"`
}

type deviceDoc struct {
	ID        string      `bson:"_id"`
	UserID    string      `bson:"user_id"`
	Platform  string      `bson:"platform"`
	Key       string      `bson:"key"`
	FCMToken  string      `bson:"fcm_token,omitempty"`
	WebPush   *webPushDoc `bson:"web_push,omitempty"`
	CreatedAt time.Time   `bson:"created_at"`
	UpdatedAt time.Time   `bson:"updated_at"`
}

func fromDocDevice(d deviceDoc) notify.Device {
	out := notify.Device{ID: d.ID, UserID: d.UserID, Platform: notify.Platform(d.Platform), FCMToken: d.FCMToken,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	if d.WebPush != nil {
		out.WebPush = notify.WebPushSubscription{Endpoint: d.WebPush.Endpoint, P256dh: d.WebPush.P256dh, Auth: d.WebPush.Auth}
	}
	return out
}

// RegisterDevice implements notify.DeviceStore: an upsert on the unique
// key, so registering twice (or concurrently) yields one device.
func (s *Store) RegisterDevice(ctx context.Context, d notify.Device) (notify.Device, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	set := bson.D{{Key: "user_id", Value: d.UserID}, {Key: "updated_at", Value: d.UpdatedAt.UTC()}}
	if d.Platform == notify.PlatformWebPush {
		// The keys may be rotated for the same endpoint; keep the latest.
		set = append(set, bson.E{Key: "web_push", Value: webPushDoc{Endpoint: d.WebPush.Endpoint, P256dh: d.WebPush.P256dh, Auth: d.WebPush.Auth}})
	}
	onInsert := bson.D{{Key: "_id", Value: d.ID}, {Key: "platform", Value: string(d.Platform)}, {Key: "created_at", Value: d.CreatedAt.UTC()}}
	if d.Platform == notify.PlatformFCM {
		onInsert = append(onInsert, bson.E{Key: "fcm_token", Value: d.FCMToken})
	}
	upsert := func() (deviceDoc, error) {
		var doc deviceDoc
		err := s.devices.FindOneAndUpdate(ctx, bson.D{{Key: "key", Value: d.Key()}},
			bson.D{{Key: "$set", Value: set}, {Key: "$setOnInsert", Value: onInsert}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
		return doc, err
	}
	doc, err := upsert()
	if mongoutil.IsDuplicateKey(err) {
		// A concurrent registration inserted it first: now it matches.
		doc, err = upsert()
	}
	if err != nil {
		return notify.Device{}, fmt.Errorf("store: register device: %w", err)
	}
	return fromDocDevice(doc), nil
}

// Device implements notify.DeviceStore.
func (s *Store) Device(ctx context.Context, id string) (notify.Device, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var d deviceDoc
	err := s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return notify.Device{}, fmt.Errorf("device %s: %w", id, notify.ErrNotFound)
	}
	if err != nil {
		return notify.Device{}, fmt.Errorf("store: find device: %w", err)
	}
	return fromDocDevice(d), nil
}

// DevicesOf implements notify.DeviceStore.
func (s *Store) DevicesOf(ctx context.Context, userIDs []string) (map[string][]notify.Device, error) {
	out := make(map[string][]notify.Device, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cur, err := s.devices.Find(ctx, bson.D{{Key: "user_id", Value: bson.D{{Key: "$in", Value: userIDs}}}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: find devices: %w", err)
	}
	var docs []deviceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: find devices: %w", err)
	}
	for _, d := range docs {
		out[d.UserID] = append(out[d.UserID], fromDocDevice(d))
	}
	return out, nil
}

// DeleteDevice implements notify.DeviceStore.
func (s *Store) DeleteDevice(ctx context.Context, userID, id string) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	filter := bson.D{{Key: "_id", Value: id}}
	if userID != "" {
		filter = append(filter, bson.E{Key: "user_id", Value: userID})
	}
	res, err := s.devices.DeleteOne(ctx, filter)
	if err != nil {
		return fmt.Errorf("store: delete device: %w", err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("device %s: %w", id, notify.ErrNotFound)
	}
	return nil
}

// ---- digest ----

type digestItemDoc struct {
	ID          string    `bson:"_id"`
	UserID      string    `bson:"user_id"`
	Kind        string    `bson:"kind"`
	ChannelID   string    `bson:"channel_id"`
	ChannelName string    `bson:"channel_name,omitempty"`
	MessageID   string    `bson:"message_id,omitempty"`
	Seq         int64     `bson:"seq,omitempty"`
	SenderName  string    `bson:"sender_name"`
	Text        string    `bson:"text"`
	CreatedAt   time.Time `bson:"created_at"`
}

func docOfDigestItem(it notify.DigestItem) digestItemDoc {
	return digestItemDoc{ID: it.ID, UserID: it.UserID, Kind: string(it.Kind), ChannelID: it.ChannelID, ChannelName: it.ChannelName,
		MessageID: it.MessageID, Seq: it.Seq, SenderName: it.SenderName, Text: it.Text, CreatedAt: it.CreatedAt.UTC()}
}

func fromDocDigestItem(d digestItemDoc) notify.DigestItem {
	return notify.DigestItem{ID: d.ID, UserID: d.UserID, Kind: notify.Kind(d.Kind), ChannelID: d.ChannelID, ChannelName: d.ChannelName,
		MessageID: d.MessageID, Seq: d.Seq, SenderName: d.SenderName, Text: d.Text, CreatedAt: d.CreatedAt.UTC()}
}

// AddDigestItem implements notify.DigestStore.
func (s *Store) AddDigestItem(ctx context.Context, it notify.DigestItem) error {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.items.InsertOne(ctx, docOfDigestItem(it))
	if err != nil && !mongoutil.IsDuplicateKey(err) {
		return fmt.Errorf("store: add digest item: %w", err)
	}
	return nil
}

// DigestUsers implements notify.DigestStore.
func (s *Store) DigestUsers(ctx context.Context, cutoff time.Time, limit int) ([]string, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cur, err := s.items.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "created_at", Value: bson.D{{Key: "$lte", Value: cutoff.UTC()}}}}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$user_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
		{{Key: "$limit", Value: limit}},
	})
	if err != nil {
		return nil, fmt.Errorf("store: digest users: %w", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("store: digest users: %w", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out, nil
}

// DigestItems implements notify.DigestStore.
func (s *Store) DigestItems(ctx context.Context, userID string, limit int) ([]notify.DigestItem, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	cur, err := s.items.Find(ctx, bson.D{{Key: "user_id", Value: userID}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: digest items: %w", err)
	}
	var docs []digestItemDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: digest items: %w", err)
	}
	out := make([]notify.DigestItem, len(docs))
	for i, d := range docs {
		out[i] = fromDocDigestItem(d)
	}
	return out, nil
}

// DeleteDigestItems implements notify.DigestStore.
func (s *Store) DeleteDigestItems(ctx context.Context, userID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.items.DeleteMany(ctx, bson.D{{Key: "user_id", Value: userID}, {Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return fmt.Errorf("store: delete digest items: %w", err)
	}
	return nil
}

// ClaimDigest implements notify.DigestStore with a conditional upsert: it
// matches the user's state only if the last digest is older than the
// window; otherwise the upsert's insert collides with the existing _id,
// which means "claimed by someone else".
func (s *Store) ClaimDigest(ctx context.Context, userID string, now time.Time, window time.Duration) (bool, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	_, err := s.digestState.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: userID}, {Key: "last_digest_at", Value: bson.D{{Key: "$lte", Value: now.Add(-window).UTC()}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_digest_at", Value: now.UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	if mongoutil.IsDuplicateKey(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: claim digest: %w", err)
	}
	return true, nil
}
