package notify_test

import (
	"context"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/store"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// The peers and providers are small in-test implementations of the domain's
// interfaces; the store is the real MongoDB adapter on a fresh database.

type fakeQueue struct {
	mu   sync.Mutex
	jobs []notify.Job
	keys map[string]bool
}

func (q *fakeQueue) Enqueue(_ context.Context, jobs ...notify.Job) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.keys == nil {
		q.keys = map[string]bool{}
	}
	for _, j := range jobs {
		if q.keys[j.Key()] { // like the Nats-Msg-Id duplicate window
			continue
		}
		q.keys[j.Key()] = true
		q.jobs = append(q.jobs, j)
	}
	return nil
}

// take returns and forgets the queued jobs.
func (q *fakeQueue) take() []notify.Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.jobs
	q.jobs = nil
	return out
}

// fakeMembers lists members by channel; reads holds read positions by
// "<channel>/<user>".
type fakeMembers struct {
	ids   map[string][]string
	reads map[string]int64
}

func (f fakeMembers) ListMembers(_ context.Context, channelID string) ([]notify.Member, error) {
	var out []notify.Member
	for _, id := range f.ids[channelID] {
		out = append(out, notify.Member{UserID: id, LastReadSeq: f.reads[channelID+"/"+id]})
	}
	return out, nil
}

type fakePresence struct {
	mu        sync.Mutex
	connected map[string]bool
	lastSeen  map[string]time.Time
}

func (p *fakePresence) Connected(_ context.Context, ids []string) (map[string]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		if p.connected[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (p *fakePresence) Presence(_ context.Context, id string) (notify.Presence, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return notify.Presence{Connected: p.connected[id], LastSeen: p.lastSeen[id]}, nil
}

func (p *fakePresence) set(id string, connected bool, lastSeen time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected[id] = connected
	p.lastSeen[id] = lastSeen
}

type fakeUsers struct {
	users  map[string]notify.User
	emails map[string]string
}

func (u fakeUsers) Users(_ context.Context, ids []string) (map[string]notify.User, error) {
	out := map[string]notify.User{}
	for _, id := range ids {
		if usr, ok := u.users[id]; ok {
			out[id] = usr
		}
	}
	return out, nil
}

func (u fakeUsers) Email(_ context.Context, id string) (string, error) {
	if e, ok := u.emails[id]; ok {
		return e, nil
	}
	return "", notify.ErrNoEmail
}

type fakeReads map[string]int64 // channel/user -> last read seq

func (r fakeReads) LastReadSeq(_ context.Context, channelID, userID string) (int64, error) {
	return r[channelID+"/"+userID], nil
}

// fakePush records pushes and answers with scripted errors per device.
type fakePush struct {
	mu     sync.Mutex
	sent   []notify.PushMessage
	errs   map[string][]error
	always map[string]error
}

func (p *fakePush) Send(_ context.Context, m notify.PushMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m)
	if err := p.always[m.Device.ID]; err != nil {
		return err
	}
	if q := p.errs[m.Device.ID]; len(q) > 0 {
		p.errs[m.Device.ID] = q[1:]
		return q[0]
	}
	return nil
}

func (p *fakePush) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

type fakeEmail struct {
	mu   sync.Mutex
	sent []notify.EmailMessage
}

func (e *fakeEmail) SendEmail(_ context.Context, m notify.EmailMessage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = append(e.sent, m)
	return nil
}

// world is a service with its fakes.
type world struct {
	svc      *notify.Service
	members  fakeMembers
	store    *store.Store
	queue    *fakeQueue
	presence *fakePresence
	fcm      *fakePush
	web      *fakePush
	email    *fakeEmail
	clock    *testenv.Clock
}

var (
	ann   = notify.User{ID: "ann", Username: "ann", DisplayName: "Ann"}
	bob   = notify.User{ID: "bob", Username: "bob", DisplayName: "Bob"}
	carol = notify.User{ID: "carol", Username: "carol"}
	dave  = notify.User{ID: "dave", Username: "dave", DisplayName: "Dave"}
)

type worldOptions struct {
	noWebPush bool
	reads     fakeReads
}

func newWorld(t testing.TB, opts worldOptions) *world {
	t.Helper()
	db := testenv.New(t).Mongo(t)
	st := store.New(db)
	if err := st.EnsureIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := &world{
		store: st, queue: &fakeQueue{},
		presence: &fakePresence{connected: map[string]bool{}, lastSeen: map[string]time.Time{}},
		fcm:      &fakePush{errs: map[string][]error{}, always: map[string]error{}},
		web:      &fakePush{errs: map[string][]error{}, always: map[string]error{}},
		email:    &fakeEmail{},
		clock:    testenv.NewClock(time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)),
	}
	providers := notify.Providers{FCM: w.fcm, WebPush: w.web, Email: w.email}
	if opts.noWebPush {
		providers.WebPush = nil
	}
	w.members = fakeMembers{ids: map[string][]string{
		"dm":    {"ann", "bob"},
		"team":  {"ann", "bob", "carol", "dave"},
		"lobby": {"ann", "bob", "carol", "dave"},
	}, reads: map[string]int64{}}
	cfg := notify.Config{
		Store: st, Queue: w.queue, Presence: w.presence, Members: w.members,
		Users: fakeUsers{
			users:  map[string]notify.User{"ann": ann, "bob": bob, "carol": carol, "dave": dave},
			emails: map[string]string{"ann": "ann@example.com", "bob": "bob@example.com", "carol": "carol@example.com", "dave": "dave@example.com"},
		},
		Providers:         providers,
		BaseURL:           "https://parley.test",
		UnsubscribeSecret: []byte("0123456789abcdef0123456789abcdef"),
		DigestDelay:       15 * time.Minute,
		DigestWindow:      time.Hour,
		Clock:             w.clock.Now,
	}
	if opts.reads != nil {
		cfg.Reads = opts.reads
	}
	svc, err := notify.NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc
	return w
}

func (w *world) device(t testing.TB, user string, p notify.Platform, token string) notify.Device {
	t.Helper()
	d := notify.Device{Platform: p, FCMToken: token}
	if p == notify.PlatformWebPush {
		d = notify.Device{Platform: p, WebPush: notify.WebPushSubscription{Endpoint: "https://push.test/" + token, P256dh: "k", Auth: "a"}}
	}
	out, err := w.svc.RegisterDevice(context.Background(), user, d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// history returns a user's notifications by channel.
func (w *world) history(t *testing.T, user string) map[notify.Channel]notify.Notification {
	t.Helper()
	ns, _, err := w.svc.History(context.Background(), user, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[notify.Channel]notify.Notification{}
	for _, n := range ns {
		if _, dup := out[n.Channel]; dup {
			t.Fatalf("two %s notifications for %s", n.Channel, user)
		}
		out[n.Channel] = n
	}
	return out
}

// deliverAll runs the queued jobs through Deliver, as the workers would.
func (w *world) deliverAll(t *testing.T) map[string]error {
	t.Helper()
	out := map[string]error{}
	for _, j := range w.queue.take() {
		out[j.Key()] = w.svc.Deliver(context.Background(), j, notify.Attempt{Number: 1})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
