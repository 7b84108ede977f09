// Package fcm sends push notifications through the Firebase Cloud
// Messaging HTTP v1 API (google.golang.org/api/fcm/v1), authenticated with
// a service account, and classifies FCM's answers for the job queue:
// UNREGISTERED deletes the device, 429 and 5xx are retried honouring
// Retry-After, other errors are permanent.
//
// FCM v1 has no idempotency key, so delivery is at least once: a job
// redelivered after a crash between FCM accepting it and the outcome being
// recorded is sent again. The message carries the notification id as the
// Android notification tag and the APNs collapse id, so such a duplicate
// replaces the first notification on the device instead of showing twice.
package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	fcmapi "google.golang.org/api/fcm/v1"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// DefaultTimeout bounds one send.
const DefaultTimeout = 10 * time.Second

// Config configures the sender.
type Config struct {
	// ProjectID is the Firebase project; default: the service account's
	// project_id.
	ProjectID string
	// CredentialsFile is a service-account JSON key file, or
	// CredentialsJSON its content.
	CredentialsFile string
	CredentialsJSON []byte
	// Endpoint replaces https://fcm.googleapis.com/ (an emulator or a test
	// server playing the FCM v1 contract).
	Endpoint string
	// NoAuth sends without credentials; only allowed with an Endpoint.
	NoAuth bool
	// HTTPClient, if set, is used as is (it must add credentials itself).
	HTTPClient *http.Client
	// Timeout bounds one send (default 10s).
	Timeout time.Duration
}

// Sender implements notify.PushSender for PlatformFCM devices.
type Sender struct {
	svc     *fcmapi.Service
	parent  string
	timeout time.Duration
	now     func() time.Time
}

var _ notify.PushSender = (*Sender)(nil)

// New returns a sender. It reads the credentials but makes no call.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if cfg.CredentialsFile != "" && cfg.CredentialsJSON == nil {
		b, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("fcm: read credentials: %w", err)
		}
		cfg.CredentialsJSON = b
	}
	if cfg.ProjectID == "" && cfg.CredentialsJSON != nil {
		var sa struct {
			ProjectID string `json:"project_id"`
		}
		if err := json.Unmarshal(cfg.CredentialsJSON, &sa); err != nil {
			return nil, fmt.Errorf("fcm: parse credentials: %w", err)
		}
		cfg.ProjectID = sa.ProjectID
	}
	if cfg.ProjectID == "" {
		return nil, fmt.Errorf("%w: fcm: no project id", notify.ErrInvalidConfig)
	}
	opts := []option.ClientOption{option.WithScopes(fcmapi.FirebaseMessagingScope)}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimRight(cfg.Endpoint, "/")+"/"))
	}
	switch {
	case cfg.HTTPClient != nil:
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	case cfg.CredentialsJSON != nil:
		// Only a service account is accepted: a credential file of another
		// type (external account, impersonation) is refused unread.
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, cfg.CredentialsJSON))
	case cfg.NoAuth && cfg.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	default:
		return nil, fmt.Errorf("%w: fcm: no credentials (NoAuth is only for a custom endpoint)", notify.ErrInvalidConfig)
	}
	svc, err := fcmapi.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: client: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Sender{svc: svc, parent: "projects/" + cfg.ProjectID, timeout: cfg.Timeout, now: time.Now}, nil
}

// Send implements notify.PushSender.
func (s *Sender) Send(ctx context.Context, m notify.PushMessage) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.svc.Projects.Messages.Send(s.parent, &fcmapi.SendMessageRequest{Message: Message(m)}).Context(ctx).Do()
	if err != nil {
		return s.classify(err)
	}
	return nil
}

// Message builds the FCM v1 message of a push: title and body as a
// notification, the data map plus notification_id and kind, high priority
// for Android (HIGH) and APNs (10) when the push is high priority, and the
// notification id as Android tag and APNs collapse id.
func Message(m notify.PushMessage) *fcmapi.Message {
	data := make(map[string]string, len(m.Data)+2)
	for k, v := range m.Data {
		data[k] = v
	}
	data["notification_id"] = m.NotificationID
	if m.Kind != "" {
		data["kind"] = string(m.Kind)
	}
	androidPrio, apnsPrio := "NORMAL", "5"
	if m.Priority == notify.PriorityHigh {
		androidPrio, apnsPrio = "HIGH", "10"
	}
	return &fcmapi.Message{
		Token:        m.Device.FCMToken,
		Notification: &fcmapi.Notification{Title: m.Title, Body: m.Body},
		Data:         data,
		Android: &fcmapi.AndroidConfig{
			Priority:     androidPrio,
			Notification: &fcmapi.AndroidNotification{Tag: m.NotificationID},
		},
		Apns: &fcmapi.ApnsConfig{Headers: map[string]string{
			"apns-priority":    apnsPrio,
			"apns-collapse-id": m.NotificationID,
		}},
	}
}

// FCM v1 error codes (google.firebase.fcm.v1.FcmError.errorCode).
const (
	codeUnregistered     = "UNREGISTERED"
	codeSenderIDMismatch = "SENDER_ID_MISMATCH"
	codeQuotaExceeded    = "QUOTA_EXCEEDED"
	codeUnavailable      = "UNAVAILABLE"
	codeInternal         = "INTERNAL"
)

// classify turns an FCM failure into the error contract of
// notify.PushSender.
func (s *Sender) classify(err error) error {
	var gerr *googleapi.Error
	if !errors.As(err, &gerr) {
		// No HTTP answer (timeout, connection refused): try again later.
		return notify.Temporary(fmt.Errorf("fcm: %w", err), 0)
	}
	code := fcmErrorCode(gerr)
	desc := fmt.Sprintf("fcm: HTTP %d %s: %s", gerr.Code, code, gerr.Message)
	switch {
	case code == codeUnregistered || code == codeSenderIDMismatch:
		// The token is gone, or belongs to another Firebase project: it will
		// never work for us. A bare 404 without this code (a wrong project
		// id) must not delete every device, so the code decides.
		return fmt.Errorf("%w: %s", notify.ErrUnregistered, desc)
	case gerr.Code == http.StatusTooManyRequests || code == codeQuotaExceeded,
		gerr.Code >= 500 || code == codeUnavailable || code == codeInternal:
		return notify.Temporary(errors.New(desc), retryAfter(gerr.Header.Get("Retry-After"), s.now()))
	default:
		// INVALID_ARGUMENT (400), THIRD_PARTY_AUTH_ERROR (401), 403:
		// retrying the same request cannot succeed.
		return notify.Permanent(errors.New(desc))
	}
}

// fcmErrorCode finds the errorCode of the FcmError detail, if any.
func fcmErrorCode(gerr *googleapi.Error) string {
	for _, d := range gerr.Details {
		m, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if t, _ := m["@type"].(string); strings.HasSuffix(t, "google.firebase.fcm.v1.FcmError") {
			if c, _ := m["errorCode"].(string); c != "" {
				return c
			}
		}
	}
	return ""
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
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
