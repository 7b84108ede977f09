package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of Config.
const (
	DefaultDigestDelay     = 15 * time.Minute
	DefaultDigestBatch     = 200
	DefaultHistoryPageSize = 20
	MaxHistoryPageSize     = 100
	// maxDigestItems bounds one digest email.
	maxDigestItems = 50
	// maxPushBody bounds the body of a push notification about a message:
	// the full text is one tap away.
	maxPushBody = 500
	// maxHistoryBody bounds the email body kept in the history.
	maxHistoryBody = 2000
)

// Providers are the configured delivery providers; a nil one means the
// channel is not configured, and its notifications are recorded as dry
// runs.
type Providers struct {
	FCM     PushSender
	WebPush PushSender
	Email   EmailSender
}

// Config assembles a Service.
type Config struct {
	Store    Store
	Queue    JobQueue
	Members  MemberLister
	Presence PresenceChecker
	Users    UserDirectory
	// Reads, if set, lets the digest leave out messages read meanwhile.
	Reads ReadTracker
	// Channels, if set, names channels in titles ("Bob in #general") when
	// the event does not.
	Channels  ChannelDirectory
	Providers Providers
	// VAPIDPublicKey is handed to browsers (GetWebPushConfig).
	VAPIDPublicKey string

	// BaseURL is the web app's URL, for links in emails (default
	// "http://localhost:8080").
	BaseURL string
	// UnsubscribeURL is the one-click unsubscribe endpoint; a signed token
	// is appended as ?token=. Empty: BaseURL + "/v1/notifications:unsubscribe".
	UnsubscribeURL string
	// UnsubscribeMailto, if set, is added to List-Unsubscribe (mailto:).
	UnsubscribeMailto string
	// UnsubscribeSecret signs unsubscribe tokens. Required for digests.
	UnsubscribeSecret []byte

	// DigestDelay: a user offline this long with unread direct messages or
	// mentions this old gets a digest (default 15m).
	DigestDelay time.Duration
	// DigestWindow: at most one digest per user per window (default
	// DigestDelay).
	DigestWindow time.Duration
	// DigestBatch bounds the users handled per digest pass (default 200).
	DigestBatch int

	Clock  Clock
	Logger *slog.Logger
}

// Service is the notification service's business logic.
type Service struct {
	cfg   Config
	log   *slog.Logger
	now   Clock
	tmpl  digestTemplates
	zones zoneCache
}

// NewService checks cfg and returns the service.
func NewService(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: no store", ErrInvalidConfig)
	case cfg.Queue == nil:
		return nil, fmt.Errorf("%w: no job queue", ErrInvalidConfig)
	case cfg.Members == nil || cfg.Presence == nil || cfg.Users == nil:
		return nil, fmt.Errorf("%w: member lister, presence checker and user directory are required", ErrInvalidConfig)
	case len(cfg.UnsubscribeSecret) < 16:
		return nil, fmt.Errorf("%w: unsubscribe secret shorter than 16 bytes", ErrInvalidConfig)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://localhost:8080"
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.UnsubscribeURL == "" {
		cfg.UnsubscribeURL = cfg.BaseURL + "/v1/notifications:unsubscribe"
	}
	if cfg.DigestDelay <= 0 {
		cfg.DigestDelay = DefaultDigestDelay
	}
	if cfg.DigestWindow <= 0 {
		cfg.DigestWindow = cfg.DigestDelay
	}
	if cfg.DigestBatch <= 0 {
		cfg.DigestBatch = DefaultDigestBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tmpl, err := parseDigestTemplates()
	if err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, log: cfg.Logger, now: cfg.Clock, tmpl: tmpl}, nil
}

// clock returns the current time truncated to milliseconds, the precision
// MongoDB stores, so cursors built from stored times compare exactly.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// WebPushPublicKey is the VAPID public key browsers subscribe with; empty
// when Web Push is not configured.
func (s *Service) WebPushPublicKey() string { return s.cfg.VAPIDPublicKey }

// Configured reports whether a provider serves the channel.
func (s *Service) Configured(ch Channel) bool {
	switch ch {
	case ChannelPush:
		return s.cfg.Providers.FCM != nil
	case ChannelWebPush:
		return s.cfg.Providers.WebPush != nil
	case ChannelEmail:
		return s.cfg.Providers.Email != nil
	}
	return false
}

// PushRequest is SendPushNotification.
type PushRequest struct {
	UserID   string
	Title    string
	Body     string
	Data     map[string]string
	Priority Priority
	// Key makes the request idempotent: the same key and user send once.
	Key string
}

