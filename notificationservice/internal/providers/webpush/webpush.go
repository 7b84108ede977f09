// Package webpush sends browser push notifications (RFC 8030) with the
// payload encrypted for the subscription (RFC 8291, aes128gcm) and the
// application server identified by VAPID (RFC 8292), through
// github.com/SherClockHolmes/webpush-go. It also generates and persists the
// VAPID key pair for development.
//
// The push service offers no idempotency key, but the Topic header comes
// close: a message replaces any undelivered message with the same topic.
// The topic is derived from the notification id, so a job redelivered after
// a crash between the push service accepting it and the outcome being
// recorded replaces the first copy while it is still queued at the push
// service; once delivered, the browser shows both unless the service worker
// tags notifications with the notification_id the payload carries (it
// should: showNotification's tag replaces an existing one).
package webpush

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// Defaults.
const (
	DefaultTTL     = 24 * time.Hour
	DefaultTimeout = 10 * time.Second
	// MaxPayload is the largest plaintext webpush-go fits into its single
	// 4096-byte record: 4096 - 16 (tag) - 86 (header) - 1 (delimiter).
	MaxPayload = 3993
	// keyFile holds the generated key pair in KeyDir.
	keyFile = "vapid.json"
)

// Keys is a VAPID key pair: the raw P-256 private scalar and the
// uncompressed public point, both base64url without padding (the form
// browsers take as applicationServerKey).
type Keys struct {
	PublicKey  string `json:"public_key"`
	PrivateKey string `json:"private_key"`
}

// GenerateKeys creates a new VAPID key pair.
func GenerateKeys() (Keys, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return Keys{}, fmt.Errorf("webpush: generate key: %w", err)
	}
	return Keys{
		PublicKey:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		PrivateKey: base64.RawURLEncoding.EncodeToString(k.Bytes()),
	}, nil
}

