package fcm

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/providertest"
)

func newSender(t *testing.T, srv *providertest.FCMServer) *Sender {
	t.Helper()
	s, err := New(context.Background(), Config{ProjectID: srv.Project, Endpoint: srv.URL, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func push(token string, prio notify.Priority) notify.PushMessage {
	return notify.PushMessage{
		NotificationID: "n123", Kind: notify.KindDirect, Title: "Ann", Body: "are you there?",
		Data: map[string]string{"channel_id": "c1"}, Priority: prio,
		Device: notify.Device{ID: "d1", Platform: notify.PlatformFCM, FCMToken: token},
	}
}

func TestSendRequestContract(t *testing.T) {
	srv := providertest.NewFCMServer(t, "parley-test")
	s := newSender(t, srv)
	tests := []struct {
		prio        notify.Priority
		android     string
		apns        string
		wantTokenID string
	}{
		{notify.PriorityHigh, "HIGH", "10", "tok-high"},
		{notify.PriorityNormal, "NORMAL", "5", "tok-normal"},
	}
	for _, tt := range tests {
		t.Run(string(tt.prio), func(t *testing.T) {
			if err := s.Send(context.Background(), push(tt.wantTokenID, tt.prio)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := srv.RequestsFor(tt.wantTokenID)
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			checks := map[string]string{
				"notification.title":            "Ann",
				"notification.body":             "are you there?",
				"data.channel_id":               "c1",
				"data.notification_id":          "n123",
				"data.kind":                     "direct",
				"android.priority":              tt.android,
				"android.notification.tag":      "n123",
				"apns.headers.apns-priority":    tt.apns,
				"apns.headers.apns-collapse-id": "n123",
			}
			for path, want := range checks {
				if got := r.Field(path); got != want {
					t.Errorf("%s = %q, want %q", path, got, want)
				}
			}
			if r.Project != "parley-test" {
				t.Errorf("project = %q", r.Project)
			}
		})
	}
}

func TestSendErrorClassification(t *testing.T) {
	srv := providertest.NewFCMServer(t, "parley-test")
	s := newSender(t, srv)
	future := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name           string
		reply          providertest.FCMReply
		wantUnreg      bool
		wantPerm       bool
		wantTemp       bool
		minAfter, upTo time.Duration
	}{
		{name: "accepted", reply: providertest.FCMReply{Status: 200}},
		{name: "404 UNREGISTERED", reply: providertest.FCMReply{Status: 404, ErrorCode: "UNREGISTERED"}, wantUnreg: true},
		{name: "403 SENDER_ID_MISMATCH", reply: providertest.FCMReply{Status: 403, ErrorCode: "SENDER_ID_MISMATCH"}, wantUnreg: true},
		{name: "404 without FcmError is not an unregistration", reply: providertest.FCMReply{Status: 404}, wantPerm: true},
		{name: "400 INVALID_ARGUMENT", reply: providertest.FCMReply{Status: 400, ErrorCode: "INVALID_ARGUMENT"}, wantPerm: true},
		{name: "401 THIRD_PARTY_AUTH_ERROR", reply: providertest.FCMReply{Status: 401, ErrorCode: "THIRD_PARTY_AUTH_ERROR"}, wantPerm: true},
		{name: "429 with Retry-After seconds", reply: providertest.FCMReply{Status: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: "7"},
			wantTemp: true, minAfter: 7 * time.Second, upTo: 7 * time.Second},
		{name: "503 with Retry-After date", reply: providertest.FCMReply{Status: 503, ErrorCode: "UNAVAILABLE", RetryAfter: future},
			wantTemp: true, minAfter: 80 * time.Second, upTo: 91 * time.Second},
		{name: "500 without Retry-After", reply: providertest.FCMReply{Status: 500, ErrorCode: "INTERNAL"}, wantTemp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := "tok-" + tt.name
			srv.Script(token, tt.reply)
			err := s.Send(context.Background(), push(token, notify.PriorityNormal))
			if got := errors.Is(err, notify.ErrUnregistered); got != tt.wantUnreg {
				t.Errorf("unregistered = %v, want %v (err %v)", got, tt.wantUnreg, err)
			}
			if got := notify.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("permanent = %v, want %v (err %v)", got, tt.wantPerm, err)
			}
			var re *notify.RetryError
			if got := errors.As(err, &re); got != tt.wantTemp {
				t.Errorf("temporary = %v, want %v (err %v)", got, tt.wantTemp, err)
			}
			if tt.wantTemp {
				if after := notify.RetryAfterOf(err); after < tt.minAfter || (tt.upTo > 0 && after > tt.upTo) {
					t.Errorf("retry after %s, want between %s and %s", after, tt.minAfter, tt.upTo)
				}
			}
			if !tt.wantUnreg && !tt.wantPerm && !tt.wantTemp && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
		})
	}
}

func TestSendUnreachableIsTemporary(t *testing.T) {
	srv := providertest.NewFCMServer(t, "p")
	url := srv.URL
	srv.Close()
	s, err := New(context.Background(), Config{ProjectID: "p", Endpoint: url, NoAuth: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), push("t", notify.PriorityNormal))
	var re *notify.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
}

func TestNewConfig(t *testing.T) {
	sa := []byte(`{"type":"service_account","project_id":"from-file","private_key_id":"k","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n","client_email":"x@from-file.iam.gserviceaccount.com","token_uri":"https://oauth2.googleapis.com/token"}`)
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
		project string
	}{
		{name: "no project", cfg: Config{Endpoint: "http://127.0.0.1:1", NoAuth: true}, wantErr: true},
		{name: "no credentials", cfg: Config{ProjectID: "p"}, wantErr: true},
		{name: "no auth needs an endpoint", cfg: Config{ProjectID: "p", NoAuth: true}, wantErr: true},
		{name: "project from the service account", cfg: Config{CredentialsJSON: sa}, project: "projects/from-file"},
		{name: "explicit project wins", cfg: Config{ProjectID: "mine", CredentialsJSON: sa}, project: "projects/mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(context.Background(), tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && s.parent != tt.project {
				t.Errorf("parent = %q, want %q", s.parent, tt.project)
			}
		})
	}
}
