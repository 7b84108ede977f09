package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer collects the command's log output from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveAndUse runs the command with args, stores and reads back a
// document through the URI it reports, then stops it with ctx as a signal
// would.
func serveAndUse(t *testing.T, args []string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	uris := make(chan string, 1)
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, logs, func(uri string) { uris <- uri }) }()

	var uri string
	select {
	case uri = <-uris:
	case err := <-done:
		cancel()
		t.Fatalf("run ended before serving: %v\n%s", err, logs)
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("no URI within a minute")
	}
	if !strings.Contains(logs.String(), uri) {
		t.Errorf("URI %s not logged:\n%s", uri, logs)
	}

	opCtx, opCancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer opCancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(20 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	coll := c.Database("cmdtest").Collection("docs")
	id := time.Now().UnixNano()
	if _, err := coll.InsertOne(opCtx, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: "hello"}}); err != nil {
		t.Errorf("insert: %v", err)
	}
	var got struct{ V string }
	if err := coll.FindOne(opCtx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil || got.V != "hello" {
		t.Errorf("find = %+v, %v; want hello", got, err)
	}
	if err := c.Disconnect(opCtx); err != nil {
		t.Errorf("disconnect: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v after stop, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestServesSQLite(t *testing.T) {
	serveAndUse(t, []string{
		"--handler", "sqlite",
		"--sqlite-url", "file:" + t.TempDir() + "/data/",
		"--listen-addr", "127.0.0.1:0",
	})
}

func TestBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown handler", args: []string{"--handler", "oracle"}, want: "postgresql or sqlite"},
		{name: "unknown handler from env", env: map[string]string{"PARLEY_HANDLER": "mysql"}, want: `"mysql"`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, want: "unknown level"},
		{name: "bad sqlite url", args: []string{"--handler", "sqlite", "--sqlite-url", "http://x/"}, want: "file:<dir>/"},
		{name: "unknown flag", args: []string{"--nope"}, want: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			err := run(t.Context(), tt.args, io.Discard, func(string) { t.Error("served despite bad arguments") })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h = %v, want flag.ErrHelp", err)
	}
}
