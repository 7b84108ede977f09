package webpush

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/notificationservice/internal/notify"
	"github.com/parleyhq/parley/notificationservice/internal/providertest"
)

func newSender(t *testing.T, ps *providertest.PushService) (*Sender, Keys) {
	t.Helper()
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Keys: keys, Subject: "mailto:ops@parley.test", HTTPClient: ps.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return s, keys
}

func device(ps *providertest.PushService, sub *providertest.Subscriber, name string) notify.Device {
	return notify.Device{ID: "d-" + name, Platform: notify.PlatformWebPush,
		WebPush: notify.WebPushSubscription{Endpoint: ps.Endpoint(name), P256dh: sub.P256dh(), Auth: sub.Auth()}}
}

func TestSendDecryptsWithSubscriptionKey(t *testing.T) {
	ps := providertest.NewPushService(t)
	s, keys := newSender(t, ps)
	sub := providertest.NewSubscriber(t)
	m := notify.PushMessage{NotificationID: "n42", Kind: notify.KindMention, Title: "Bob mentioned you in #general",
		Body: "hey @ann, look ✨", Data: map[string]string{"channel_id": "c9"}, Priority: notify.PriorityHigh,
		Device: device(ps, sub, "ann")}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := ps.Requests(ps.Endpoint("ann"))
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	plain, err := sub.Decrypt(r.Body)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	var got Payload
	if err := json.Unmarshal(plain, &got); err != nil {
		t.Fatalf("payload %q: %v", plain, err)
	}
	want := Payload{NotificationID: "n42", Kind: "mention", Title: m.Title, Body: m.Body, Data: m.Data, Priority: "high"}
	if got.NotificationID != want.NotificationID || got.Title != want.Title || got.Body != want.Body ||
		got.Data["channel_id"] != "c9" || got.Kind != want.Kind || got.Priority != want.Priority {
		t.Errorf("payload = %+v, want %+v", got, want)
	}

	// VAPID: signed by our key for the push service's origin.
	if !r.VAPIDOK {
		t.Fatalf("VAPID rejected: %s", r.VAPIDIn)
	}
	if k := providertest.PublicKeyOfHeader(r.Header.Get("Authorization")); k != keys.PublicKey {
		t.Errorf("VAPID k = %q, want our public key %q", k, keys.PublicKey)
	}
	if sub, _ := r.Claims["sub"].(string); sub != "mailto:ops@parley.test" {
		t.Errorf("VAPID sub = %q (the library must not double the mailto:)", sub)
	}
	headers := map[string]string{
		"Content-Encoding": "aes128gcm",
		"Urgency":          "high",
		"Topic":            Topic("n42"),
		"Ttl":              "86400",
	}
	for h, want := range headers {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if len(Topic("n42")) != 32 || strings.ContainsAny(Topic("n42"), "+/=") {
		t.Errorf("topic %q is not 32 base64url characters", Topic("n42"))
	}
}

func TestSendClassifiesPushServiceAnswers(t *testing.T) {
	ps := providertest.NewPushService(t)
	s, _ := newSender(t, ps)
	sub := providertest.NewSubscriber(t)
	tests := []struct {
		name      string
		reply     providertest.PushReply
		wantUnreg bool
		wantPerm  bool
		wantTemp  bool
		after     time.Duration
	}{
		{name: "201", reply: providertest.PushReply{Status: 201}},
		{name: "404 gone", reply: providertest.PushReply{Status: 404}, wantUnreg: true},
		{name: "410 expired", reply: providertest.PushReply{Status: 410}, wantUnreg: true},
		{name: "413 too big", reply: providertest.PushReply{Status: 413}, wantPerm: true},
		{name: "400", reply: providertest.PushReply{Status: 400}, wantPerm: true},
		{name: "429", reply: providertest.PushReply{Status: 429, RetryAfter: "30"}, wantTemp: true, after: 30 * time.Second},
		{name: "503", reply: providertest.PushReply{Status: 503}, wantTemp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := device(ps, sub, strings.ReplaceAll(tt.name, " ", "-"))
			ps.Script(d.WebPush.Endpoint, tt.reply)
			err := s.Send(context.Background(), notify.PushMessage{NotificationID: "n", Title: "t", Device: d})
			if got := errors.Is(err, notify.ErrUnregistered); got != tt.wantUnreg {
				t.Errorf("unregistered = %v, want %v (%v)", got, tt.wantUnreg, err)
			}
			if got := notify.IsPermanent(err); got != tt.wantPerm {
				t.Errorf("permanent = %v, want %v (%v)", got, tt.wantPerm, err)
			}
			var re *notify.RetryError
			if got := errors.As(err, &re); got != tt.wantTemp {
				t.Errorf("temporary = %v, want %v (%v)", got, tt.wantTemp, err)
			}
			if tt.after > 0 && notify.RetryAfterOf(err) != tt.after {
				t.Errorf("retry after %s, want %s", notify.RetryAfterOf(err), tt.after)
			}
			if !tt.wantUnreg && !tt.wantPerm && !tt.wantTemp && err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestPayloadTooLargeIsShortened(t *testing.T) {
	ps := providertest.NewPushService(t)
	s, _ := newSender(t, ps)
	sub := providertest.NewSubscriber(t)
	m := notify.PushMessage{NotificationID: "n", Title: "t", Body: strings.Repeat("é", 3000), Device: device(ps, sub, "big")}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	plain, err := sub.Decrypt(ps.Requests(m.Device.WebPush.Endpoint)[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := json.Unmarshal(plain, &p); err != nil || !strings.HasSuffix(p.Body, "…") || len(plain) > MaxPayload {
		t.Fatalf("payload of %d bytes, body %d runes, err %v", len(plain), len([]rune(p.Body)), err)
	}
}

func TestBadSubscriptionKeyIsPermanent(t *testing.T) {
	ps := providertest.NewPushService(t)
	s, _ := newSender(t, ps)
	d := notify.Device{Platform: notify.PlatformWebPush, WebPush: notify.WebPushSubscription{Endpoint: ps.Endpoint("x"), P256dh: "AAAA", Auth: "AAAA"}}
	if err := s.Send(context.Background(), notify.PushMessage{NotificationID: "n", Title: "t", Device: d}); !notify.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeys(dir)
	if err != nil || k1 != k2 {
		t.Fatalf("second load = %+v, %v; want %+v", k2, err, k1)
	}
	st, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st, err)
	}
	if pub, err := PublicKeyOf(k1.PrivateKey); err != nil || pub != k1.PublicKey {
		t.Fatalf("PublicKeyOf = %q, %v", pub, err)
	}
	other, _ := GenerateKeys()
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"private key only", Config{Keys: Keys{PrivateKey: k1.PrivateKey}, Subject: "a@b.c"}, true},
		{"matching pair", Config{Keys: k1, Subject: "https://parley.test"}, true},
		{"mismatched pair", Config{Keys: Keys{PrivateKey: k1.PrivateKey, PublicKey: other.PublicKey}, Subject: "a@b.c"}, false},
		{"no subject", Config{Keys: k1}, false},
		{"garbage key", Config{Keys: Keys{PrivateKey: "nope"}, Subject: "a@b.c"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, ok %v", err, tt.ok)
			}
			if err == nil && s.PublicKey() != k1.PublicKey {
				t.Errorf("public key = %q", s.PublicKey())
			}
		})
	}
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte(`{"public_key":"x","private_key":"y"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeys(dir); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}
