package email

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/providertest"
)

func newSender(t *testing.T, srv *providertest.SMTPServer, mutate func(*Config)) *Sender {
	t.Helper()
	cfg := Config{Host: srv.Host, Port: srv.Port, Username: srv.Username, Password: srv.Password,
		From: "Parley <no-reply@parley.test>", TLS: TLSStartTLS, RootCAs: srv.RootCAs}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digest() notify.EmailMessage {
	return notify.EmailMessage{NotificationID: "nabc", EmailContent: notify.EmailContent{
		To: "ann@example.com", Subject: "You have 2 unread messages on Parley",
		Text:            "Bob sent you a direct message:\n  lunch?\n",
		HTML:            "<p><strong>Bob</strong> sent you a direct message</p><p>lunch?</p>",
		ListUnsubscribe: []string{"https://parley.test/v1/notifications:unsubscribe?token=abc.def", "mailto:unsubscribe@parley.test?subject=unsubscribe"},
		OneClick:        true,
	}}
}

func TestSendOverSTARTTLSWithBothBodies(t *testing.T) {
	srv := providertest.NewSMTPServer(t)
	s := newSender(t, srv, nil)
	if err := s.SendEmail(context.Background(), digest()); err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	mails := srv.Mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	m := mails[0]
	if !m.TLS || m.User != "parley" {
		t.Errorf("session TLS=%v user=%q, want STARTTLS and AUTH PLAIN as parley", m.TLS, m.User)
	}
	if m.From != "no-reply@parley.test" || len(m.To) != 1 || m.To[0] != "ann@example.com" {
		t.Errorf("envelope from %q to %v", m.From, m.To)
	}
	msg, err := m.Parsed()
	if err != nil {
		t.Fatal(err)
	}
	headers := map[string]string{
		"From":                  `"Parley" <no-reply@parley.test>`,
		"To":                    "<ann@example.com>",
		"Subject":               "You have 2 unread messages on Parley",
		"Message-Id":            "<nabc@parley.test>",
		"List-Unsubscribe":      "<https://parley.test/v1/notifications:unsubscribe?token=abc.def>, <mailto:unsubscribe@parley.test?subject=unsubscribe>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
	}
	for h, want := range headers {
		if got := msg.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if msg.Header.Get("Date") == "" {
		t.Error("no Date header")
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := io.ReadAll(p) // multipart decodes quoted-printable itself
		if err != nil {
			t.Fatal(err)
		}
		parts[ct] = string(b)
	}
	if !strings.Contains(parts["text/plain"], "Bob sent you a direct message:") || !strings.Contains(parts["text/plain"], "lunch?") {
		t.Errorf("text part = %q", parts["text/plain"])
	}
	if !strings.Contains(parts["text/html"], "<strong>Bob</strong>") {
		t.Errorf("html part = %q", parts["text/html"])
	}
}

func TestSendOverImplicitTLS(t *testing.T) {
	srv := providertest.NewImplicitTLSSMTPServer(t)
	s := newSender(t, srv, func(c *Config) { c.TLS = TLSImplicit })
	if err := s.SendEmail(context.Background(), digest()); err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	if m := srv.Mails(); len(m) != 1 || !m[0].TLS || m[0].User != "parley" {
		t.Fatalf("mails = %+v, want one over TLS, authenticated", m)
	}
}

func TestSendClassifiesSMTPReplies(t *testing.T) {
	srv := providertest.NewSMTPServer(t)
	s := newSender(t, srv, nil)
	tests := []struct {
		name     string
		reply    error
		wantPerm bool
	}{
		{"451 try later", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}, false},
		{"452 mailbox full", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}, false},
		{"550 no such user", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, true},
		{"554 rejected", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Script(tt.reply)
			err := s.SendEmail(context.Background(), digest())
			if err == nil {
				t.Fatal("SendEmail succeeded")
			}
			if notify.IsPermanent(err) != tt.wantPerm {
				t.Errorf("permanent = %v, want %v (%v)", notify.IsPermanent(err), tt.wantPerm, err)
			}
			var re *notify.RetryError
			if errors.As(err, &re) == tt.wantPerm {
				t.Errorf("temporary = %v, want %v", !tt.wantPerm, tt.wantPerm)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	srv := providertest.NewSMTPServer(t)
	tests := []struct {
		name     string
		mutate   func(*Config)
		wantPerm bool
	}{
		{"wrong password is 535, permanent", func(c *Config) { c.Password = "wrong" }, true},
		{"untrusted certificate", func(c *Config) { c.RootCAs = nil }, false},
		{"nobody listening", func(c *Config) { c.Port = 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := newSender(t, srv, tt.mutate).SendEmail(context.Background(), digest())
			if err == nil {
				t.Fatal("SendEmail succeeded")
			}
			if notify.IsPermanent(err) != tt.wantPerm {
				t.Errorf("permanent = %v, want %v (%v)", notify.IsPermanent(err), tt.wantPerm, err)
			}
		})
	}
	if n := len(srv.Mails()); n != 0 {
		t.Errorf("%d mails accepted", n)
	}
}

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
		port int
	}{
		{"starttls default port", Config{Host: "smtp.example.com", From: "a@example.com"}, true, 587},
		{"implicit tls", Config{Host: "smtp.example.com", From: "a@example.com", TLS: TLSImplicit}, true, 465},
		{"clear text on loopback", Config{Host: "127.0.0.1", From: "a@example.com", TLS: TLSNone}, true, 25},
		{"clear text elsewhere", Config{Host: "smtp.example.com", From: "a@example.com", TLS: TLSNone}, false, 0},
		{"unknown mode", Config{Host: "smtp.example.com", From: "a@example.com", TLS: "ssl3"}, false, 0},
		{"bad from", Config{Host: "smtp.example.com", From: "nope"}, false, 0},
		{"no host", Config{From: "a@example.com"}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if err == nil && s.cfg.Port != tt.port {
				t.Errorf("port = %d, want %d", s.cfg.Port, tt.port)
			}
		})
	}
}
