package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DemoPassword is the password of every demo user.
const DemoPassword = "parley-demo"

// demoUsers are the seeded accounts, in seeding order; alice is the hub of
// the demo's friendships.
var demoUsers = [...]struct{ username, display string }{
	{"alice", "Alice"},
	{"bob", "Bob"},
	{"carol", "Carol"},
}

// demoCallTimeout bounds each REST call of the seeding.
const demoCallTimeout = 15 * time.Second

// errDemoStatus is an unexpected HTTP status from the gateway.
var errDemoStatus = errors.New("unexpected status")

// demoUser is a signed-in demo account.
type demoUser struct {
	name, id, token string
}

// demoClient calls the gateway's REST API the way any client would.
type demoClient struct {
	base string
	http *http.Client
}

// SeedDemo fills a running platform with demo data over its REST API only:
// users alice, bob and carol (password DemoPassword), alice friends with bob
// and carol, a public #general everyone joined, a group #project-x of the
// three, a direct channel alice<->bob, and some history in each. It is
// idempotent: existing users log in instead, existing channels are reused
// and history is posted only into empty channels (with fixed idempotency
// keys), so every start with --demo on the same data directory may run it.
// It prints the logins and the URL to out.
func SeedDemo(ctx context.Context, baseURL string, out io.Writer) error {
	c := &demoClient{base: strings.TrimRight(baseURL, "/"), http: &http.Client{}}
	users := make(map[string]*demoUser, len(demoUsers))
	for _, u := range demoUsers {
		du, err := c.signIn(ctx, u.username, u.display)
		if err != nil {
			return fmt.Errorf("demo: user %s: %w", u.username, err)
		}
		users[u.username] = du
	}
	alice, bob, carol := users["alice"], users["bob"], users["carol"]

	for _, pair := range [][2]*demoUser{{alice, bob}, {alice, carol}} {
		if err := c.befriend(ctx, pair[0], pair[1]); err != nil {
			return fmt.Errorf("demo: friends %s and %s: %w", pair[0].name, pair[1].name, err)
		}
	}

	general, err := c.publicChannel(ctx, alice, "general", "Everyone, everything")
	if err != nil {
		return fmt.Errorf("demo: #general: %w", err)
	}
	for _, u := range []*demoUser{bob, carol} {
		if err := c.join(ctx, u, general); err != nil {
			return fmt.Errorf("demo: %s joins #general: %w", u.name, err)
		}
	}
	project, err := c.ownedChannel(ctx, alice, "group", "project-x", []string{bob.id, carol.id})
	if err != nil {
		return fmt.Errorf("demo: #project-x: %w", err)
	}
	direct, err := c.ownedChannel(ctx, alice, "private", "", []string{bob.id})
	if err != nil {
		return fmt.Errorf("demo: direct channel: %w", err)
	}

	histories := []struct {
		channel string
		lines   []demoLine
	}{
		{general, []demoLine{
			{alice, "Welcome to Parley! This is #general, open to everyone."},
			{bob, "Hi all 👋"},
			{carol, "Hello! Try the search box up top, it finds messages in every channel you are in."},
			{alice, "And attachments work too: drop an image in with the Attach button."},
		}},
		{project, []demoLine{
			{alice, "Kick-off for project X: goals in the doc, questions here."},
			{carol, "I'll take the API part."},
			{bob, "I'll do the web client. Demo on Friday?"},
			{alice, "Friday it is."},
		}},
		{direct, []demoLine{
			{bob, "Hey Alice, got a minute?"},
			{alice, "Sure, what's up?"},
			{bob, "Just checking the read receipts work: you should see Read under my messages soon."},
		}},
	}
	for _, h := range histories {
		if err := c.seedHistory(ctx, h.channel, h.lines); err != nil {
			return fmt.Errorf("demo: history of %s: %w", h.channel, err)
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Demo data is ready at %s\n", c.base+"/")
	fmt.Fprintf(&b, "  Log in as alice, bob or carol, password %q.\n", DemoPassword)
	b.WriteString("  Channels: #general (public), #project-x (group of three), a direct channel alice <-> bob.\n")
	b.WriteString("  alice is friends with bob and carol.\n")
	if _, err := io.WriteString(out, b.String()); err != nil {
		return fmt.Errorf("demo: print logins: %w", err)
	}
	return nil
}

type demoLine struct {
	from *demoUser
	text string
}

// signIn registers the user or, when the name is taken, logs in.
func (c *demoClient) signIn(ctx context.Context, username, display string) (*demoUser, error) {
	var resp struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		AccessToken string `json:"access_token"`
	}
	status, err := c.call(ctx, http.MethodPost, "/v1/auth/register", "", map[string]string{
		"username": username, "email": username + "@demo.parley.example", "password": DemoPassword, "display_name": display,
	}, &resp)
	if status == http.StatusConflict {
		_, err = c.call(ctx, http.MethodPost, "/v1/auth/login", "", map[string]string{
			"login": username, "password": DemoPassword,
		}, &resp)
	}
	if err != nil {
		return nil, err
	}
	return &demoUser{name: username, id: resp.User.ID, token: resp.AccessToken}, nil
}

// befriend sends a friend request from a and accepts it as b; both steps
// are no-ops once they are friends.
func (c *demoClient) befriend(ctx context.Context, a, b *demoUser) error {
	for _, step := range [][2]*demoUser{{a, b}, {b, a}} {
		status, err := c.call(ctx, http.MethodPost, "/v1/users/me/friends", step[0].token, map[string]string{"user_id": step[1].id}, nil)
		if err != nil && status != http.StatusConflict {
			return err
		}
	}
	return nil
}

type demoChannel struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	LastSeq string `json:"last_seq"`
}

