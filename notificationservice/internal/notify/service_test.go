package notify_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

func msg(id, channel, typ, sender, content string) notify.MessageSent {
	return notify.MessageSent{EventID: "ev-" + id, ChannelID: channel, ChannelType: typ, ChannelName: channel,
		MessageID: id, Seq: 7, SenderID: sender, Content: content, MessageType: "text"}
}

func TestMessageSentFanOut(t *testing.T) {
	type expect struct {
		channel  notify.Channel
		kind     notify.Kind
		status   notify.Status
		priority notify.Priority
		reason   string
		title    string
	}
	tests := []struct {
		name      string
		msg       notify.MessageSent
		setup     func(t *testing.T, w *world)
		noWebPush bool
		// want maps each user to the notifications they get (none if absent).
		want map[string][]expect
		// digest lists the users who get a digest item.
		digest []string
		jobs   int
	}{
		{
			name: "direct message to an offline user with a phone",
			msg:  msg("m1", "dm", notify.ChatPrivate, "ann", "lunch?"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
			},
			want:   map[string][]expect{"bob": {{notify.ChannelPush, notify.KindDirect, notify.StatusQueued, notify.PriorityHigh, "", "Ann"}}},
			digest: []string{"bob"},
			jobs:   1,
		},
		{
			name: "connected users are not notified",
			msg:  msg("m1", "dm", notify.ChatPrivate, "ann", "lunch?"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
				w.presence.set("bob", true, time.Time{})
			},
		},
		{
			name: "a member who has read past the message is not notified (a late event)",
			msg:  msg("m1", "team", notify.ChatGroup, "ann", "standup"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
				w.device(t, "carol", notify.PlatformFCM, "carol-phone")
				w.members.reads["team/carol"] = 7 // the message's seq
				w.members.reads["team/bob"] = 6
			},
			want: map[string][]expect{"bob": {{notify.ChannelPush, notify.KindMessage, notify.StatusQueued, notify.PriorityNormal, "", "Ann in #team"}}},
			jobs: 1,
		},
		{
			name: "the sender is not notified",
			msg:  msg("m1", "dm", notify.ChatPrivate, "ann", "lunch?"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "ann", notify.PlatformFCM, "ann-phone")
			},
			digest: []string{"bob"},
		},
		{
			name: "group: mentions are high priority, the rest normal, phone and browser",
			msg:  msg("m2", "team", notify.ChatGroup, "ann", "@carol can you check? cc @nobody"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
				w.device(t, "carol", notify.PlatformFCM, "carol-phone")
				w.device(t, "carol", notify.PlatformWebPush, "carol-browser")
			},
			want: map[string][]expect{
				"bob": {{notify.ChannelPush, notify.KindMessage, notify.StatusQueued, notify.PriorityNormal, "", "Ann in #team"}},
				"carol": {
					{notify.ChannelPush, notify.KindMention, notify.StatusQueued, notify.PriorityHigh, "", "Ann mentioned you in #team"},
					{notify.ChannelWebPush, notify.KindMention, notify.StatusQueued, notify.PriorityHigh, "", "Ann mentioned you in #team"},
				},
			},
			digest: []string{"carol"},
			jobs:   3,
		},
		{
			name: "public: only mentions by default",
			msg:  notify.MessageSent{EventID: "ev-m3", ChannelID: "lobby", ChannelType: notify.ChatPublic, SenderID: "ann", MessageID: "m3", Content: "welcome all", Mentions: []string{"Dave"}},
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
				w.device(t, "dave", notify.PlatformFCM, "dave-phone")
			},
			want:   map[string][]expect{"dave": {{notify.ChannelPush, notify.KindMention, notify.StatusQueued, notify.PriorityHigh, "", "Ann mentioned you"}}},
			digest: []string{"dave"},
			jobs:   1,
		},
		{
			name: "muted channel and quiet hours are recorded as suppressed",
			msg:  msg("m4", "team", notify.ChatGroup, "ann", "standup"),
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
				w.device(t, "carol", notify.PlatformFCM, "carol-phone")
				ctx := context.Background()
				p := notify.DefaultPreferences()
				p.MutedChannels = []notify.MutedChannel{{ChannelID: "team"}}
				if _, err := w.svc.UpdatePreferences(ctx, "bob", p); err != nil {
					t.Fatal(err)
				}
				q := notify.DefaultPreferences()
				q.QuietHours = notify.QuietHours{Enabled: true, Start: "11:00", End: "13:00", TimeZone: "UTC"}
				if _, err := w.svc.UpdatePreferences(ctx, "carol", q); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string][]expect{
				"bob":   {{notify.ChannelPush, notify.KindMessage, notify.StatusSuppressed, notify.PriorityNormal, notify.ReasonMuted, "Ann in #team"}},
				"carol": {{notify.ChannelPush, notify.KindMessage, notify.StatusSuppressed, notify.PriorityNormal, notify.ReasonQuietHours, "Ann in #team"}},
			},
		},
		{
			name:      "no provider for a channel: a dry run is recorded",
			msg:       msg("m5", "dm", notify.ChatPrivate, "ann", "ping"),
			noWebPush: true,
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformWebPush, "bob-browser")
			},
			want:   map[string][]expect{"bob": {{notify.ChannelWebPush, notify.KindDirect, notify.StatusDryRun, notify.PriorityHigh, notify.ReasonNoProvider, "Ann"}}},
			digest: []string{"bob"},
		},
		{
			name: "users without devices get only the digest",
			msg:  msg("m6", "dm", notify.ChatPrivate, "ann", "ping"),
			want: nil, digest: []string{"bob"},
		},
		{
			name: "image without text",
			msg:  notify.MessageSent{EventID: "ev-m7", ChannelID: "dm", ChannelType: notify.ChatPrivate, SenderID: "ann", MessageID: "m7", MessageType: "image"},
			setup: func(t *testing.T, w *world) {
				w.device(t, "bob", notify.PlatformFCM, "bob-phone")
			},
			want:   map[string][]expect{"bob": {{notify.ChannelPush, notify.KindDirect, notify.StatusQueued, notify.PriorityHigh, "", "Ann"}}},
			digest: []string{"bob"},
			jobs:   1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{noWebPush: tt.noWebPush})
			if tt.setup != nil {
				tt.setup(t, w)
			}
			ctx := context.Background()
			// Twice: a redelivered event must not notify twice.
			for range 2 {
				if err := w.svc.HandleMessageSent(ctx, tt.msg); err != nil {
					t.Fatalf("HandleMessageSent: %v", err)
				}
			}
			for _, u := range []string{"ann", "bob", "carol", "dave"} {
				got := w.history(t, u)
				if len(got) != len(tt.want[u]) {
					t.Errorf("%s has %d notifications, want %d: %+v", u, len(got), len(tt.want[u]), got)
					continue
				}
				for _, e := range tt.want[u] {
					n, ok := got[e.channel]
					if !ok {
						t.Errorf("%s: no %s notification", u, e.channel)
						continue
					}
					if n.Kind != e.kind || n.Status != e.status || n.Priority != e.priority || n.FailureReason != e.reason || n.Title != e.title {
						t.Errorf("%s %s = kind %s status %s prio %s reason %q title %q; want %+v", u, e.channel, n.Kind, n.Status, n.Priority, n.FailureReason, n.Title, e)
					}
					if n.Data["channel_id"] != tt.msg.ChannelID || n.Data["kind"] != string(e.kind) {
						t.Errorf("%s data = %v", u, n.Data)
					}
				}
			}
			jobs := w.queue.take()
			if len(jobs) != tt.jobs {
				t.Errorf("%d jobs queued, want %d", len(jobs), tt.jobs)
			}
			var digest []string
			for _, u := range []string{"ann", "bob", "carol", "dave"} {
				items, err := w.store.DigestItems(ctx, u, 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) > 1 {
					t.Errorf("%s has %d digest items for one message", u, len(items))
				}
				if len(items) == 1 {
					digest = append(digest, u)
				}
			}
			if fmt.Sprint(digest) != fmt.Sprint(tt.digest) {
				t.Errorf("digest items for %v, want %v", digest, tt.digest)
			}
		})
	}
}

