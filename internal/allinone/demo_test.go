package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// startAllInOne runs the platform in-process on t.TempDir() and returns its
// URL; it is stopped (and must stop cleanly) when the test ends.
func startAllInOne(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			HTTPListener: lis,
			DataDir:      t.TempDir(),
			Ready:        func(u string) { ready <- u },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not stop within 30s of cancel")
		}
	})
	select {
	case u := <-ready:
		return u
	case err := <-done:
		done <- err
		t.Fatalf("Run ended before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the all-in-one did not become ready within 2 minutes")
	}
	return ""
}

// rest performs one JSON call and decodes a 2xx answer into out.
func rest(t *testing.T, method, u, token string, in, out any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, u, raw, err)
		}
	}
	return resp.StatusCode
}

type seededChannel struct {
	Channel struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"channel"`
}

func login(t *testing.T, base, user string) (id, token string) {
	t.Helper()
	var resp struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		AccessToken string `json:"access_token"`
	}
	if code := rest(t, http.MethodPost, base+"/v1/auth/login", "", map[string]string{"login": user, "password": DemoPassword}, &resp); code != http.StatusOK {
		t.Fatalf("login %s = %d", user, code)
	}
	return resp.User.ID, resp.AccessToken
}

func TestSeedDemoIsIdempotent(t *testing.T) {
	base := startAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var out bytes.Buffer
	if err := SeedDemo(ctx, base, &out); err != nil {
		t.Fatalf("first SeedDemo: %v", err)
	}
	for _, want := range []string{"alice", "bob", "carol", DemoPassword, base} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("SeedDemo output lacks %q:\n%s", want, out.String())
		}
	}
	// A second run on the same data (a restart with --demo) must succeed
	// and add nothing.
	out.Reset()
	if err := SeedDemo(ctx, base, &out); err != nil {
		t.Fatalf("second SeedDemo: %v", err)
	}

	aliceID, alice := login(t, base, "alice")
	bobID, bob := login(t, base, "bob")
	carolID, carol := login(t, base, "carol")

	channelsOf := func(token string) map[string]string { // "type/name" -> id
		var resp struct {
			Channels []seededChannel `json:"channels"`
		}
		if code := rest(t, http.MethodGet, base+"/v1/channels?page_size=100", token, nil, &resp); code != http.StatusOK {
			t.Fatalf("list channels = %d", code)
		}
		got := make(map[string]string)
		for _, c := range resp.Channels {
			key := c.Channel.Type + "/" + c.Channel.Name
			if _, dup := got[key]; dup && c.Channel.Type != "private" {
				t.Errorf("channel %s exists twice", key)
			}
			got[key] = c.Channel.ID
		}
		return got
	}
	aliceChans := channelsOf(alice)
	tests := []struct {
		name, key  string
		members    map[string]string // token by user, all must see it
		messages   int
		memberSize int
	}{
		{"general", "public/general", map[string]string{"bob": bob, "carol": carol}, 4, 3},
		{"project-x", "group/project-x", map[string]string{"bob": bob, "carol": carol}, 4, 3},
		{"direct", "private/", map[string]string{"bob": bob}, 3, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := aliceChans[tc.key]
			if id == "" {
				t.Fatalf("alice has no channel %s: %v", tc.key, aliceChans)
			}
			for who, token := range tc.members {
				if got := channelsOf(token)[tc.key]; got != id {
					t.Errorf("%s sees %s as %q, want %q", who, tc.key, got, id)
				}
			}
			var msgs struct {
				Messages []struct {
					Seq     string `json:"seq"`
					Content string `json:"content"`
				} `json:"messages"`
			}
			if code := rest(t, http.MethodGet, base+"/v1/channels/"+url.PathEscape(id)+"/messages?limit=100", alice, nil, &msgs); code != http.StatusOK {
				t.Fatalf("history = %d", code)
			}
			// Exactly the seeded lines: the second run added none.
			if len(msgs.Messages) != tc.messages {
				t.Fatalf("%d messages, want %d: %+v", len(msgs.Messages), tc.messages, msgs.Messages)
			}
			for i, m := range msgs.Messages {
				if m.Seq != fmt.Sprint(i+1) || m.Content == "" {
					t.Errorf("message %d = %+v", i, m)
				}
			}
			var members struct {
				Members []struct {
					UserID string `json:"user_id"`
				} `json:"members"`
			}
			if code := rest(t, http.MethodGet, base+"/v1/channels/"+url.PathEscape(id)+"/members", alice, nil, &members); code != http.StatusOK {
				t.Fatalf("members = %d", code)
			}
			if len(members.Members) != tc.memberSize {
				t.Errorf("%d members, want %d", len(members.Members), tc.memberSize)
			}
		})
	}

	var friends struct {
		Friends []struct {
			User struct {
				ID string `json:"id"`
			} `json:"user"`
			State string `json:"state"`
		} `json:"friends"`
	}
	if code := rest(t, http.MethodGet, base+"/v1/users/me/friends", alice, nil, &friends); code != http.StatusOK {
		t.Fatalf("friends = %d", code)
	}
	got := map[string]string{}
	for _, f := range friends.Friends {
		got[f.User.ID] = f.State
	}
	if got[bobID] != "friend" || got[carolID] != "friend" || len(got) != 2 {
		t.Errorf("alice's friends = %v, want bob and carol as friends (alice is %s)", got, aliceID)
	}
}
