package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/platform/mongoutil"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newStore(t *testing.T) (*Store, *mongo.Database) {
	t.Helper()
	db := testenv.New(t).Mongo(t)
	s := New(db)
	if err := s.EnsureIndexes(testContext(t)); err != nil {
		t.Fatalf("EnsureIndexes: %v", err)
	}
	return s, db
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestIsDuplicateKey(t *testing.T) {
	s, db := newStore(t)
	ctx := testContext(t)

	// A real unique violation on UPDATE, the case FerretDB reports without
	// code 11000.
	coll := db.Collection("dupe")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}, {Key: "k", Value: "a"}}, bson.D{{Key: "_id", Value: 2}, {Key: "k", Value: "b"}}}); err != nil {
		t.Fatal(err)
	}
	_, updateErr := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 2}}, bson.D{{Key: "$set", Value: bson.D{{Key: "k", Value: "a"}}}})
	t.Logf("duplicate on update: %v", updateErr)
	_, insertErr := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 3}, {Key: "k", Value: "a"}})
	t.Logf("duplicate on insert: %v", insertErr)
	// And the conditional upsert ClaimDigest relies on.
	if ok, err := s.ClaimDigest(ctx, "u1", t0, time.Hour); err != nil || !ok {
		t.Fatalf("first claim = %v, %v", ok, err)
	}
	_, upsertErr := s.digestState.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "u1"}, {Key: "last_digest_at", Value: bson.D{{Key: "$lte", Value: t0.Add(-time.Hour)}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_digest_at", Value: t0}}}}, options.UpdateOne().SetUpsert(true))
	t.Logf("duplicate on upsert: %v", upsertErr)

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"other error", errors.New("connection refused"), false},
		{"no documents", mongo.ErrNoDocuments, false},
		{"update on the real server", updateErr, true},
		{"insert on the real server", insertErr, true},
		{"upsert on the real server", upsertErr, true},
		{"wrapped", fmt.Errorf("x: %w", insertErr), true},
		{"FerretDB/PostgreSQL internal error", mongo.CommandError{Code: 1, Name: "InternalError", Message: `ERROR: duplicate key value violates unique constraint "dupe_k" (SQLSTATE 23505)`}, true},
		{"FerretDB/SQLite internal error", mongo.CommandError{Code: 1, Name: "InternalError", Message: "constraint failed: UNIQUE constraint failed: dupe.k (2067)"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mongoutil.IsDuplicateKey(tt.err); got != tt.want {
				t.Errorf("mongoutil.IsDuplicateKey(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestNotificationDeliveries(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	n := notify.Notification{
		ID: "n1", UserID: "u1", Channel: notify.ChannelPush, Kind: notify.KindDirect, Title: "Ann", Body: "hi",
		Data: map[string]string{"channel_id": "c1", "a.b": "dotted keys survive"}, Priority: notify.PriorityHigh,
		Status: notify.StatusQueued, Targets: []string{"d1", "d2"}, CreatedAt: t0, UpdatedAt: t0,
	}
	if existing, err := s.CreateNotifications(ctx, []notify.Notification{n}); err != nil || len(existing) != 0 {
		t.Fatalf("create = %v, %v", existing, err)
	}
	// Again, in a batch with a new one: the new one is written, the old
	// one reported.
	n2 := n
	n2.ID, n2.Title = "n2", "second"
	n1changed := n
	n1changed.Title = "changed"
	existing, err := s.CreateNotifications(ctx, []notify.Notification{n2, n1changed})
	if err != nil || fmt.Sprint(existing) != "[n1]" {
		t.Fatalf("second create = %v, %v; want [n1]", existing, err)
	}
	byID, err := s.NotificationsByID(ctx, []string{"n1", "n2", "n3"})
	if err != nil || len(byID) != 2 || byID["n1"].Title != "Ann" || byID["n2"].Title != "second" {
		t.Fatalf("NotificationsByID = %+v, %v", byID, err)
	}
	got, err := s.Notification(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["a.b"] != "dotted keys survive" || got.Priority != notify.PriorityHigh || len(got.Targets) != 2 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("round trip: %+v", got)
	}

	d := notify.Delivery{Status: notify.StatusFailed, Reason: "unregistered", At: t0.Add(time.Second)}
	after, recorded, err := s.RecordDelivery(ctx, "n1", "d1", d)
	if err != nil || !recorded {
		t.Fatalf("first record: %v %v", recorded, err)
	}
	if after.Deliveries["d1"].Status != notify.StatusFailed || after.Attempts != 1 {
		t.Fatalf("after first record: %+v", after)
	}
	// A failed target may succeed later (a retried dead letter)...
	again, recorded, err := s.RecordDelivery(ctx, "n1", "d1", notify.Delivery{Status: notify.StatusSent, At: t0.Add(2 * time.Second)})
	if err != nil || !recorded || again.Deliveries["d1"].Status != notify.StatusSent || again.Attempts != 2 {
		t.Fatalf("second record: %v %v %+v", recorded, err, again)
	}
	// ...but once sent, nothing overwrites it (a redelivered job).
	again, recorded, err = s.RecordDelivery(ctx, "n1", "d1", d)
	if err != nil || recorded {
		t.Fatalf("third record: %v %v", recorded, err)
	}
	if again.Deliveries["d1"].Status != notify.StatusSent || again.Attempts != 2 {
		t.Fatalf("third record changed the document: %+v", again)
	}
	if _, _, err := s.RecordDelivery(ctx, "missing", "d1", d); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("record on a missing notification: %v", err)
	}

	// Sent sticks: a later "failed" does not override it.
	if err := s.SetStatus(ctx, "n1", notify.StatusSent, "", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, "n1", notify.StatusFailed, "late", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordRetry(ctx, "n1", "retrying: 503", t0); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Notification(ctx, "n1")
	if got.Status != notify.StatusSent || got.Attempts != 3 {
		t.Fatalf("status = %s attempts = %d, want sent and 3", got.Status, got.Attempts)
	}
}

func TestListNotificationsPages(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	// Two share a timestamp, so the id breaks the tie.
	times := []time.Time{t0, t0.Add(time.Second), t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	for i, ts := range times {
		n := notify.Notification{ID: fmt.Sprintf("n%d", i), UserID: "u1", Channel: notify.ChannelPush, Kind: notify.KindManual,
			Title: "t", Status: notify.StatusSent, Targets: []string{"d"}, CreatedAt: ts, UpdatedAt: ts}
		if _, err := s.CreateNotifications(ctx, []notify.Notification{n}); err != nil {
			t.Fatal(err)
		}
	}
	other := notify.Notification{ID: "x", UserID: "u2", Channel: notify.ChannelPush, Kind: notify.KindManual, Title: "t",
		Status: notify.StatusSent, CreatedAt: t0.Add(10 * time.Second), UpdatedAt: t0}
	if _, err := s.CreateNotifications(ctx, []notify.Notification{other}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var after *notify.Cursor
	for range 10 {
		page, err := s.ListNotifications(ctx, "u1", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range page {
			ids = append(ids, n.ID)
		}
		if len(page) < 2 {
			break
		}
		last := page[len(page)-1]
		after = &notify.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	want := []string{"n4", "n3", "n2", "n1", "n0"}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v", ids, want)
	}
}

func TestDevices(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	fcm := notify.Device{ID: "d1", UserID: "u1", Platform: notify.PlatformFCM, FCMToken: "tok-1", CreatedAt: t0, UpdatedAt: t0}
	got, err := s.RegisterDevice(ctx, fcm)
	if err != nil || got.ID != "d1" || got.FCMToken != "tok-1" {
		t.Fatalf("register: %+v %v", got, err)
	}
	// Same token again (another id proposed): the existing device.
	again := fcm
	again.ID = "d9"
	if got, err = s.RegisterDevice(ctx, again); err != nil || got.ID != "d1" {
		t.Fatalf("re-register: %+v %v", got, err)
	}
	web := notify.Device{ID: "d2", UserID: "u1", Platform: notify.PlatformWebPush, CreatedAt: t0.Add(time.Second), UpdatedAt: t0,
		WebPush: notify.WebPushSubscription{Endpoint: "https://push.example/1", P256dh: "key", Auth: "auth"}}
	if _, err := s.RegisterDevice(ctx, web); err != nil {
		t.Fatal(err)
	}
	all, err := s.DevicesOf(ctx, []string{"u1", "u2"})
	if err != nil || len(all["u1"]) != 2 || len(all["u2"]) != 0 {
		t.Fatalf("devices: %+v %v", all, err)
	}
	if all["u1"][1].WebPush.Endpoint != "https://push.example/1" {
		t.Fatalf("web push device: %+v", all["u1"][1])
	}
	// Another user signs in on the same phone: the token moves to them.
	moved := fcm
	moved.ID, moved.UserID = "d7", "u2"
	if got, err = s.RegisterDevice(ctx, moved); err != nil || got.ID != "d1" || got.UserID != "u2" {
		t.Fatalf("move: %+v %v", got, err)
	}
	if err := s.DeleteDevice(ctx, "u1", "d1"); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("delete another user's device: %v", err)
	}
	if err := s.DeleteDevice(ctx, "u2", "d1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Device(ctx, "d1"); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("deleted device: %v", err)
	}
	if err := s.DeleteDevice(ctx, "", "d2"); err != nil {
		t.Fatalf("delete by id only: %v", err)
	}
}

func TestPreferences(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	p := notify.Preferences{Direct: true, Public: true, EmailDigest: true,
		MutedChannels: []notify.MutedChannel{{ChannelID: "c1"}, {ChannelID: "c2", Until: t0.Add(time.Hour)}},
		QuietHours:    notify.QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Europe/Paris"}}
	if err := s.SavePreferences(ctx, "u1", p, t0); err != nil {
		t.Fatal(err)
	}
	p.Group = true
	if err := s.SavePreferences(ctx, "u1", p, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEmailDigest(ctx, "u2", false, t0); err != nil {
		t.Fatal(err)
	}
	got, err := s.PreferencesOf(ctx, []string{"u1", "u2", "u3"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", got["u1"]) != fmt.Sprintf("%+v", p) {
		t.Errorf("u1 = %+v\nwant %+v", got["u1"], p)
	}
	want2 := notify.DefaultPreferences()
	want2.EmailDigest = false
	if fmt.Sprintf("%+v", got["u2"]) != fmt.Sprintf("%+v", want2) {
		t.Errorf("u2 = %+v\nwant %+v", got["u2"], want2)
	}
	if _, ok := got["u3"]; ok {
		t.Error("u3 has no stored preferences but got some")
	}
}

func TestDigestQueue(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	items := []notify.DigestItem{
		{ID: "i1", UserID: "u1", Kind: notify.KindDirect, ChannelID: "c1", SenderName: "Ann", Text: "one", CreatedAt: t0},
		{ID: "i2", UserID: "u1", Kind: notify.KindMention, ChannelID: "c2", SenderName: "Bob", Text: "two", CreatedAt: t0.Add(time.Minute)},
		{ID: "i3", UserID: "u2", Kind: notify.KindDirect, ChannelID: "c3", SenderName: "Cy", Text: "three", CreatedAt: t0.Add(time.Hour)},
	}
	for _, it := range append(items, items[0]) { // the repeat is ignored
		if err := s.AddDigestItem(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	users, err := s.DigestUsers(ctx, t0.Add(30*time.Minute), 10)
	if err != nil || fmt.Sprint(users) != "[u1]" {
		t.Fatalf("digest users = %v, %v", users, err)
	}
	got, err := s.DigestItems(ctx, "u1", 10)
	if err != nil || len(got) != 2 || got[0].ID != "i1" || got[1].Kind != notify.KindMention {
		t.Fatalf("items = %+v, %v", got, err)
	}
	if err := s.DeleteDigestItems(ctx, "u1", []string{"i1", "i2", "i3"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.DigestItems(ctx, "u2", 10); len(got) != 1 {
		t.Fatalf("another user's item was deleted: %+v", got)
	}

	claims := []struct {
		at   time.Time
		want bool
	}{
		{t0, true},
		{t0.Add(10 * time.Minute), false},
		{t0.Add(59 * time.Minute), false},
		{t0.Add(61 * time.Minute), true},
		{t0.Add(62 * time.Minute), false},
	}
	for _, c := range claims {
		ok, err := s.ClaimDigest(ctx, "u9", c.at, time.Hour)
		if err != nil || ok != c.want {
			t.Errorf("claim at %s = %v, %v; want %v", c.at.Sub(t0), ok, err, c.want)
		}
	}
}

// TestConcurrentDeliveries records every target of a notification at once,
// with retries and status changes in between, as the job workers do:
// every delivery must be kept. FerretDB v1 rewrites the whole document on
// an update, so unserialised updates lost deliveries there, and a
// notification stayed queued.
func TestConcurrentDeliveries(t *testing.T) {
	s, _ := newStore(t)
	ctx := testContext(t)
	const notifications, targets = 6, 8
	var ns []notify.Notification
	for i := range notifications {
		n := notify.Notification{
			ID: fmt.Sprintf("cn%d", i), UserID: "u1", Channel: notify.ChannelPush, Kind: notify.KindDirect,
			Status: notify.StatusQueued, CreatedAt: t0, UpdatedAt: t0,
		}
		for j := range targets {
			n.Targets = append(n.Targets, fmt.Sprintf("d%d", j))
		}
		ns = append(ns, n)
	}
	if _, err := s.CreateNotifications(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		for _, target := range n.Targets {
			wg.Go(func() {
				if err := s.RecordRetry(ctx, n.ID, "retrying", t0); err != nil {
					t.Error(err)
				}
				if _, _, err := s.RecordDelivery(ctx, n.ID, target, notify.Delivery{Status: notify.StatusSent, At: t0}); err != nil {
					t.Error(err)
				}
				if err := s.SetStatus(ctx, n.ID, notify.StatusSent, "", t0); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	for _, n := range ns {
		got, err := s.Notification(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Deliveries) != targets || got.Attempts != 2*targets || got.Status != notify.StatusSent {
			t.Errorf("%s: %d deliveries, %d attempts, status %s; want %d, %d, sent", n.ID, len(got.Deliveries), got.Attempts, got.Status, targets, 2*targets)
		}
	}
}