// PublicKeyOf derives the public key of a private key.
func PublicKeyOf(private string) (string, error) {
	b, err := decodeKey(private)
	if err != nil {
		return "", fmt.Errorf("webpush: private key: %w", err)
	}
	k, err := ecdh.P256().NewPrivateKey(b)
	if err != nil {
		return "", fmt.Errorf("webpush: private key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), nil
}

// LoadOrCreateKeys reads the key pair kept in dir, creating and saving one
// (mode 0600) the first time: development deployments keep their
// subscriptions valid across restarts without configuring keys.
func LoadOrCreateKeys(dir string) (Keys, error) {
	path := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var k Keys
		if err := json.Unmarshal(b, &k); err != nil {
			return Keys{}, fmt.Errorf("webpush: read %s: %w", path, err)
		}
		if pub, err := PublicKeyOf(k.PrivateKey); err != nil || pub != k.PublicKey {
			return Keys{}, fmt.Errorf("webpush: %s holds an invalid key pair", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Keys{}, fmt.Errorf("webpush: read keys: %w", err)
	}
	k, err := GenerateKeys()
	if err != nil {
		return Keys{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("webpush: key dir: %w", err)
	}
	b, _ = json.Marshal(k) // two strings: cannot fail
	// Write then rename, so a crash never leaves half a key file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return Keys{}, fmt.Errorf("webpush: save keys: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Keys{}, fmt.Errorf("webpush: save keys: %w", err)
	}
	return k, nil
}

// Config configures the sender.
type Config struct {
	Keys Keys
	// Subject identifies the sender to push services: an email address
	// ("ops@example.com" or "mailto:ops@example.com") or an https URL.
	Subject string
	// TTL is how long the push service keeps an undelivered message
	// (default 24h).
	TTL time.Duration
	// HTTPClient sends the requests (default: one with Timeout).
	HTTPClient *http.Client
	Timeout    time.Duration
}

// Sender implements notify.PushSender for PlatformWebPush devices.
type Sender struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
}

var _ notify.PushSender = (*Sender)(nil)

// New checks the configuration and returns a sender.
func New(cfg Config) (*Sender, error) {
	pub, err := PublicKeyOf(cfg.Keys.PrivateKey)
	if err != nil {
		return nil, err
	}
	if cfg.Keys.PublicKey == "" {
		cfg.Keys.PublicKey = pub
	} else if pub != strings.TrimRight(cfg.Keys.PublicKey, "=") {
		return nil, fmt.Errorf("%w: webpush: the VAPID public key does not match the private key", notify.ErrInvalidConfig)
	}
	if cfg.Subject == "" {
		return nil, fmt.Errorf("%w: webpush: a VAPID subject (email or https URL) is required", notify.ErrInvalidConfig)
	}
	// webpush-go adds "mailto:" itself to anything that is not an https URL.
	cfg.Subject = strings.TrimPrefix(cfg.Subject, "mailto:")
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Sender{cfg: cfg, client: client, now: time.Now}, nil
}

// PublicKey is the VAPID public key browsers subscribe with.
func (s *Sender) PublicKey() string { return s.cfg.Keys.PublicKey }

// Payload is the JSON the service worker receives in the push event.
type Payload struct {
	NotificationID string            `json:"notification_id"`
	Kind           string            `json:"kind,omitempty"`
	Title          string            `json:"title"`
	Body           string            `json:"body,omitempty"`
	Data           map[string]string `json:"data,omitempty"`
	Priority       string            `json:"priority,omitempty"`
}

// Send implements notify.PushSender.
func (s *Sender) Send(ctx context.Context, m notify.PushMessage) error {
	body, err := payload(m)
	if err != nil {
		return notify.Permanent(err)
	}
	urgency := webpushgo.UrgencyNormal
	if m.Priority == notify.PriorityHigh {
		urgency = webpushgo.UrgencyHigh
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := webpushgo.SendNotificationWithContext(ctx, body,
		&webpushgo.Subscription{Endpoint: m.Device.WebPush.Endpoint, Keys: webpushgo.Keys{Auth: m.Device.WebPush.Auth, P256dh: m.Device.WebPush.P256dh}},
		&webpushgo.Options{
			HTTPClient:      s.client,
			Subscriber:      s.cfg.Subject,
			Topic:           Topic(m.NotificationID),
			TTL:             int(s.cfg.TTL / time.Second),
			Urgency:         urgency,
			VAPIDPublicKey:  s.cfg.Keys.PublicKey,
			VAPIDPrivateKey: s.cfg.Keys.PrivateKey,
		})
	if err != nil {
		// The HTTP client reports transport failures (timeouts, refused
		// connections) as *url.Error: try again later. Anything else failed
		// before the request left: a subscription key that is not a P-256
		// point, which no retry fixes.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return notify.Temporary(fmt.Errorf("webpush: %w", err), 0)
		}
		return notify.Permanent(fmt.Errorf("webpush: %w", err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	return s.classify(resp)
}

// classify turns the push service's answer into the notify.PushSender
// contract: 2xx accepted; 404/410 the subscription is gone; 429/5xx retry
// (Retry-After honoured); anything else permanent.
func (s *Sender) classify(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	desc := fmt.Sprintf("webpush: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: %s", notify.ErrUnregistered, desc)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return notify.Temporary(errors.New(desc), retryAfter(resp.Header.Get("Retry-After"), s.now()))
	default:
		return notify.Permanent(errors.New(desc))
	}
}

// payload encodes the push, shortening the body (then dropping the data)
// until it fits the single record webpush-go sends.
func payload(m notify.PushMessage) ([]byte, error) {
	p := Payload{NotificationID: m.NotificationID, Kind: string(m.Kind), Title: m.Title, Body: m.Body, Data: m.Data, Priority: string(m.Priority)}
	for range 16 {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("webpush: encode payload: %w", err)
		}
		if len(b) <= MaxPayload {
			return b, nil
		}
		switch r := []rune(p.Body); {
		case len(r) > 16:
			p.Body = string(r[:len(r)*2/3]) + "…"
		case p.Data != nil:
			p.Data = nil
		default:
			return nil, fmt.Errorf("webpush: payload of %d bytes exceeds %d", len(b), MaxPayload)
		}
	}
	return nil, fmt.Errorf("webpush: payload does not fit %d bytes", MaxPayload)
}

// Topic is the Topic header for a notification: at most 32 characters of
// the base64url alphabet (RFC 8030 section 5.4), the same for every
// delivery of the notification.
func Topic(notificationID string) string {
	sum := sha256.Sum256([]byte(notificationID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.Atoi(h); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