// SendPush queues a manual push to every device of a user: one
// notification per channel used. It returns none if the user has no
// device.
func (s *Service) SendPush(ctx context.Context, req PushRequest) ([]Notification, error) {
	if req.Priority == "" {
		req.Priority = PriorityNormal
	}
	key := req.Key
	if key == "" {
		key = randomHex(16)
	}
	devs, err := s.cfg.Store.DevicesOf(ctx, []string{req.UserID})
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", req.UserID, err)
	}
	var ns []Notification
	for _, g := range byChannel(devs[req.UserID]) {
		ns = append(ns, Notification{
			ID:       deriveID("manual", key, req.UserID, string(g.channel)),
			UserID:   req.UserID,
			Channel:  g.channel,
			Kind:     KindManual,
			Title:    req.Title,
			Body:     req.Body,
			Data:     req.Data,
			Priority: req.Priority,
			Status:   StatusQueued,
			Targets:  g.targets,
		})
	}
	if len(ns) == 0 {
		return nil, nil
	}
	return s.dispatchAll(ctx, ns, nil, s.clock())
}

// EmailRequest is SendEmail: to a user (their account address) or to a
// bare address.
type EmailRequest struct {
	UserID  string
	To      string
	Subject string
	Text    string
	HTML    string
	Key     string
}

// SendEmail queues a manual email.
func (s *Service) SendEmail(ctx context.Context, req EmailRequest) (Notification, error) {
	to := req.To
	if req.UserID != "" {
		addr, err := s.cfg.Users.Email(ctx, req.UserID)
		if err != nil {
			return Notification{}, fmt.Errorf("email of %s: %w", req.UserID, err)
		}
		to = addr
	}
	if to == "" {
		return Notification{}, fmt.Errorf("%w: no recipient", ErrInvalidArgument)
	}
	key := req.Key
	if key == "" {
		key = randomHex(16)
	}
	body := req.Text
	if body == "" {
		body = "(HTML only)"
	}
	n := Notification{
		ID:       deriveID("email", key, req.UserID, strings.ToLower(to)),
		UserID:   req.UserID,
		Channel:  ChannelEmail,
		Kind:     KindManual,
		Title:    req.Subject,
		Body:     truncateRunes(body, maxHistoryBody),
		Priority: PriorityNormal,
		Status:   StatusQueued,
		Targets:  []string{EmailTarget},
	}
	return s.dispatch(ctx, n, &EmailContent{To: to, Subject: req.Subject, Text: req.Text, HTML: req.HTML}, s.clock())
}

// dispatch records one notification; see dispatchAll.
func (s *Service) dispatch(ctx context.Context, n Notification, email *EmailContent, now time.Time) (Notification, error) {
	ns, err := s.dispatchAll(ctx, []Notification{n}, email, now)
	if err != nil {
		return Notification{}, err
	}
	return ns[0], nil
}

