package connect_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/platform/connect"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestConnectsToTheTestBackends(t *testing.T) {
	env := testenv.New(t)
	ctx := context.Background()
	mc, err := connect.Mongo(ctx, env.MongoURI, "connect-test", 10*time.Second, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Disconnect(ctx); err != nil {
		t.Error(err)
	}
	rc, err := connect.Redis(ctx, env.RedisURL, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Error(err)
	}
	nc, closed, err := connect.NATS(env.NATSURL, "connect-test", 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the closed channel was not closed after Close")
	}
}

func TestUnreachableBackendsFailFast(t *testing.T) {
	ctx := context.Background()
	const timeout = 500 * time.Millisecond
	tests := []struct {
		name string
		dial func() error
		want string
	}{
		{"mongodb", func() error {
			c, err := connect.Mongo(ctx, "mongodb://127.0.0.1:1/", "connect-test", timeout, 0)
			if c != nil {
				_ = c.Disconnect(ctx)
			}
			return err
		}, "mongodb ping"},
		{"bad mongodb uri", func() error { _, err := connect.Mongo(ctx, "http://x", "connect-test", timeout, 0); return err }, "mongodb"},
		{"redis", func() error {
			c, err := connect.Redis(ctx, "redis://127.0.0.1:1/0", timeout)
			if c != nil {
				_ = c.Close()
			}
			return err
		}, "redis at 127.0.0.1:1"},
		{"bad redis url", func() error { _, err := connect.Redis(ctx, "nope://", timeout); return err }, "redis url"},
		{"nats", func() error {
			_, _, err := connect.NATS("nats://127.0.0.1:1", "connect-test", timeout, slog.New(slog.DiscardHandler))
			return err
		}, "nats at nats://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.dial()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
