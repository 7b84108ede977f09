// Package tlsconfig loads TLS configurations for Parley's servers and
// clients from PEM files: server certificates, optional mutual TLS, and
// client trust roots. Certificates are read once; rotating them means
// restarting the process (Kubernetes does that on Secret changes with a
// rollout).
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Server returns a server configuration presenting certFile/keyFile. With
// clientCAFile set, clients must present a certificate signed by one of
// its CAs (mutual TLS). TLS 1.2 is the minimum; Go negotiates TLS 1.3
// whenever the client supports it.
func Server(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tlsconfig: server: %w", ErrMissingCert)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: server certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if clientCAFile != "" {
		pool, err := loadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client returns a client configuration. caFile ("" = system roots) is
// what the server's certificate must chain to; certFile/keyFile (both or
// neither) is the client certificate for mutual TLS; serverName overrides
// the name checked in the server's certificate ("" = the dialled host).
func Client(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("tlsconfig: client: %w", ErrMissingCert)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tlsconfig: %s: %w", file, ErrNoCertificates)
	}
	return pool, nil
}
