package providertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is one message the SMTP server accepted.
type Mail struct {
	From string
	To   []string
	Data []byte
	// TLS and User tell how the session was secured and authenticated.
	TLS  bool
	User string
}

// Parsed returns the message parsed as RFC 5322.
func (m Mail) Parsed() (*mail.Message, error) { return mail.ReadMessage(bytes.NewReader(m.Data)) }

// SMTPServer is a real SMTP server (go-smtp) requiring STARTTLS before AUTH
// PLAIN, with a self-signed certificate for 127.0.0.1.
type SMTPServer struct {
	Host     string
	Port     int
	Username string
	Password string
	// RootCAs trusts the server's certificate.
	RootCAs *x509.CertPool

	srv *smtp.Server

	mu     sync.Mutex
	mails  []Mail
	script []error // RCPT replies, consumed in order
}

// NewSMTPServer starts a STARTTLS server on 127.0.0.1; it stops when the
// test ends.
func NewSMTPServer(t testing.TB) *SMTPServer { return newSMTPServer(t, false) }

// NewImplicitTLSSMTPServer starts a server that speaks TLS from the first
// byte (port 465 style).
func NewImplicitTLSSMTPServer(t testing.TB) *SMTPServer { return newSMTPServer(t, true) }

func newSMTPServer(t testing.TB, implicitTLS bool) *SMTPServer {
	cert, pool := selfSigned(t)
	s := &SMTPServer{Host: "127.0.0.1", Username: "parley", Password: "s3cret", RootCAs: pool}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	s.srv.Domain = "localhost"
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.srv.AllowInsecureAuth = false // AUTH only after STARTTLS
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.MaxMessageBytes = 4 << 20
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = lis.Addr().(*net.TCPAddr).Port
	if implicitTLS {
		lis = tls.NewListener(lis, s.srv.TLSConfig)
	}
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			t.Errorf("smtp shutdown: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Errorf("smtp serve: %v", err)
		}
	})
	return s
}

// Addr is host:port.
func (s *SMTPServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Script queues SMTP errors answered to RCPT TO, one per message, such as
// &smtp.SMTPError{Code: 451} (temporary) or 550 (permanent).
func (s *SMTPServer) Script(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, errs...)
}

// Mails returns the accepted messages.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

type session struct {
	srv  *SMTPServer
	conn *smtp.Conn
	user string
	m    Mail
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != s.srv.Username || password != s.srv.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	_, tlsOn := s.conn.TLSConnectionState()
	s.m = Mail{From: from, TLS: tlsOn, User: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	var scripted error
	if len(s.srv.script) > 0 {
		scripted, s.srv.script = s.srv.script[0], s.srv.script[1:]
	}
	s.srv.mu.Unlock()
	if scripted != nil {
		return scripted
	}
	s.m.To = append(s.m.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.Data = b
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.m)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset() { s.m = Mail{From: "", TLS: s.m.TLS, User: s.user} }

func (s *session) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// trusting it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "parley test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
