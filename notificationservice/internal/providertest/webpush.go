package providertest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/hkdf"
)

// Subscriber is a browser's side of a Web Push subscription: the P-256 key
// pair and the 16-byte authentication secret.
type Subscriber struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// NewSubscriber creates the keys a browser would.
func NewSubscriber(t testing.TB) *Subscriber {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return &Subscriber{key: k, auth: auth}
}

// P256dh is keys.p256dh of the subscription (base64url).
func (s *Subscriber) P256dh() string {
	return base64.RawURLEncoding.EncodeToString(s.key.PublicKey().Bytes())
}

// Auth is keys.auth of the subscription (base64url).
func (s *Subscriber) Auth() string { return base64.RawURLEncoding.EncodeToString(s.auth) }

// Decrypt opens an aes128gcm push message body (RFC 8188) encrypted for
// this subscriber (RFC 8291) and returns the plaintext without padding.
func (s *Subscriber) Decrypt(body []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the aes128gcm header")
	}
	salt, rs, idLen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idLen {
		return nil, errors.New("truncated key id")
	}
	asPublic, ciphertext := body[21:21+idLen], body[21+idLen:]
	if uint32(len(ciphertext)) > rs {
		return nil, fmt.Errorf("%d bytes of ciphertext in a record of %d: more than one record", len(ciphertext), rs)
	}
	peer, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, fmt.Errorf("sender key: %w", err)
	}
	shared, err := s.key.ECDH(peer)
	if err != nil {
		return nil, err
	}
	// RFC 8291 section 3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0x00 ua_public as_public)
	info := "WebPush: info\x00" + string(s.key.PublicKey().Bytes()) + string(asPublic)
	ikm, err := hkdfKey(shared, s.auth, info, 32)
	if err != nil {
		return nil, err
	}
	// RFC 8188 section 2.2 and 2.3: content encryption key and nonce.
	cek, err := hkdfKey(ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdfKey(ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	// The last record ends with 0x02 followed by zero padding.
	end := bytes.LastIndexFunc(plain, func(r rune) bool { return r != 0 })
	if end < 0 || plain[end] != 0x02 {
		return nil, errors.New("no last-record delimiter")
	}
	return plain[:end], nil
}

// PushRequest is one message the push service received.
type PushRequest struct {
	Path    string
	Header  http.Header
	Body    []byte
	Claims  jwt.MapClaims
	VAPIDOK bool
	VAPIDIn string // why VAPID verification failed
}

// PushService plays a browser vendor's push service over HTTPS.
type PushService struct {
	*httptest.Server

	mu       sync.Mutex
	script   map[string][]PushReply // by path
	requests []PushRequest
}

// PushReply is one scripted answer.
type PushReply struct {
	Status     int
	RetryAfter string
}

// NewPushService starts an HTTPS push service; use Client() to reach it.
func NewPushService(t testing.TB) *PushService {
	p := &PushService{script: map[string][]PushReply{}}
	p.Server = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

// Endpoint returns a subscription endpoint on this service.
func (p *PushService) Endpoint(name string) string { return p.URL + "/push/" + name }

// Script queues replies for an endpoint; afterwards it answers 201.
func (p *PushService) Script(endpoint string, replies ...PushReply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := strings.TrimPrefix(endpoint, p.URL)
	p.script[path] = append(p.script[path], replies...)
}

// Requests returns the messages received for an endpoint ("" for all).
func (p *PushService) Requests(endpoint string) []PushRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := strings.TrimPrefix(endpoint, p.URL)
	var out []PushRequest
	for _, r := range p.requests {
		if endpoint == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func (p *PushService) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req := PushRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	req.Claims, err = verifyVAPID(r.Header.Get("Authorization"), "https://"+r.Host)
	req.VAPIDOK = err == nil
	if err != nil {
		req.VAPIDIn = err.Error()
	}
	p.mu.Lock()
	p.requests = append(p.requests, req)
	reply := PushReply{Status: http.StatusCreated}
	if q := p.script[r.URL.Path]; len(q) > 0 {
		reply, p.script[r.URL.Path] = q[0], q[1:]
	}
	p.mu.Unlock()
	if !req.VAPIDOK {
		http.Error(w, "VAPID: "+req.VAPIDIn, http.StatusUnauthorized)
		return
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	w.WriteHeader(reply.Status)
}

// verifyVAPID checks an RFC 8292 Authorization header: "vapid t=<JWT>,
// k=<public key>", the JWT signed with ES256 by that key, for this push
// service's origin, not expired, with a subject.
func verifyVAPID(h, audience string) (jwt.MapClaims, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return nil, errors.New("not a vapid authorization")
	}
	var tok, key string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			tok = v
		case "k":
			key = v
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, fmt.Errorf("k: %w", err)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(time.Now))
	if err != nil {
		return nil, err
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, errors.New("no sub claim")
	}
	return claims, nil
}

// PublicKeyOfHeader returns the k= parameter of a VAPID Authorization header.
func PublicKeyOfHeader(h string) string {
	_, rest, _ := strings.Cut(h, "k=")
	k, _, _ := strings.Cut(rest, ",")
	return strings.TrimSpace(k)
}

// hkdfKey derives n bytes with HKDF-SHA256 (RFC 5869). It uses
// golang.org/x/crypto/hkdf rather than the standard library's crypto/hkdf,
// which gazelle v0.53's standard-library list does not know yet.
func hkdfKey(secret, salt []byte, info string, n int) ([]byte, error) {
	key := make([]byte, n)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, salt, []byte(info)), key); err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	return key, nil
}