// dispatchAll records the notifications in one write (or finds the records
// a previous attempt made) and queues, in one batch, a job per target of
// those still queued. Retrying it is harmless: record ids and job keys are
// deterministic, and targets already sent get no job.
func (s *Service) dispatchAll(ctx context.Context, ns []Notification, email *EmailContent, now time.Time) ([]Notification, error) {
	for i := range ns {
		if ns[i].Status == StatusQueued && !s.Configured(ns[i].Channel) {
			ns[i].Status, ns[i].FailureReason = StatusDryRun, ReasonNoProvider
		}
		ns[i].CreatedAt, ns[i].UpdatedAt = now, now
	}
	existing, err := s.cfg.Store.CreateNotifications(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	if len(existing) > 0 {
		stored, err := s.cfg.Store.NotificationsByID(ctx, existing)
		if err != nil {
			return nil, fmt.Errorf("recorded notifications: %w", err)
		}
		for i := range ns {
			if st, ok := stored[ns[i].ID]; ok {
				ns[i] = st
			}
		}
	}
	var jobs []Job
	for _, n := range ns {
		if n.Status != StatusQueued {
			continue
		}
		for _, t := range n.Targets {
			if n.Deliveries[t].Status == StatusSent {
				continue
			}
			jobs = append(jobs, Job{
				NotificationID: n.ID, UserID: n.UserID, Channel: n.Channel, Target: t, Kind: n.Kind,
				Title: n.Title, Body: n.Body, Data: n.Data, Priority: n.Priority, Email: email, CreatedAt: n.CreatedAt,
			})
		}
	}
	if len(jobs) > 0 {
		if err := s.cfg.Queue.Enqueue(ctx, jobs...); err != nil {
			return ns, fmt.Errorf("queue %d jobs: %w", len(jobs), err)
		}
	}
	return ns, nil
}

// History lists a user's notifications, newest first. pageToken is the
// previous page's next token.
func (s *Service) History(ctx context.Context, userID string, pageSize int, pageToken string) ([]Notification, string, error) {
	if pageSize <= 0 {
		pageSize = DefaultHistoryPageSize
	}
	pageSize = min(pageSize, MaxHistoryPageSize)
	var after *Cursor
	if pageToken != "" {
		c, err := decodeCursor(pageToken)
		if err != nil {
			return nil, "", err
		}
		after = &c
	}
	ns, err := s.cfg.Store.ListNotifications(ctx, userID, after, pageSize+1)
	if err != nil {
		return nil, "", fmt.Errorf("history of %s: %w", userID, err)
	}
	next := ""
	if len(ns) > pageSize {
		ns = ns[:pageSize]
		last := ns[len(ns)-1]
		next = encodeCursor(Cursor{CreatedAt: last.CreatedAt, ID: last.ID})
	}
	return ns, next, nil
}

type cursorJSON struct {
	T int64  `json:"t"`
	I string `json:"i"`
}

func encodeCursor(c Cursor) string {
	b, _ := json.Marshal(cursorJSON{T: c.CreatedAt.UnixMilli(), I: c.ID}) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(tok string) (Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	var c cursorJSON
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.I == "" {
		return Cursor{}, fmt.Errorf("%w: bad page token", ErrInvalidArgument)
	}
	return Cursor{CreatedAt: time.UnixMilli(c.T).UTC(), ID: c.I}, nil
}

// Preferences returns a user's preferences, the defaults if never set.
func (s *Service) Preferences(ctx context.Context, userID string) (Preferences, error) {
	m, err := s.cfg.Store.PreferencesOf(ctx, []string{userID})
	if err != nil {
		return Preferences{}, fmt.Errorf("preferences of %s: %w", userID, err)
	}
	if p, ok := m[userID]; ok {
		return p, nil
	}
	return DefaultPreferences(), nil
}

// UpdatePreferences replaces a user's preferences.
func (s *Service) UpdatePreferences(ctx context.Context, userID string, p Preferences) (Preferences, error) {
	if err := p.Validate(); err != nil {
		return Preferences{}, err
	}
	for i := range p.MutedChannels {
		p.MutedChannels[i].Until = p.MutedChannels[i].Until.UTC().Truncate(time.Millisecond)
	}
	if err := s.cfg.Store.SavePreferences(ctx, userID, p, s.clock()); err != nil {
		return Preferences{}, fmt.Errorf("save preferences of %s: %w", userID, err)
	}
	return p, nil
}

// RegisterDevice registers a device of userID; registering the same token
// or endpoint again returns the existing device.
func (s *Service) RegisterDevice(ctx context.Context, userID string, d Device) (Device, error) {
	switch d.Platform {
	case PlatformFCM:
		if d.FCMToken == "" {
			return Device{}, fmt.Errorf("%w: fcm_token is required", ErrInvalidArgument)
		}
		d.WebPush = WebPushSubscription{}
	case PlatformWebPush:
		w := d.WebPush
		if w.Endpoint == "" || w.P256dh == "" || w.Auth == "" {
			return Device{}, fmt.Errorf("%w: web_push endpoint and keys are required", ErrInvalidArgument)
		}
		d.FCMToken = ""
	default:
		return Device{}, fmt.Errorf("%w: platform %q", ErrInvalidArgument, d.Platform)
	}
	now := s.clock()
	d.ID, d.UserID, d.CreatedAt, d.UpdatedAt = "d"+randomHex(12), userID, now, now
	out, err := s.cfg.Store.RegisterDevice(ctx, d)
	if err != nil {
		return Device{}, fmt.Errorf("register device: %w", err)
	}
	return out, nil
}

// UnregisterDevice removes one of userID's devices.
func (s *Service) UnregisterDevice(ctx context.Context, userID, deviceID string) error {
	if err := s.cfg.Store.DeleteDevice(ctx, userID, deviceID); err != nil {
		return fmt.Errorf("unregister device %s: %w", deviceID, err)
	}
	return nil
}

// Devices lists userID's devices, oldest first.
func (s *Service) Devices(ctx context.Context, userID string) ([]Device, error) {
	m, err := s.cfg.Store.DevicesOf(ctx, []string{userID})
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", userID, err)
	}
	return m[userID], nil
}

// channelGroup is the devices of one delivery channel.
type channelGroup struct {
	channel Channel
	targets []string
}

// byChannel groups devices per delivery channel, in a stable order.
func byChannel(devs []Device) []channelGroup {
	var push, web []string
	for _, d := range devs {
		if d.Platform == PlatformWebPush {
			web = append(web, d.ID)
		} else {
			push = append(push, d.ID)
		}
	}
	var out []channelGroup
	if len(push) > 0 {
		sort.Strings(push)
		out = append(out, channelGroup{ChannelPush, push})
	}
	if len(web) > 0 {
		sort.Strings(web)
		out = append(out, channelGroup{ChannelWebPush, web})
	}
	return out
}

// deriveID makes an id from what identifies a notification, so that
// handling the same event or request twice names the same document.
func deriveID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return "n" + hex.EncodeToString(h.Sum(nil))[:31]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b)
}

// truncateRunes cuts s to at most n runes, marking the cut with an ellipsis.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
