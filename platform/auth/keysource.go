package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
)

// DefaultFetchTimeout bounds one key-set fetch when the caller's context has
// no earlier deadline.
const DefaultFetchTimeout = 5 * time.Second

// maxJWKSBytes bounds the key-set document read over HTTP: a handful of
// keys is a few hundred bytes, anything near this is not a key set.
const maxJWKSBytes = 1 << 20

// KeySource fetches the current public keys that verify access tokens.
type KeySource interface {
	FetchKeys(ctx context.Context) ([]JWK, error)
}

// StaticKeys is a fixed key set. The user service verifies its own tokens
// with it (it holds the keys, no network needed); tests use it too.
type StaticKeys []JWK

// FetchKeys returns the keys.
func (s StaticKeys) FetchKeys(context.Context) ([]JWK, error) { return s, nil }

var (
	_ KeySource = StaticKeys(nil)
	_ KeySource = (*HTTPKeySource)(nil)
	_ KeySource = (*GRPCKeySource)(nil)
)

// HTTPKeySource fetches a JSON Web Key Set document over HTTP, typically
// https://<gateway>/.well-known/jwks.json.
type HTTPKeySource struct {
	// URL of the JWKS document. Required.
	URL string
	// Client makes the request; nil means http.DefaultClient.
	Client *http.Client
	// Timeout bounds each fetch (default DefaultFetchTimeout).
	Timeout time.Duration
}

// FetchKeys downloads and decodes the key set.
func (s *HTTPKeySource) FetchKeys(ctx context.Context) ([]JWK, error) {
	ctx, cancel := withFetchTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS request %s: %w", s.URL, err)
	}
	req.Header.Set("Accept", "application/json")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: fetch JWKS %s: %w", s.URL, err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only body; nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: fetch JWKS %s: HTTP %s", s.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("auth: read JWKS %s: %w", s.URL, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("auth: JWKS %s larger than %d bytes", s.URL, maxJWKSBytes)
	}
	var set JWKSet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("auth: decode JWKS %s: %w", s.URL, err)
	}
	return set.Keys, nil
}

// JWKSClient is the part of userv1.UserServiceClient the gRPC key source
// needs.
type JWKSClient interface {
	GetJWKS(ctx context.Context, in *userv1.GetJWKSRequest, opts ...grpc.CallOption) (*userv1.GetJWKSResponse, error)
}

// GRPCKeySource fetches the key set from the user service over gRPC; the
// services and the all-in-one use it (GetJWKS is a public method, so no
// credentials are needed).
type GRPCKeySource struct {
	// Client is a user service client. Required.
	Client JWKSClient
	// Timeout bounds each fetch (default DefaultFetchTimeout).
	Timeout time.Duration
}

// FetchKeys calls UserService.GetJWKS.
func (s *GRPCKeySource) FetchKeys(ctx context.Context) ([]JWK, error) {
	ctx, cancel := withFetchTimeout(ctx, s.Timeout)
	defer cancel()
	resp, err := s.Client.GetJWKS(ctx, &userv1.GetJWKSRequest{})
	if err != nil {
		return nil, fmt.Errorf("auth: GetJWKS: %w", err)
	}
	keys := make([]JWK, 0, len(resp.GetKeys()))
	for _, k := range resp.GetKeys() {
		keys = append(keys, JWK{Kty: k.GetKty(), Crv: k.GetCrv(), X: k.GetX(), Kid: k.GetKid(), Use: k.GetUse(), Alg: k.GetAlg()})
	}
	return keys, nil
}

func withFetchTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = DefaultFetchTimeout
	}
	return context.WithTimeout(ctx, d)
}