func TestFriendRequested(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.device(t, "bob", notify.PlatformFCM, "bob-phone")
	w.presence.set("bob", true, time.Time{}) // connected users are notified of friend requests too
	if err := w.svc.HandleFriendRequested(context.Background(), notify.FriendRequested{EventID: "ev-f1", FromUserID: "ann", ToUserID: "bob"}); err != nil {
		t.Fatal(err)
	}
	n := w.history(t, "bob")[notify.ChannelPush]
	if n.Kind != notify.KindFriendRequest || n.Title != "Ann sent you a friend request" || n.Status != notify.StatusQueued || n.Data["user_id"] != "ann" {
		t.Fatalf("notification = %+v", n)
	}
	if jobs := w.queue.take(); len(jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(jobs))
	}
	err := w.svc.HandleFriendRequested(context.Background(), notify.FriendRequested{EventID: "ev-f2"})
	if !notify.IsPermanent(err) {
		t.Fatalf("request without target: %v, want a permanent error", err)
	}
}

func TestDeliverOutcomes(t *testing.T) {
	temp := notify.Temporary(errors.New("503"), 20*time.Second)
	tests := []struct {
		name       string
		errs       []error
		attempt    notify.Attempt
		wantErr    func(error) bool
		wantStatus notify.Status
		wantReason string
		deviceGone bool
	}{
		{name: "accepted", wantErr: isNil, wantStatus: notify.StatusSent},
		{name: "unregistered", errs: []error{fmt.Errorf("%w: 404 UNREGISTERED", notify.ErrUnregistered)}, wantErr: isNil,
			wantStatus: notify.StatusFailed, wantReason: notify.ReasonUnregistered, deviceGone: true},
		{name: "permanent", errs: []error{notify.Permanent(errors.New("400 INVALID_ARGUMENT"))}, wantErr: notify.IsPermanent,
			wantStatus: notify.StatusFailed, wantReason: "400 INVALID_ARGUMENT"},
		{name: "temporary", errs: []error{temp}, attempt: notify.Attempt{Number: 1}, wantErr: isRetryAfter(20 * time.Second),
			wantStatus: notify.StatusQueued, wantReason: "retrying: 503"},
		{name: "temporary on the last attempt", errs: []error{temp}, attempt: notify.Attempt{Number: 8, Final: true}, wantErr: notify.IsPermanent,
			wantStatus: notify.StatusFailed, wantReason: "gave up after 8 attempts: 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d := w.device(t, "bob", notify.PlatformFCM, "bob-phone")
			w.fcm.errs[d.ID] = tt.errs
			ns, err := w.svc.SendPush(context.Background(), notify.PushRequest{UserID: "bob", Title: "hi", Priority: notify.PriorityHigh})
			if err != nil || len(ns) != 1 {
				t.Fatalf("SendPush = %+v, %v", ns, err)
			}
			jobs := w.queue.take()
			if len(jobs) != 1 || jobs[0].Target != d.ID {
				t.Fatalf("jobs = %+v", jobs)
			}
			at := tt.attempt
			if at.Number == 0 {
				at.Number = 1
			}
			err = w.svc.Deliver(context.Background(), jobs[0], at)
			if !tt.wantErr(err) {
				t.Errorf("Deliver error = %v", err)
			}
			n, err := w.store.Notification(context.Background(), ns[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if n.Status != tt.wantStatus || n.FailureReason != tt.wantReason || n.Attempts != 1 {
				t.Errorf("status %s reason %q attempts %d; want %s %q 1", n.Status, n.FailureReason, n.Attempts, tt.wantStatus, tt.wantReason)
			}
			_, err = w.store.Device(context.Background(), d.ID)
			if gone := errors.Is(err, notify.ErrNotFound); gone != tt.deviceGone {
				t.Errorf("device deleted = %v, want %v", gone, tt.deviceGone)
			}
			if w.fcm.count() != 1 || w.fcm.sent[0].Priority != notify.PriorityHigh || w.fcm.sent[0].Device.FCMToken != "bob-phone" {
				t.Errorf("pushes = %+v", w.fcm.sent)
			}
		})
	}
}

func isNil(err error) bool { return err == nil }

func isRetryAfter(d time.Duration) func(error) bool {
	return func(err error) bool { return err != nil && !notify.IsPermanent(err) && notify.RetryAfterOf(err) == d }
}

// TestRedeliveryAfterCrashDoesNotSendTwice: a worker sent and recorded the
// notification but died before acknowledging; the queue delivers the job
// again, and nothing is sent.
func TestRedeliveryAfterCrashDoesNotSendTwice(t *testing.T) {
	w := newWorld(t, worldOptions{})
	d := w.device(t, "bob", notify.PlatformFCM, "bob-phone")
	ns, err := w.svc.SendPush(context.Background(), notify.PushRequest{UserID: "bob", Title: "hi", Key: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	job := w.queue.take()[0]
	for i := range 3 { // the first delivery, then two redeliveries
		if err := w.svc.Deliver(context.Background(), job, notify.Attempt{Number: i + 1}); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if w.fcm.count() != 1 {
		t.Fatalf("sent %d times, want once", w.fcm.count())
	}
	n, _ := w.store.Notification(context.Background(), ns[0].ID)
	if n.Status != notify.StatusSent || n.Deliveries[d.ID].Status != notify.StatusSent {
		t.Fatalf("notification = %+v", n)
	}
	// The same request again (the client retried): the same record, no new job.
	again, err := w.svc.SendPush(context.Background(), notify.PushRequest{UserID: "bob", Title: "hi", Key: "k1"})
	if err != nil || len(again) != 1 || again[0].ID != ns[0].ID || again[0].Status != notify.StatusSent {
		t.Fatalf("repeat = %+v, %v", again, err)
	}
	if jobs := w.queue.take(); len(jobs) != 0 {
		t.Fatalf("repeat queued %d jobs", len(jobs))
	}
}

func TestSeveralDevicesAggregate(t *testing.T) {
	tests := []struct {
		name   string
		errs   [2]error
		status notify.Status
		reason string
	}{
		{"one gone, one sent", [2]error{notify.ErrUnregistered, nil}, notify.StatusSent, ""},
		{"one sent, one gone", [2]error{nil, notify.ErrUnregistered}, notify.StatusSent, ""},
		{"both failed", [2]error{notify.ErrUnregistered, notify.ErrUnregistered}, notify.StatusFailed, notify.ReasonUnregistered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			d1 := w.device(t, "bob", notify.PlatformFCM, "phone-1")
			d2 := w.device(t, "bob", notify.PlatformFCM, "phone-2")
			w.fcm.always[d1.ID], w.fcm.always[d2.ID] = tt.errs[0], tt.errs[1]
			ns, err := w.svc.SendPush(context.Background(), notify.PushRequest{UserID: "bob", Title: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			// Deliver in device order, so "first" and "second" mean something.
			jobs := w.queue.take()
			if len(jobs) != 2 {
				t.Fatalf("%d jobs", len(jobs))
			}
			if jobs[0].Target != d1.ID {
				jobs[0], jobs[1] = jobs[1], jobs[0]
			}
			for _, j := range jobs {
				_ = w.svc.Deliver(context.Background(), j, notify.Attempt{Number: 1})
			}
			n, _ := w.store.Notification(context.Background(), ns[0].ID)
			if n.Status != tt.status || n.FailureReason != tt.reason {
				t.Errorf("status %s reason %q, want %s %q", n.Status, n.FailureReason, tt.status, tt.reason)
			}
		})
	}
}

func TestSendEmail(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	n, err := w.svc.SendEmail(ctx, notify.EmailRequest{UserID: "ann", Subject: "Welcome", Text: "hello", HTML: "<p>hello</p>", Key: "welcome-ann"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != notify.ChannelEmail || n.Status != notify.StatusQueued || n.UserID != "ann" {
		t.Fatalf("notification = %+v", n)
	}
	again, err := w.svc.SendEmail(ctx, notify.EmailRequest{UserID: "ann", Subject: "Welcome", Text: "hello", Key: "welcome-ann"})
	if err != nil || again.ID != n.ID {
		t.Fatalf("same key = %+v, %v", again, err)
	}
	if errs := w.deliverAll(t); len(errs) != 1 || errs[sortedKeys(errs)[0]] != nil {
		t.Fatalf("deliveries = %v", errs)
	}
	if len(w.email.sent) != 1 || w.email.sent[0].To != "ann@example.com" || w.email.sent[0].NotificationID != n.ID || w.email.sent[0].HTML != "<p>hello</p>" {
		t.Fatalf("emails = %+v", w.email.sent)
	}
	if _, err := w.svc.SendEmail(ctx, notify.EmailRequest{UserID: "erin", Subject: "x", Text: "y"}); !errors.Is(err, notify.ErrNoEmail) {
		t.Fatalf("user without address: %v", err)
	}
	bare, err := w.svc.SendEmail(ctx, notify.EmailRequest{To: "ops@example.com", Subject: "report", Text: "ok"})
	if err != nil || bare.UserID != "" {
		t.Fatalf("bare address: %+v %v", bare, err)
	}
}

func TestHistoryPages(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.device(t, "bob", notify.PlatformFCM, "bob-phone")
	ctx := context.Background()
	for i := range 5 {
		if _, err := w.svc.SendPush(ctx, notify.PushRequest{UserID: "bob", Title: fmt.Sprintf("n%d", i)}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			w.clock.Advance(time.Second) // and some share a timestamp
		}
	}
	var titles []string
	var last time.Time
	token := ""
	for page := 0; ; page++ {
		ns, next, err := w.svc.History(ctx, "bob", 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			titles = append(titles, n.Title)
			if !last.IsZero() && n.CreatedAt.After(last) {
				t.Errorf("%s is newer than the one before it", n.Title)
			}
			last = n.CreatedAt
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		token = next
	}
	// n3 and n4 share a timestamp (as do n1 and n2): either order, once each.
	sort.Strings(titles[:2])
	sort.Strings(titles[2:4])
	if fmt.Sprint(titles) != "[n3 n4 n1 n2 n0]" {
		t.Fatalf("titles = %v, want n3/n4, n1/n2, n0", titles)
	}
	if _, _, err := w.svc.History(ctx, "bob", 2, "garbage!"); !errors.Is(err, notify.ErrInvalidArgument) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestDevicesAreTheCallers(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	d := w.device(t, "bob", notify.PlatformFCM, "tok")
	if again := w.device(t, "bob", notify.PlatformFCM, "tok"); again.ID != d.ID {
		t.Fatalf("re-registering made a new device %s", again.ID)
	}
	if err := w.svc.UnregisterDevice(ctx, "ann", d.ID); !errors.Is(err, notify.ErrNotFound) {
		t.Fatalf("ann removed bob's device: %v", err)
	}
	if err := w.svc.UnregisterDevice(ctx, "bob", d.ID); err != nil {
		t.Fatal(err)
	}
	if ds, _ := w.svc.Devices(ctx, "bob"); len(ds) != 0 {
		t.Fatalf("devices left: %+v", ds)
	}
	if _, err := w.svc.RegisterDevice(ctx, "bob", notify.Device{Platform: notify.PlatformWebPush}); !errors.Is(err, notify.ErrInvalidArgument) {
		t.Fatalf("web push without subscription: %v", err)
	}
}

func TestDigest(t *testing.T) {
	w := newWorld(t, worldOptions{reads: fakeReads{"team/carol": 8}})
	ctx := context.Background()
	w.presence.set("bob", false, w.clock.Now().Add(-time.Hour))
	w.presence.set("carol", false, w.clock.Now().Add(-time.Hour))
	w.presence.set("dave", false, w.clock.Now())
	send := func(m notify.MessageSent) {
		t.Helper()
		if err := w.svc.HandleMessageSent(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	send(msg("m1", "dm", notify.ChatPrivate, "ann", "lunch at 1?"))
	m2 := msg("m2", "team", notify.ChatGroup, "ann", "@bob @carol @dave <b>review</b> please")
	m2.Seq = 8 // carol has read up to 8 by digest time
	send(m2)

	// Too early: nothing is older than the delay.
	if n, err := w.svc.RunDigests(ctx); err != nil || n != 0 {
		t.Fatalf("early digest = %d, %v", n, err)
	}
	w.clock.Advance(16 * time.Minute)
	w.presence.set("dave", false, w.clock.Now().Add(-5*time.Minute)) // dave left 5 minutes ago: not yet
	n, err := w.svc.RunDigests(ctx)
	if err != nil || n != 1 {
		t.Fatalf("digest = %d, %v; want 1 (bob)", n, err)
	}
	jobs := w.queue.take()
	if len(jobs) != 1 || jobs[0].Email == nil || jobs[0].UserID != "bob" || jobs[0].Kind != notify.KindDigest {
		t.Fatalf("jobs = %+v", jobs)
	}
	e := jobs[0].Email
	if e.To != "bob@example.com" || e.Subject != "You have 2 unread messages on Parley" {
		t.Errorf("email to %q subject %q", e.To, e.Subject)
	}
	for _, want := range []string{"Ann sent you a direct message", "lunch at 1?", "Ann mentioned you in #team", "https://parley.test/channels/dm"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text body lacks %q:\n%s", want, e.Text)
		}
	}
	if !strings.Contains(e.HTML, "&lt;b&gt;review&lt;/b&gt;") || !strings.Contains(e.HTML, "<strong>Ann</strong> mentioned you in #team") {
		t.Errorf("HTML body does not escape or lacks the mention:\n%s", e.HTML)
	}
	if len(e.ListUnsubscribe) != 1 || !strings.HasPrefix(e.ListUnsubscribe[0], "https://parley.test/v1/notifications:unsubscribe?token=") || !e.OneClick {
		t.Errorf("List-Unsubscribe = %v one-click %v", e.ListUnsubscribe, e.OneClick)
	}
	// carol read the mention meanwhile: her item is dropped, no email.
	if items, _ := w.store.DigestItems(ctx, "carol", 10); len(items) != 0 {
		t.Errorf("carol's read item is still pending: %+v", items)
	}
	if items, _ := w.store.DigestItems(ctx, "bob", 10); len(items) != 0 {
		t.Errorf("bob's digested items are still pending: %+v", items)
	}

	// A new direct message 16 minutes later: it is old enough, but bob had
	// a digest less than the window (1h) ago. dave, away long enough now,
	// gets his.
	send(msg("m3", "dm", notify.ChatPrivate, "ann", "are you there?"))
	w.clock.Advance(16 * time.Minute)
	if n, err := w.svc.RunDigests(ctx); err != nil || n != 1 {
		t.Fatalf("second pass = %d, %v; want 1 (dave)", n, err)
	}
	if jobs := w.queue.take(); len(jobs) != 1 || jobs[0].UserID != "dave" || jobs[0].Email.Subject != "You have 1 unread message on Parley" {
		t.Fatalf("second pass jobs = %+v", jobs)
	}
	w.clock.Advance(45 * time.Minute) // an hour after bob's first digest
	if n, err := w.svc.RunDigests(ctx); err != nil || n != 1 {
		t.Fatalf("next window = %d, %v; want bob's second digest", n, err)
	}
	if jobs := w.queue.take(); len(jobs) != 1 || jobs[0].UserID != "bob" || !strings.Contains(jobs[0].Email.Text, "are you there?") {
		t.Fatalf("next window jobs = %+v", jobs)
	}

	// Connected or unsubscribed users get nothing and their items go.
	send(msg("m4", "dm", notify.ChatPrivate, "ann", "ping"))
	w.presence.set("bob", true, w.clock.Now())
	w.clock.Advance(2 * time.Hour)
	if n, err := w.svc.RunDigests(ctx); n != 0 || err != nil {
		t.Fatalf("connected user: %d digests, %v", n, err)
	}
	if items, _ := w.store.DigestItems(ctx, "bob", 10); len(items) != 0 {
		t.Errorf("connected user's items kept: %+v", items)
	}
}

func TestUnsubscribeToken(t *testing.T) {
	w := newWorld(t, worldOptions{})
	ctx := context.Background()
	tok := w.svc.UnsubscribeToken("bob")
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"forged signature", tok[:len(tok)-2] + "AA", false},
		{"another user", w.svc.UnsubscribeToken("ann")[:4] + tok[4:], false},
		{"garbage", "nope", false},
		{"valid", tok, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, err := w.svc.Unsubscribe(ctx, tt.token)
			if tt.ok != (err == nil) || (!tt.ok && !errors.Is(err, notify.ErrInvalidToken)) {
				t.Fatalf("Unsubscribe = %q, %v", uid, err)
			}
		})
	}
	p, err := w.svc.Preferences(ctx, "bob")
	if err != nil || p.EmailDigest || !p.Direct {
		t.Fatalf("bob's preferences after unsubscribing = %+v, %v", p, err)
	}
	if p, _ := w.svc.Preferences(ctx, "ann"); !p.EmailDigest {
		t.Fatal("ann was unsubscribed by a forged token")
	}
}
