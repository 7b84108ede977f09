package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/platform/auth"
)

func TestKeyIDIsRFC7638Thumbprint(t *testing.T) {
	// RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key is
	// kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k; kids are its first 16
	// characters.
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := auth.KeyID(ed25519.PublicKey(x)), "kPrK_qmxVWaYVA9w"; got != want {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
}

func TestJWKPublicKey(t *testing.T) {
	_, good := newKey(t)
	tests := []struct {
		name string
		mod  func(*auth.JWK)
		ok   bool
	}{
		{"good", func(*auth.JWK) {}, true},
		{"no use or alg", func(k *auth.JWK) { k.Use, k.Alg = "", "" }, true},
		{"RSA", func(k *auth.JWK) { k.Kty = "RSA" }, false},
		{"X25519", func(k *auth.JWK) { k.Crv = "X25519" }, false},
		{"HS256 alg", func(k *auth.JWK) { k.Alg = "HS256" }, false},
		{"encryption use", func(k *auth.JWK) { k.Use = "enc" }, false},
		{"no kid", func(k *auth.JWK) { k.Kid = "" }, false},
		{"short x", func(k *auth.JWK) { k.X = k.X[:10] }, false},
		{"x not base64url", func(k *auth.JWK) { k.X = "***" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := good
			tt.mod(&k)
			pub, err := k.PublicKey()
			if tt.ok {
				if err != nil || len(pub) != ed25519.PublicKeySize {
					t.Fatalf("PublicKey() = %v, %v", pub, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
		})
	}
}

func TestHTTPKeySource(t *testing.T) {
	_, jwk := newKey(t)
	body, err := json.Marshal(auth.JWKSet{Keys: []auth.JWK{jwk}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr bool
	}{
		{"ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }, false},
		{"server error", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, true},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }, true},
		{"too big", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("a", 2<<20) + `"}`))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			src := &auth.HTTPKeySource{URL: srv.URL + "/.well-known/jwks.json", Client: srv.Client()}
			keys, err := src.FetchKeys(context.Background())
			if tt.wantErr {
				if err == nil {
					t.Fatalf("FetchKeys = %v, want an error", keys)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || keys[0] != jwk {
				t.Fatalf("keys = %+v, want [%+v]", keys, jwk)
			}
		})
	}
}

func TestHTTPKeySourceHasADeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	src := &auth.HTTPKeySource{URL: srv.URL, Client: srv.Client(), Timeout: 50 * time.Millisecond}
	start := time.Now()
	if _, err := src.FetchKeys(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("FetchKeys took %s despite a 50ms timeout", d)
	}
}

type fakeJWKSClient struct {
	resp        *userv1.GetJWKSResponse
	err         error
	hadDeadline bool
}

func (f *fakeJWKSClient) GetJWKS(ctx context.Context, _ *userv1.GetJWKSRequest, _ ...grpc.CallOption) (*userv1.GetJWKSResponse, error) {
	_, f.hadDeadline = ctx.Deadline()
	return f.resp, f.err
}

func TestGRPCKeySource(t *testing.T) {
	priv, jwk := newKey(t)
	c := &fakeJWKSClient{resp: &userv1.GetJWKSResponse{Keys: []*userv1.JSONWebKey{
		{Kty: jwk.Kty, Crv: jwk.Crv, X: jwk.X, Kid: jwk.Kid, Use: jwk.Use, Alg: jwk.Alg},
	}}}
	src := &auth.GRPCKeySource{Client: c}
	v, err := auth.NewVerifier(auth.VerifierConfig{JWKS: src, Clock: newClock(epoch).Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, priv, jwk.Kid, claimsAt(epoch))); err != nil {
		t.Fatalf("Verify through the gRPC key source: %v", err)
	}
	if !c.hadDeadline {
		t.Fatal("GetJWKS was called without a deadline")
	}

	c.err = errors.New("unavailable")
	if _, err := src.FetchKeys(context.Background()); err == nil {
		t.Fatal("FetchKeys hid the client's error")
	}
}
