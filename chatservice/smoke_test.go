package chatservice

import (
	"net/http"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
)

func TestSmoke(t *testing.T) {
	f := newFixture(t)
	ch := f.mustCreate(t, "alice", "group", "smoke", "bob")
	m := f.mustSend(t, "bob", ch.GetId(), "hello there")
	if m.GetSeq() != 1 {
		t.Fatalf("seq = %d", m.GetSeq())
	}
	resp, err := f.client.GetMessages(as(t, "alice"), &chatv1.GetMessagesRequest{ChannelId: ch.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMessages()) != 1 || resp.GetMessages()[0].GetContent() != "hello there" {
		t.Fatalf("messages = %v", resp.GetMessages())
	}
}

// The health endpoints and the gRPC health service answer, and the indexes
// real MongoDB needs exist after start-up.
func TestHealthAndIndexes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.HTTPAddr = "127.0.0.1:0" })
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + f.svc.HTTPAddr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	hc, err := healthpb.NewHealthClient(f.conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health: %v %v", hc, err)
	}
	want := map[string][]string{
		"messages": {"channel_seq", "channel_terms"},
		"members":  {"user_channel", "channel_user"},
		"channels": {"type_name", "dm_key"},
		"outbox":   {"next_attempt_at"},
	}
	for coll, names := range want {
		specs, err := f.db.Collection(coll).Indexes().ListSpecifications(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, s := range specs {
			have[s.Name] = true
			if s.Name == "channel_seq" && (s.Unique == nil || !*s.Unique) {
				t.Errorf("messages.channel_seq is not unique")
			}
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s has no index %s (has %v)", coll, n, have)
			}
		}
	}
}
