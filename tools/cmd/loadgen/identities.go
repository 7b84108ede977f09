package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// identity is who one client is: its token and the channel it joins.
type identity struct {
	token   string
	channel string
}

// identities returns one identity per client.
func identities(ctx context.Context, cfg config, log *slog.Logger) ([]identity, error) {
	n := cfg.total()
	ids := make([]identity, n)
	channelOf := func(i int, names []string) string {
		if cfg.mode == "idle" || len(names) == 0 {
			return ""
		}
		if len(names) == cfg.channels {
			return names[i/cfg.members]
		}
		return names[i%len(names)]
	}
	switch {
	case cfg.baseline:
		rooms := make([]string, cfg.channels)
		for c := range rooms {
			rooms[c] = fmt.Sprintf("room%d", c)
		}
		for i := range ids {
			ids[i].channel = channelOf(i, rooms)
		}
	case cfg.token != "":
		for i := range ids {
			ids[i] = identity{token: cfg.token, channel: channelOf(i, cfg.channelIDs)}
		}
	case cfg.tokensFile != "":
		lines, err := readTokens(cfg.tokensFile)
		if err != nil {
			return nil, err
		}
		for i := range ids {
			l := lines[i%len(lines)]
			if l.channel == "" {
				l.channel = channelOf(i, cfg.channelIDs)
			}
			ids[i] = l
		}
	case cfg.register:
		var err error
		if ids, err = register(ctx, cfg, log); err != nil {
			return nil, err
		}
		if cfg.tokensOut != "" {
			if err := writeTokens(cfg.tokensOut, ids); err != nil {
				return nil, err
			}
		}
	}
	if cfg.mode == "chat" {
		for i, id := range ids {
			if id.channel == "" {
				return nil, fmt.Errorf("client %d has no channel: name channels with --channel-ids or in the tokens file", i)
			}
		}
	}
	return ids, nil
}

func readTokens(path string) ([]identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []identity
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		id := identity{token: fields[0]}
		if len(fields) > 1 {
			id.channel = fields[1]
		}
		out = append(out, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no tokens", path)
	}
	return out, nil
}

func writeTokens(path string, ids []identity) error {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(id.token)
		if id.channel != "" {
			b.WriteString(" " + id.channel)
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// restClient calls the gateway's REST API.
type restClient struct {
	base string
	http *http.Client
}

func (r *restClient) call(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// register creates users over REST (one per connection, or --users reused
// cyclically), then the channels (public; the user of each channel's first
// connection creates it), and makes every connection's user a member of
// its channel.
func register(ctx context.Context, cfg config, log *slog.Logger) ([]identity, error) {
	rc := &restClient{base: cfg.api, http: &http.Client{Timeout: 60 * time.Second}}
	n := cfg.total()
	users := cfg.users
	if users == 0 {
		users = n
	}
	run := make([]byte, 4)
	_, _ = rand.Read(run)
	runID := hex.EncodeToString(run)
	tokens := make([]string, users)
	start := time.Now()
	log.Info("registering users", slog.Int("users", users), slog.String("run", runID))
	err := parallel(ctx, users, cfg.registerPar, func(ctx context.Context, u int) error {
		var resp struct {
			AccessToken string `json:"access_token"`
		}
		name := fmt.Sprintf("lg%s%06d", runID, u)
		err := rc.call(ctx, http.MethodPost, "/v1/auth/register", "", map[string]string{
			"username": name, "email": name + "@loadgen.test", "password": cfg.password, "display_name": "loadgen " + name,
		}, &resp)
		if err != nil {
			return err
		}
		if resp.AccessToken == "" {
			return errors.New("register: no access_token in the response")
		}
		tokens[u] = resp.AccessToken
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register users: %w", err)
	}
	log.Info("users registered", slog.Duration("took", time.Since(start)))
	ids := make([]identity, n)
	for i := range ids {
		ids[i].token = tokens[i%users]
	}
	if cfg.mode == "idle" {
		return ids, nil
	}
	channels := make([]string, cfg.channels)
	err = parallel(ctx, cfg.channels, cfg.registerPar, func(ctx context.Context, c int) error {
		var resp struct {
			Channel struct {
				ID string `json:"id"`
			} `json:"channel"`
		}
		if err := rc.call(ctx, http.MethodPost, "/v1/channels", ids[c*cfg.members].token, map[string]any{
			"name": fmt.Sprintf("loadgen %s %d", runID, c), "type": "public",
		}, &resp); err != nil {
			return err
		}
		channels[c] = resp.Channel.ID
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create channels: %w", err)
	}
	// One join per distinct (user, channel); joining twice is harmless
	// anyway.
	type membership struct {
		user    int
		channel int
	}
	seen := make(map[membership]bool)
	var joins []membership
	for i := range ids {
		ids[i].channel = channels[i/cfg.members]
		m := membership{i % users, i / cfg.members}
		if !seen[m] && i%cfg.members != 0 {
			seen[m] = true
			joins = append(joins, m)
		}
	}
	err = parallel(ctx, len(joins), cfg.registerPar, func(ctx context.Context, j int) error {
		m := joins[j]
		return rc.call(ctx, http.MethodPost, "/v1/channels/"+channels[m.channel]+"/members", tokens[m.user], map[string]any{}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("join channels: %w", err)
	}
	log.Info("channels ready", slog.Int("channels", cfg.channels), slog.Int("joins", len(joins)), slog.Duration("took", time.Since(start)))
	return ids, nil
}

// parallel runs f for 0..n-1 with at most par at once; the first error
// cancels the rest.
func parallel(ctx context.Context, n, par int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(par, 1) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
