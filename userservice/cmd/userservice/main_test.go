package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestRunRejectsBadConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"-log-level", "loud"},
		{"-argon2-parallelism", "300"},
		{"-access-ttl", "soon"},
		{"-signing-key-files", "/nonexistent/key.pem"},
	} {
		var stderr bytes.Buffer
		if err := run(context.Background(), args, &bytes.Buffer{}, &stderr); err == nil {
			t.Errorf("run(%v) succeeded", args)
		}
	}
}

// TestRunServesUntilCanceled starts the command on the test backends,
// waits for it to be ready, and stops it the way a SIGTERM would.
func TestRunServesUntilCanceled(t *testing.T) {
	env := testenv.New(t)
	db := env.Mongo(t)
	js, err := jetstream.New(env.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	stream, dlq := testenv.Unique("EV"), testenv.Unique("DLQ")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{stream, dlq} {
			_ = js.DeleteStream(ctx, s) // best effort: the names are unique
		}
	})
	prefix := testenv.Unique("cmd") + ":"
	rdb := env.Redis(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete Redis keys: %v", err)
		}
	})
	keyDir := filepath.Join(t.TempDir(), "keys")
	httpAddr := testenv.FreeAddr(t)
	args := []string{
		"-grpc-addr", "127.0.0.1:0", "-http-addr", httpAddr,
		"-mongodb-uri", env.MongoURI, "-database", db.Name(),
		"-nats-url", env.NATSURL, "-redis-url", env.RedisURL, "-redis-prefix", prefix,
		"-events-stream", stream, "-events-subject-prefix", testenv.Unique("ev"),
		"-dlq-stream", dlq, "-dlq-subject-prefix", testenv.Unique("dlq"),
		"-key-dir", keyDir, "-admin-users", "root, admin2", "-log-level", "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &bytes.Buffer{}, &stderr) }()
	testenv.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz = %d", resp.StatusCode)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(keyDir, "jwt-signing-key.pem")); err != nil {
		t.Fatalf("no key generated in -key-dir: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func TestSplitList(t *testing.T) {
	got := splitList(" a, b,,c ,")
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("splitList = %q", got)
	}
	if splitList("") != nil {
		t.Fatal("splitList(\"\") is not empty")
	}
}
