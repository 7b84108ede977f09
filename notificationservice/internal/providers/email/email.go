// Package email sends notification emails over SMTP with TLS
// (github.com/wneessen/go-mail): text and HTML as multipart/alternative,
// List-Unsubscribe headers when the message has them, and a Message-ID
// derived from the notification id. SMTP replies are classified for the job
// queue: 4xx (and connection failures) are retried, 5xx are permanent.
//
// SMTP has no idempotency key. The deterministic Message-ID is the closest
// thing: a job redelivered after a crash between the server accepting the
// message and the outcome being recorded sends the same Message-ID again,
// which many receiving systems and mail clients collapse into one message
// (Gmail does, for instance); others show it twice. Delivery is at least
// once.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
)

// TLS modes.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses to
	// send if the server does not offer it (port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit connects with TLS from the start (port 465).
	TLSImplicit = "tls"
	// TLSNone sends in clear text; only to a loopback server (a local relay
	// or a development catcher).
	TLSNone = "none"
)

// DefaultTimeout bounds connecting and one send.
const DefaultTimeout = 30 * time.Second

// Config configures the sender.
type Config struct {
	Host string
	// Port defaults to 587 (starttls), 465 (tls) or 25 (none).
	Port     int
	Username string
	Password string
	// From is the sender, "Parley <no-reply@example.com>".
	From string
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
	// CAFile adds a CA to trust (a private relay); RootCAs replaces the
	// system pool (tests).
	CAFile  string
	RootCAs *x509.CertPool
	// InsecureSkipVerify disables certificate checks; development only.
	InsecureSkipVerify bool
	// HelloName is sent in EHLO (default: the client library's).
	HelloName string
	Timeout   time.Duration
}

// Sender implements notify.EmailSender.
type Sender struct {
	cfg    Config
	from   *mail.Address
	domain string
	tls    *tls.Config
}

var _ notify.EmailSender = (*Sender)(nil)

// New checks the configuration and returns a sender; it does not connect.
func New(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, fmt.Errorf("%w: smtp: no host", notify.ErrInvalidConfig)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("%w: smtp: from address %q: %w", notify.ErrInvalidConfig, cfg.From, err)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[cfg.TLS]
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopback(cfg.Host) {
			return nil, fmt.Errorf("%w: smtp: TLS %q is only allowed for a loopback host, not %s", notify.ErrInvalidConfig, cfg.TLS, cfg.Host)
		}
	default:
		return nil, fmt.Errorf("%w: smtp: TLS mode %q (want starttls, tls or none)", notify.ErrInvalidConfig, cfg.TLS)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	// InsecureSkipVerify is an explicit opt-in for development relays.
	tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("smtp: read CA file: %w", err)
		}
		if tc.RootCAs == nil {
			if tc.RootCAs, err = x509.SystemCertPool(); err != nil {
				tc.RootCAs = x509.NewCertPool()
			}
		}
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: smtp: no certificate in %s", notify.ErrInvalidConfig, cfg.CAFile)
		}
	}
	_, domain, _ := strings.Cut(from.Address, "@")
	return &Sender{cfg: cfg, from: from, domain: domain, tls: tc}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MessageID is the Message-ID of a notification's email (without the angle
// brackets): the same for every delivery of the notification.
func (s *Sender) MessageID(notificationID string) string {
	return notificationID + "@" + s.domain
}

// SendEmail implements notify.EmailSender.
func (s *Sender) SendEmail(ctx context.Context, m notify.EmailMessage) error {
	msg, err := s.build(m)
	if err != nil {
		return notify.Permanent(err)
	}
	dialer := &trackingDialer{}
	if s.cfg.TLS == TLSImplicit {
		dialer.tls = s.tls
	}
	client, err := s.client(dialer)
	if err != nil {
		return notify.Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		// go-mail leaves the connection open when EHLO, STARTTLS or AUTH
		// fail during the dial; close it rather than leak it.
		dialer.close()
		return classify(err)
	}
	return nil
}

// trackingDialer dials for go-mail and remembers the connection, so that it
// can be closed whatever go-mail did with it.
type trackingDialer struct {
	tls *tls.Config // implicit TLS; nil for a plain (then STARTTLS) connection

	mu   sync.Mutex
	conn net.Conn
}

func (d *trackingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := &net.Dialer{}
	var c net.Conn
	var err error
	if d.tls != nil {
		c, err = (&tls.Dialer{NetDialer: nd, Config: d.tls}).DialContext(ctx, network, addr)
	} else {
		c, err = nd.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c, nil
}

func (d *trackingDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil {
		_ = d.conn.Close() // may already be closed by go-mail
	}
}

func (s *Sender) build(m notify.EmailMessage) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("smtp: recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(s.MessageID(m.NotificationID))
	msg.SetDate()
	if len(m.ListUnsubscribe) > 0 {
		uris := make([]string, len(m.ListUnsubscribe))
		for i, u := range m.ListUnsubscribe {
			uris[i] = "<" + u + ">"
		}
		// Preformatted: the URIs must reach the client byte for byte.
		msg.SetGenHeaderPreformatted(gomail.HeaderListUnsubscribe, strings.Join(uris, ", "))
		if m.OneClick {
			msg.SetGenHeader(gomail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
		}
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

func (s *Sender) client(d *trackingDialer) (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithDialContextFunc(d.dial),
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(s.tls),
	}
	switch s.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if s.cfg.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(s.cfg.Username), gomail.WithPassword(s.cfg.Password))
	}
	if s.cfg.HelloName != "" {
		opts = append(opts, gomail.WithHELO(s.cfg.HelloName))
	}
	// A client per send: go-mail clients hold one connection, and jobs are
	// sent concurrently.
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp: client: %w", err)
	}
	return c, nil
}

// classify maps an SMTP failure to the notify error contract: a 4xx reply
// is temporary, a 5xx reply permanent, and a failure without a reply
// (connection refused, timeout, TLS handshake) temporary.
func classify(err error) error {
	code := 0
	var se *gomail.SendError
	var te *textproto.Error
	switch {
	case errors.As(err, &se):
		code = se.ErrorCode()
		if code == 0 && se.IsTemp() {
			code = 400
		}
	case errors.As(err, &te):
		code = te.Code
	}
	wrapped := fmt.Errorf("smtp: %w", err)
	if code >= 500 {
		return notify.Permanent(wrapped)
	}
	return notify.Temporary(wrapped, 0)
}
