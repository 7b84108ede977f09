package notificationservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	notificationv1 "github.com/parleyhq/parley/apis/gen/go/parley/notification/v1"
	"github.com/parleyhq/parley/eventbus"
	"github.com/parleyhq/parley/notificationservice"
	"github.com/parleyhq/parley/notificationservice/internal/events"
	"github.com/parleyhq/parley/notificationservice/internal/jobqueue"
	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/providers/webpush"
	"github.com/parleyhq/parley/notificationservice/internal/providertest"
	"github.com/parleyhq/parley/platform/auth"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const serviceToken = "svc-secret"

type fixture struct {
	svc    *notificationservice.Service
	conn   *grpc.ClientConn
	client notificationv1.NotificationServiceClient
	peers  *peers
	fcm    *providertest.FCMServer
	push   *providertest.PushService
	smtp   *providertest.SMTPServer
	pub    *eventbus.Publisher
	jobs   notificationservice.JobsConfig
	keys   webpush.Keys
	env    *testenv.Env
	js     jetstream.JetStream

	mu      sync.Mutex
	results []jobqueue.Result
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := testenv.New(t)
	f := &fixture{env: env}
	f.peers = startPeers(t, serviceToken)
	f.fcm = providertest.NewFCMServer(t, "parley-test")
	f.push = providertest.NewPushService(t)
	f.smtp = providertest.NewSMTPServer(t)
	var err error
	if f.keys, err = webpush.GenerateKeys(); err != nil {
		t.Fatal(err)
	}
	names := eventbus.Names{EventsStream: testenv.Unique("EV"), SubjectPrefix: testenv.Unique("ev"),
		DLQStream: testenv.Unique("EVDLQ"), DLQSubjectPrefix: testenv.Unique("evdlq")}
	f.jobs = notificationservice.JobsConfig{
		Stream: testenv.Unique("NJ"), SubjectPrefix: testenv.Unique("nj"), DLQStream: testenv.Unique("NDLQ"),
		DLQSubjectPrefix: testenv.Unique("ndlq"), DurablePrefix: testenv.Unique("w"),
		MaxDeliver: 3, Backoff: []time.Duration{100 * time.Millisecond},
		OnResult: func(r jobqueue.Result) { f.mu.Lock(); f.results = append(f.results, r); f.mu.Unlock() },
	}
	database := testenv.Unique("notif")
	cfg := notificationservice.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		MongoURI: env.MongoURI, Database: database, NATSURL: env.NATSURL,
		ChatService: f.peers.conn, PresenceService: f.peers.conn, UserService: f.peers.conn,
		ServiceToken: serviceToken,
		// The tests change a member's presence between messages.
		PresenceCacheTTL: -1,
		Verifier: staticVerifier{
			"tok-ann": {UserID: "ann"}, "tok-bob": {UserID: "bob"}, "tok-dave": {UserID: "dave"},
			"tok-erin": {UserID: "erin"}, "tok-gina": {UserID: "gina"},
			"tok-admin": {UserID: "root", Roles: []string{auth.RoleAdmin}},
		},
		Events: names, EventsDurable: testenv.Unique("notif"), Jobs: f.jobs,
		FCMProjectID: "parley-test", FCMEndpoint: f.fcm.URL,
		VAPIDPrivateKey: f.keys.PrivateKey, VAPIDSubject: "mailto:ops@parley.test", WebPushHTTPClient: f.push.Client(),
		SMTPHost: f.smtp.Host, SMTPPort: f.smtp.Port, SMTPUsername: f.smtp.Username, SMTPPassword: f.smtp.Password,
		SMTPFrom: "Parley <no-reply@parley.test>", SMTPRootCAs: f.smtp.RootCAs,
		BaseURL:     "https://parley.test",
		DigestDelay: 300 * time.Millisecond, DigestWindow: time.Hour, DigestInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.svc, err = notificationservice.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()

	nc := env.NATS(t)
	if f.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if f.pub, err = eventbus.NewPublisher(nc, eventbus.PublisherConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	f.conn, err = grpc.NewClient(f.svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	f.client = notificationv1.NewNotificationServiceClient(f.conn)
	mongo := env.MongoClient(t)
	t.Cleanup(func() {
		_ = f.conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return within 30s of cancellation")
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		for _, s := range []string{names.EventsStream, names.DLQStream, f.jobs.Stream, f.jobs.DLQStream} {
			if err := f.js.DeleteStream(cctx, s); err != nil {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
		if err := mongo.Database(database).Drop(cctx); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})

	for _, u := range [][4]string{
		{"ann", "ann", "Ann", "ann@example.com"}, {"bob", "bob", "Bob", "bob@example.com"},
		{"carol", "carol", "Carol", "carol@example.com"}, {"dave", "dave", "Dave", ""},
		{"erin", "erin", "Erin", ""}, {"gina", "gina", "Gina", "gina@example.com"},
	} {
		f.peers.addUser(u[0], u[1], u[2], u[3])
	}
	return f
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func asService(ctx context.Context) context.Context {
	return auth.OutgoingAsService(ctx, "test", serviceToken)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// publishMessage publishes message.sent the way the chat service does.
func (f *fixture) publishMessage(t *testing.T, channelID, channelType, sender, msgID, content string, mentions ...string) {
	t.Helper()
	m := &chatv1.Message{Id: msgID, ChannelId: channelID, Seq: 3, UserId: sender, Content: content, Type: "text"}
	raw, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]any{"channel_id": channelID, "channel_type": channelType, "actor_id": sender,
		"message": json.RawMessage(raw), "mentions": mentions, "ignored_future_field": 1}
	ev, err := eventbus.NewEvent(eventbus.TypeMessageSent, "chatservice", channelID, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Publish(testCtx(t), ev); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) registerFCM(t *testing.T, token, fcmToken string) *notificationv1.Device {
	t.Helper()
	resp, err := f.client.RegisterDevice(as(testCtx(t), token), &notificationv1.RegisterDeviceRequest{Platform: "fcm", FcmToken: fcmToken})
	if err != nil {
		t.Fatalf("RegisterDevice: %v", err)
	}
	return resp.GetDevice()
}

// waitHistory polls a user's history until check accepts it.
func (f *fixture) waitHistory(t *testing.T, token string, check func([]*notificationv1.Notification) error) []*notificationv1.Notification {
	t.Helper()
	var got []*notificationv1.Notification
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := f.client.GetNotificationHistory(as(testCtx(t), token), &notificationv1.GetNotificationHistoryRequest{PageSize: 100})
		if err != nil {
			return err
		}
		got = resp.GetNotifications()
		return check(got)
	})
	return got
}

func byChannel(ns []*notificationv1.Notification, channel string) *notificationv1.Notification {
	for _, n := range ns {
		if n.GetChannel() == channel {
			return n
		}
	}
	return nil
}

func statusIs(channel, want string) func([]*notificationv1.Notification) error {
	return func(ns []*notificationv1.Notification) error {
		n := byChannel(ns, channel)
		if n == nil || n.GetStatus() != want {
			return fmt.Errorf("%s notification: %v, want status %s", channel, n, want)
		}
		return nil
	}
}

func TestService(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	f.peers.setChannel("dm-ann-bob", "", "ann", "bob")
	f.peers.setChannel("team", "team", "ann", "bob", "carol")

	t.Run("the VAPID key is public", func(t *testing.T) {
		resp, err := f.client.GetWebPushConfig(ctx, &notificationv1.GetWebPushConfigRequest{})
		if err != nil || resp.GetVapidPublicKey() != f.keys.PublicKey {
			t.Fatalf("GetWebPushConfig = %v, %v; want %s", resp, err, f.keys.PublicKey)
		}
	})

	sub := providertest.NewSubscriber(t)
	t.Run("devices", func(t *testing.T) {
		d := f.registerFCM(t, "tok-bob", "bob-phone")
		if again := f.registerFCM(t, "tok-bob", "bob-phone"); again.GetId() != d.GetId() {
			t.Errorf("re-registration made device %s, want %s", again.GetId(), d.GetId())
		}
		_, err := f.client.RegisterDevice(as(ctx, "tok-bob"), &notificationv1.RegisterDeviceRequest{Platform: "webpush",
			WebPush: &notificationv1.WebPushSubscription{Endpoint: f.push.Endpoint("bob"), P256Dh: sub.P256dh(), Auth: sub.Auth()}})
		if err != nil {
			t.Fatal(err)
		}
		list, err := f.client.ListDevices(as(ctx, "tok-bob"), &notificationv1.ListDevicesRequest{})
		if err != nil || len(list.GetDevices()) != 2 {
			t.Fatalf("ListDevices = %v, %v", list, err)
		}
		_, err = f.client.RegisterDevice(as(ctx, "tok-bob"), &notificationv1.RegisterDeviceRequest{Platform: "webpush"})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("web push without subscription: %v", err)
		}
	})

	t.Run("a direct message reaches offline bob on his phone and browser", func(t *testing.T) {
		f.publishMessage(t, "dm-ann-bob", "private", "ann", "m1", "lunch at 1?")
		got := f.waitHistory(t, "tok-bob", func(ns []*notificationv1.Notification) error {
			if err := statusIs("push", "sent")(ns); err != nil {
				return err
			}
			return statusIs("webpush", "sent")(ns)
		})
		if n := byChannel(got, "push"); n.GetKind() != "direct" || n.GetTitle() != "Ann" || n.GetBody() != "lunch at 1?" || n.GetData()["channel_id"] != "dm-ann-bob" {
			t.Errorf("push notification = %v", n)
		}
		reqs := f.fcm.RequestsFor("bob-phone")
		if len(reqs) != 1 || reqs[0].Field("android.priority") != "HIGH" || reqs[0].Field("notification.title") != "Ann" {
			t.Fatalf("FCM requests = %+v", reqs)
		}
		pushes := f.push.Requests(f.push.Endpoint("bob"))
		if len(pushes) != 1 || !pushes[0].VAPIDOK {
			t.Fatalf("web pushes = %+v", pushes)
		}
		plain, err := sub.Decrypt(pushes[0].Body)
		if err != nil {
			t.Fatal(err)
		}
		var p webpush.Payload
		if err := json.Unmarshal(plain, &p); err != nil || p.Title != "Ann" || p.Body != "lunch at 1?" || p.Kind != "direct" {
			t.Fatalf("decrypted payload %s: %v", plain, err)
		}
	})

	t.Run("a job redelivered after a crash is not sent twice", func(t *testing.T) {
		// The worker sent bob's push and recorded it; had it died before
		// acknowledging, JetStream would deliver the job again. Play that
		// redelivery by publishing the same job under a new message id.
		hist, err := f.client.GetNotificationHistory(as(ctx, "tok-bob"), &notificationv1.GetNotificationHistoryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		n := byChannel(hist.GetNotifications(), "push")
		devs, err := f.client.ListDevices(as(ctx, "tok-bob"), &notificationv1.ListDevicesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var phone string
		for _, d := range devs.GetDevices() {
			if d.GetPlatform() == "fcm" {
				phone = d.GetId()
			}
		}
		job := notify.Job{NotificationID: n.GetId(), UserID: "bob", Channel: notify.ChannelPush, Target: phone, Title: n.GetTitle(), CreatedAt: time.Now()}
		data, _ := json.Marshal(job)
		env, _ := json.Marshal(eventbus.Event{ID: job.Key(), Type: "push", Source: "test", Data: data, Version: 1})
		before := len(f.fcm.RequestsFor("bob-phone"))
		if _, err := f.js.Publish(ctx, f.jobs.SubjectPrefix+".push", env, jetstream.WithMsgID("redelivery-"+job.Key())); err != nil {
			t.Fatal(err)
		}
		testenv.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
			f.mu.Lock()
			defer f.mu.Unlock()
			acked := 0
			for _, r := range f.results {
				if r.JobKey == job.Key() && r.Outcome == jobqueue.OutcomeAcked {
					acked++
				}
			}
			if acked < 2 {
				return fmt.Errorf("job acked %d times, want 2 (the delivery and the redelivery)", acked)
			}
			return nil
		})
		if after := len(f.fcm.RequestsFor("bob-phone")); after != before {
			t.Errorf("the redelivery sent %d more pushes", after-before)
		}
	})

	t.Run("connected members are left alone", func(t *testing.T) {
		f.registerFCM(t, "tok-ann", "ann-phone")
		f.peers.setChannel("trio", "trio", "carol", "bob", "ann")
		f.peers.setPresence("bob", true, time.Now())
		before := len(f.fcm.RequestsFor("bob-phone"))
		f.publishMessage(t, "trio", "group", "carol", "m2", "@ann standup?")
		got := f.waitHistory(t, "tok-ann", statusIs("push", "sent"))
		if n := byChannel(got, "push"); n.GetKind() != "mention" || n.GetTitle() != "Carol mentioned you in #trio" {
			t.Errorf("ann's notification = %v", n)
		}
		// bob comes before ann in the member list, so had he been notified,
		// his record would exist by the time ann's push went out.
		if n := len(f.fcm.RequestsFor("bob-phone")); n != before {
			t.Errorf("connected bob got %d new pushes", n-before)
		}
		hist, err := f.client.GetNotificationHistory(as(ctx, "tok-bob"), &notificationv1.GetNotificationHistoryRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range hist.GetNotifications() {
			if n.GetData()["channel_id"] == "trio" {
				t.Errorf("connected bob has a notification: %v", n)
			}
		}
		f.peers.setPresence("bob", false, time.Now())
	})

	t.Run("an unregistered token deletes the device", func(t *testing.T) {
		f.fcm.Script("dave-phone", providertest.FCMReply{Status: 404, ErrorCode: "UNREGISTERED"})
		f.registerFCM(t, "tok-dave", "dave-phone")
		resp, err := f.client.SendPushNotification(as(ctx, "tok-admin"), &notificationv1.SendPushNotificationRequest{UserId: "dave", Title: "maintenance tonight"})
		if err != nil || len(resp.GetNotifications()) != 1 || resp.GetNotifications()[0].GetStatus() != "queued" {
			t.Fatalf("SendPushNotification = %v, %v", resp, err)
		}
		got := f.waitHistory(t, "tok-dave", statusIs("push", "failed"))
		if r := byChannel(got, "push").GetFailureReason(); r != "unregistered" {
			t.Errorf("reason = %q", r)
		}
		list, err := f.client.ListDevices(as(ctx, "tok-dave"), &notificationv1.ListDevicesRequest{})
		if err != nil || len(list.GetDevices()) != 0 {
			t.Errorf("devices after UNREGISTERED = %v, %v", list, err)
		}
	})

	t.Run("429 is retried after Retry-After, then sent", func(t *testing.T) {
		f.fcm.Script("erin-phone", providertest.FCMReply{Status: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: "1"})
		f.registerFCM(t, "tok-erin", "erin-phone")
		if _, err := f.client.SendPushNotification(asService(ctx), &notificationv1.SendPushNotificationRequest{UserId: "erin", Title: "hi", NotificationId: "erin-1"}); err != nil {
			t.Fatal(err)
		}
		f.waitHistory(t, "tok-erin", statusIs("push", "sent"))
		reqs := f.fcm.RequestsFor("erin-phone")
		if len(reqs) != 2 {
			t.Fatalf("%d FCM requests, want 2", len(reqs))
		}
		// The same idempotency key again: the same notification, not resent.
		resp, err := f.client.SendPushNotification(asService(ctx), &notificationv1.SendPushNotificationRequest{UserId: "erin", Title: "hi", NotificationId: "erin-1"})
		if err != nil || resp.GetNotifications()[0].GetStatus() != "sent" {
			t.Fatalf("repeat = %v, %v", resp, err)
		}
	})

	t.Run("a provider that keeps failing ends in the DLQ", func(t *testing.T) {
		fail := providertest.FCMReply{Status: 503, ErrorCode: "UNAVAILABLE"}
		f.fcm.Script("frank-phone", fail, fail, fail)
		f.registerFCM(t, "tok-erin", "frank-phone") // erin's second phone
		resp, err := f.client.SendPushNotification(asService(ctx), &notificationv1.SendPushNotificationRequest{UserId: "erin", Title: "doomed"})
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetNotifications()[0].GetId()
		// erin-phone got it, so the notification is sent; frank-phone's job
		// is dead-lettered.
		f.waitHistory(t, "tok-erin", func(ns []*notificationv1.Notification) error {
			for _, n := range ns {
				if n.GetId() == id && n.GetStatus() == "sent" {
					return nil
				}
			}
			return errNotYet
		})
		q, err := eventbus.NewDeadLetterQueue(f.env.NATS(t), eventbus.Names{EventsStream: f.jobs.Stream, SubjectPrefix: f.jobs.SubjectPrefix,
			DLQStream: f.jobs.DLQStream, DLQSubjectPrefix: f.jobs.DLQSubjectPrefix})
		if err != nil {
			t.Fatal(err)
		}
		var dls []eventbus.DeadLetter
		testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
			page, err := q.List(ctx, eventbus.DeadLetterQuery{Consumer: f.jobs.DurablePrefix + "-push"})
			if err != nil {
				return err
			}
			if dls = page.DeadLetters; len(dls) != 1 {
				return fmt.Errorf("%d dead letters", len(dls))
			}
			return nil
		})
		if dls[0].Deliveries != 3 || !strings.HasPrefix(dls[0].Event.ID, id+".") {
			t.Errorf("dead letter = %+v", dls[0])
		}
		if n := len(f.fcm.RequestsFor("frank-phone")); n != 3 {
			t.Errorf("%d attempts on the failing phone, want 3", n)
		}
	})

	t.Run("a rejected message fails at once", func(t *testing.T) {
		f.fcm.Script("bad-phone", providertest.FCMReply{Status: 400, ErrorCode: "INVALID_ARGUMENT"})
		f.registerFCM(t, "tok-gina", "bad-phone")
		if _, err := f.client.SendPushNotification(asService(ctx), &notificationv1.SendPushNotificationRequest{UserId: "gina", Title: "x"}); err != nil {
			t.Fatal(err)
		}
		got := f.waitHistory(t, "tok-gina", statusIs("push", "failed"))
		if r := byChannel(got, "push").GetFailureReason(); !strings.Contains(r, "INVALID_ARGUMENT") {
			t.Errorf("reason = %q", r)
		}
		if n := len(f.fcm.RequestsFor("bad-phone")); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
		list, _ := f.client.ListDevices(as(ctx, "tok-gina"), &notificationv1.ListDevicesRequest{})
		for _, d := range list.GetDevices() {
			if _, err := f.client.UnregisterDevice(as(ctx, "tok-gina"), &notificationv1.UnregisterDeviceRequest{DeviceId: d.GetId()}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("sending is for admins and services", func(t *testing.T) {
		req := &notificationv1.SendPushNotificationRequest{UserId: "bob", Title: "x"}
		if _, err := f.client.SendPushNotification(as(ctx, "tok-ann"), req); status.Code(err) != codes.PermissionDenied {
			t.Errorf("as a user: %v", err)
		}
		if _, err := f.client.SendPushNotification(ctx, req); status.Code(err) != codes.Unauthenticated {
			t.Errorf("anonymous: %v", err)
		}
		if _, err := f.client.SendEmail(as(ctx, "tok-ann"), &notificationv1.SendEmailRequest{Recipient: &notificationv1.SendEmailRequest_To{To: "x@example.com"}, Subject: "s", TextBody: "t"}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("email as a user: %v", err)
		}
		if _, err := f.client.GetNotificationHistory(asService(ctx), &notificationv1.GetNotificationHistoryRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Errorf("history as a service: %v", err)
		}
	})

	t.Run("SendEmail to a user", func(t *testing.T) {
		resp, err := f.client.SendEmail(as(ctx, "tok-admin"), &notificationv1.SendEmailRequest{
			Recipient: &notificationv1.SendEmailRequest_UserId{UserId: "ann"}, Subject: "Welcome to Parley",
			TextBody: "Hello Ann", HtmlBody: "<p>Hello <b>Ann</b></p>", NotificationId: "welcome-ann"})
		if err != nil {
			t.Fatal(err)
		}
		id := resp.GetNotification().GetId()
		mail := f.waitMail(t, "ann@example.com", "Welcome to Parley")
		m, err := mail.Parsed()
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Subject") != "Welcome to Parley" || m.Header.Get("Message-Id") != "<"+id+"@parley.test>" {
			t.Errorf("headers = %v", m.Header)
		}
		f.waitHistory(t, "tok-ann", func(ns []*notificationv1.Notification) error {
			for _, n := range ns {
				if n.GetId() == id && n.GetStatus() == "sent" {
					return nil
				}
			}
			return errNotYet
		})
		if _, err := f.client.SendEmail(as(ctx, "tok-admin"), &notificationv1.SendEmailRequest{
			Recipient: &notificationv1.SendEmailRequest_UserId{UserId: "dave"}, Subject: "s", TextBody: "t"}); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("user without an address: %v", err)
		}
	})

	t.Run("preferences", func(t *testing.T) {
		prefs := &notificationv1.NotificationPreferences{Direct: true, Group: false, Public: true, Mentions: true, EmailDigest: true,
			MutedChannels: []*notificationv1.MutedChannel{{ChannelId: "team"}},
			QuietHours:    &notificationv1.QuietHours{Enabled: true, Start: "22:30", End: "06:45", TimeZone: "Europe/Berlin"}}
		if _, err := f.client.UpdateNotificationPreferences(as(ctx, "tok-carol-not-known"), &notificationv1.UpdateNotificationPreferencesRequest{Preferences: prefs}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("unknown token: %v", err)
		}
		if _, err := f.client.UpdateNotificationPreferences(as(ctx, "tok-erin"), &notificationv1.UpdateNotificationPreferencesRequest{Preferences: prefs}); err != nil {
			t.Fatal(err)
		}
		got, err := f.client.GetNotificationPreferences(as(ctx, "tok-erin"), &notificationv1.GetNotificationPreferencesRequest{})
		if err != nil || !protoEqualJSON(got.GetPreferences(), prefs) {
			t.Fatalf("GetNotificationPreferences = %v, %v; want %v", got, err, prefs)
		}
		def, err := f.client.GetNotificationPreferences(as(ctx, "tok-dave"), &notificationv1.GetNotificationPreferencesRequest{})
		if err != nil || !def.GetPreferences().GetDirect() || def.GetPreferences().GetPublic() || !def.GetPreferences().GetEmailDigest() {
			t.Fatalf("defaults = %v, %v", def, err)
		}
		bad := &notificationv1.NotificationPreferences{QuietHours: &notificationv1.QuietHours{Enabled: true, Start: "22:00", End: "07:00", TimeZone: "Mars/Olympus"}}
		if _, err := f.client.UpdateNotificationPreferences(as(ctx, "tok-erin"), &notificationv1.UpdateNotificationPreferencesRequest{Preferences: bad}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("unknown zone: %v", err)
		}
	})

	t.Run("a friend request notifies its target", func(t *testing.T) {
		f.peers.setPresence("bob", true, time.Now()) // friend requests ignore presence
		ev, err := eventbus.NewEvent(events.TypeFriendRequested, "userservice", "bob",
			map[string]string{"user_id": "ann", "friend_id": "bob", "state": "incoming"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		f.waitHistory(t, "tok-bob", func(ns []*notificationv1.Notification) error {
			for _, n := range ns {
				if n.GetKind() == "friend_request" && n.GetChannel() == "push" && n.GetStatus() == "sent" && n.GetTitle() == "Ann sent you a friend request" {
					return nil
				}
			}
			return errNotYet
		})
		f.peers.setPresence("bob", false, time.Now())
	})

	t.Run("email digest, then one-click unsubscribe", func(t *testing.T) {
		f.peers.setChannel("dm-ann-gina", "", "ann", "gina")
		f.peers.setPresence("gina", false, time.Now().Add(-time.Hour))
		f.publishMessage(t, "dm-ann-gina", "private", "ann", "m9", "did you see the <release> notes?")
		mail := f.waitMail(t, "gina@example.com", "You have 1 unread message on Parley")
		m, err := mail.Parsed()
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get("Subject"); got != "You have 1 unread message on Parley" {
			t.Errorf("subject = %q", got)
		}
		if m.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post = %q", m.Header.Get("List-Unsubscribe-Post"))
		}
		lu := strings.Trim(m.Header.Get("List-Unsubscribe"), "<>")
		u, err := url.Parse(lu)
		if err != nil || u.Host != "parley.test" || u.Path != notificationservice.UnsubscribePath {
			t.Fatalf("List-Unsubscribe = %q", lu)
		}
		body, _ := io.ReadAll(m.Body)
		if !bytes.Contains(body, []byte("did you see the")) {
			t.Errorf("digest body lacks the message:\n%s", body)
		}

		// The mail client's one-click POST, sent to this service's HTTP server.
		target := "http://" + f.svc.HTTPAddr() + u.Path + "?" + u.RawQuery
		get, err := http.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		_ = get.Body.Close()
		if p, _ := f.client.GetNotificationPreferences(as(ctx, "tok-gina"), &notificationv1.GetNotificationPreferencesRequest{}); !p.GetPreferences().GetEmailDigest() {
			t.Fatal("a GET (a link scanner) unsubscribed the user")
		}
		resp, err := http.Post(target, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("unsubscribe POST = %s", resp.Status)
		}
		p, err := f.client.GetNotificationPreferences(as(ctx, "tok-gina"), &notificationv1.GetNotificationPreferencesRequest{})
		if err != nil || p.GetPreferences().GetEmailDigest() {
			t.Fatalf("after unsubscribing: %v, %v", p, err)
		}
		bad, err := http.Post("http://"+f.svc.HTTPAddr()+u.Path+"?token=forged.AAAA", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = bad.Body.Close()
		if bad.StatusCode != http.StatusBadRequest {
			t.Errorf("forged token: %s", bad.Status)
		}
	})

	t.Run("REST through grpc-gateway", func(t *testing.T) {
		mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}}))
		if err := notificationv1.RegisterNotificationServiceHandlerClient(ctx, mux, f.client); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(mux)
		defer srv.Close()
		do := func(method, path, token, body string) (int, map[string]any) {
			t.Helper()
			req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			return resp.StatusCode, out
		}
		code, out := do("GET", "/v1/users/me/notifications?page_size=1", "tok-bob", "")
		ns, _ := out["notifications"].([]any)
		if code != 200 || len(ns) != 1 || out["next_page_token"] == "" {
			t.Fatalf("GET notifications = %d %v", code, out)
		}
		first := ns[0].(map[string]any)
		for _, k := range []string{"id", "user_id", "channel", "kind", "status", "failure_reason", "created_at"} {
			if _, ok := first[k]; !ok {
				t.Errorf("notification JSON lacks %q: %v", k, first)
			}
		}
		if code, _ := do("GET", "/v1/users/me/notifications", "", ""); code != http.StatusUnauthorized {
			t.Errorf("anonymous = %d", code)
		}
		code, out = do("PUT", "/v1/users/me/notification-preferences", "tok-dave",
			`{"preferences":{"direct":true,"group":true,"public":false,"mentions":false,"email_digest":false,"quiet_hours":{"enabled":true,"start":"23:00","end":"07:00","time_zone":"America/Chicago"}}}`)
		if code != 200 || out["preferences"].(map[string]any)["email_digest"] != false {
			t.Fatalf("PUT preferences = %d %v", code, out)
		}
		if code, _ := do("PUT", "/v1/users/me/notification-preferences", "tok-dave", `{"preferences":{"quiet_hours":{"enabled":true,"start":"7"}}}`); code != http.StatusBadRequest {
			t.Errorf("invalid preferences = %d", code)
		}
		code, out = do("GET", "/v1/notifications/webpush-config", "", "")
		if code != 200 || out["vapid_public_key"] != f.keys.PublicKey {
			t.Errorf("webpush config = %d %v", code, out)
		}
		code, out = do("POST", "/v1/users/me/devices", "tok-dave", `{"platform":"fcm","fcm_token":"dave-tablet"}`)
		if code != 200 || out["device"].(map[string]any)["platform"] != "fcm" {
			t.Errorf("POST devices = %d %v", code, out)
		}
	})

	t.Run("health", func(t *testing.T) {
		resp, err := http.Get("http://" + f.svc.HTTPAddr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/readyz = %s", resp.Status)
		}
	})

	// Every peer call came as a service (the fakes refuse anything else)
	// and the member listing was paged.
	f.peers.mu.Lock()
	defer f.peers.mu.Unlock()
	if f.peers.calls["ListMembers"] < 3 || f.peers.calls["GetOnlineUsers"] == 0 || f.peers.calls["GetProfile"] == 0 {
		t.Errorf("peer calls = %v", f.peers.calls)
	}
}

// waitMail waits for a mail to an address with a subject.
func (f *fixture) waitMail(t *testing.T, to, subject string) providertest.Mail {
	t.Helper()
	var got providertest.Mail
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		for _, m := range f.smtp.Mails() {
			if len(m.To) != 1 || m.To[0] != to {
				continue
			}
			if pm, err := m.Parsed(); err == nil && pm.Header.Get("Subject") == subject {
				got = m
				return nil
			}
		}
		return fmt.Errorf("no mail to %s about %q yet", to, subject)
	})
	return got
}

func protoEqualJSON(a, b *notificationv1.NotificationPreferences) bool {
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	var x, y any
	_ = json.Unmarshal(ja, &x)
	_ = json.Unmarshal(jb, &y)
	return fmt.Sprint(x) == fmt.Sprint(y)
}

func TestNewNeedsPeers(t *testing.T) {
	_, err := notificationservice.New(context.Background(), notificationservice.Config{})
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Fatalf("New without peers = %v", err)
	}
}
