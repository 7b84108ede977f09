package tlsconfig

import "errors"

var (
	// ErrMissingCert is returned when a certificate file is given without
	// its key, or the other way round, or a server has neither.
	ErrMissingCert = errors.New("tlsconfig: certificate and key files must be given together")

	// ErrNoCertificates is returned for a CA file without PEM certificates.
	ErrNoCertificates = errors.New("tlsconfig: no PEM certificates found")
)
