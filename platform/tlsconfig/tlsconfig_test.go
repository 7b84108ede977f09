package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	healthgrpc "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/parleyhq/parley/platform/rpc"
	"github.com/parleyhq/parley/platform/tlsconfig"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pki is a throwaway CA with a server and a client certificate, written
// as PEM files.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	otherCAFile                                          string
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return cert, key, file
}

func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{"parley.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func newPKI(t *testing.T) pki {
	dir := t.TempDir()
	ca, caKey, caFile := newCA(t, dir, "ca")
	_, _, otherCAFile := newCA(t, dir, "other-ca")
	p := pki{caFile: caFile, otherCAFile: otherCAFile}
	p.serverCert, p.serverKey = issue(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = issue(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	return p
}

// serve starts a gRPC server with the health service over cfg and returns
// its address.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	s, err := rpc.NewServer(rpc.ServerConfig{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(s, healthgrpc.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rpc.Serve(ctx, s, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

func check(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := rpc.Dial(addr, rpc.ClientConfig{TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status = %v, want SERVING", resp.GetStatus())
	}
	return err
}

func TestGRPCOverTLS(t *testing.T) {
	p := newPKI(t)
	tlsServer, err := tlsconfig.Server(p.serverCert, p.serverKey, "")
	if err != nil {
		t.Fatal(err)
	}
	mtlsServer, err := tlsconfig.Server(p.serverCert, p.serverKey, p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if mtlsServer.ClientAuth != tls.RequireAndVerifyClientCert || mtlsServer.MinVersion != tls.VersionTLS12 {
		t.Fatalf("mTLS server config: ClientAuth %v, MinVersion %x", mtlsServer.ClientAuth, mtlsServer.MinVersion)
	}
	tlsAddr, mtlsAddr := serve(t, tlsServer), serve(t, mtlsServer)

	tests := []struct {
		name                      string
		addr                      string
		ca, cert, key, serverName string
		wantOK                    bool
	}{
		{name: "tls", addr: tlsAddr, ca: p.caFile, wantOK: true},
		{name: "tls with server name", addr: tlsAddr, ca: p.caFile, serverName: "parley.test", wantOK: true},
		{name: "tls wrong server name", addr: tlsAddr, ca: p.caFile, serverName: "evil.test"},
		{name: "tls untrusted server", addr: tlsAddr, ca: p.otherCAFile},
		{name: "mtls with client cert", addr: mtlsAddr, ca: p.caFile, cert: p.clientCert, key: p.clientKey, wantOK: true},
		{name: "mtls without client cert", addr: mtlsAddr, ca: p.caFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tlsconfig.Client(tt.ca, tt.cert, tt.key, tt.serverName)
			if err != nil {
				t.Fatal(err)
			}
			err = check(t, tt.addr, cfg)
			if tt.wantOK && err != nil {
				t.Fatalf("Check: %v", err)
			}
			if !tt.wantOK && status.Code(err) != codes.Unavailable {
				t.Fatalf("Check = %v, want the connection refused (Unavailable)", err)
			}
		})
	}
	t.Run("negotiates TLS 1.3", func(t *testing.T) {
		cfg, err := tlsconfig.Client(p.caFile, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		cfg.NextProtos = []string{"h2"}
		conn, err := tls.Dial("tcp", tlsAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Fatalf("version = %x, want TLS 1.3", v)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	p := newPKI(t)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		run     func() error
		wantErr error // nil = any error
	}{
		{"server without cert", func() error { _, err := tlsconfig.Server("", "", ""); return err }, tlsconfig.ErrMissingCert},
		{"server missing file", func() error { _, err := tlsconfig.Server("/nope.pem", p.serverKey, ""); return err }, os.ErrNotExist},
		{"server bad client CA", func() error { _, err := tlsconfig.Server(p.serverCert, p.serverKey, notPEM); return err }, tlsconfig.ErrNoCertificates},
		{"client cert without key", func() error { _, err := tlsconfig.Client(p.caFile, p.clientCert, "", ""); return err }, tlsconfig.ErrMissingCert},
		{"client missing CA", func() error { _, err := tlsconfig.Client("/nope.pem", "", "", ""); return err }, os.ErrNotExist},
		{"client key mismatch", func() error { _, err := tlsconfig.Client(p.caFile, p.clientCert, p.serverKey, ""); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("err = nil, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