// myChannels lists the channels u is a member of.
func (c *demoClient) myChannels(ctx context.Context, u *demoUser) ([]demoChannel, error) {
	var all []demoChannel
	token := ""
	for {
		var resp struct {
			Channels []struct {
				Channel demoChannel `json:"channel"`
			} `json:"channels"`
			NextPageToken string `json:"next_page_token"`
		}
		q := url.Values{"page_size": {"100"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if _, err := c.call(ctx, http.MethodGet, "/v1/channels?"+q.Encode(), u.token, nil, &resp); err != nil {
			return nil, err
		}
		for _, jc := range resp.Channels {
			all = append(all, jc.Channel)
		}
		if resp.NextPageToken == "" {
			return all, nil
		}
		token = resp.NextPageToken
	}
}

// publicChannel finds the public channel by name (anyone's) or creates it.
func (c *demoClient) publicChannel(ctx context.Context, u *demoUser, name, description string) (string, error) {
	var found struct {
		Channels []demoChannel `json:"channels"`
	}
	q := url.Values{"query": {name}, "page_size": {"100"}}
	if _, err := c.call(ctx, http.MethodGet, "/v1/channels:browse?"+q.Encode(), u.token, nil, &found); err != nil {
		return "", err
	}
	for _, ch := range found.Channels {
		if ch.Name == name {
			return ch.ID, c.join(ctx, u, ch.ID)
		}
	}
	return c.create(ctx, u, map[string]any{"name": name, "type": "public", "description": description})
}

// ownedChannel finds u's group (by name) or direct channel (by type), or
// creates it with the members.
func (c *demoClient) ownedChannel(ctx context.Context, u *demoUser, typ, name string, members []string) (string, error) {
	if typ == "private" {
		// CreateChannel returns the existing direct channel of two users.
		return c.create(ctx, u, map[string]any{"type": typ, "member_ids": members})
	}
	mine, err := c.myChannels(ctx, u)
	if err != nil {
		return "", err
	}
	for _, ch := range mine {
		if ch.Type == typ && ch.Name == name {
			return ch.ID, nil
		}
	}
	return c.create(ctx, u, map[string]any{"name": name, "type": typ, "member_ids": members})
}

func (c *demoClient) create(ctx context.Context, u *demoUser, body map[string]any) (string, error) {
	var resp struct {
		Channel demoChannel `json:"channel"`
	}
	if _, err := c.call(ctx, http.MethodPost, "/v1/channels", u.token, body, &resp); err != nil {
		return "", err
	}
	if resp.Channel.ID == "" {
		return "", fmt.Errorf("create channel: %w: no channel id in the response", errDemoStatus)
	}
	return resp.Channel.ID, nil
}

// join makes u a member; joining twice is not an error.
func (c *demoClient) join(ctx context.Context, u *demoUser, channel string) error {
	status, err := c.call(ctx, http.MethodPost, "/v1/channels/"+url.PathEscape(channel)+"/members", u.token, map[string]string{}, nil)
	if err != nil && status != http.StatusConflict {
		return err
	}
	return nil
}

// seedHistory posts the lines into an empty channel. Fixed client message
// ids make a retried or concurrent seeding store each line once.
func (c *demoClient) seedHistory(ctx context.Context, channel string, lines []demoLine) error {
	var existing struct {
		Messages []json.RawMessage `json:"messages"`
	}
	path := "/v1/channels/" + url.PathEscape(channel) + "/messages"
	if _, err := c.call(ctx, http.MethodGet, path+"?limit=1", lines[0].from.token, nil, &existing); err != nil {
		return err
	}
	if len(existing.Messages) > 0 {
		return nil
	}
	for i, l := range lines {
		body := map[string]any{
			"content":       l.text,
			"type":          "text",
			"client_msg_id": fmt.Sprintf("demo-%s-%d", channel, i+1),
		}
		if _, err := c.call(ctx, http.MethodPost, path, l.from.token, body, nil); err != nil {
			return err
		}
	}
	return nil
}

// call performs one JSON request with a deadline. It returns the status
// (0 when no response arrived) and an error for any status >= 300.
func (c *demoClient) call(ctx context.Context, method, path, token string, in, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, demoCallTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %w %d: %s", method, path, errDemoStatus, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}
