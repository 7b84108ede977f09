package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	notificationv1 "github.com/parleyhq/parley/apis/gen/go/parley/notification/v1"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestRunRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-no-such-flag"}, "not defined"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"bad log level", []string{"-log-level", "loud"}, "loud"},
		{"help", []string{"-h"}, flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		t.Setenv("PARLEY_SMTP_PORT", "twenty-five")
		err := run(context.Background(), nil, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "PARLEY_SMTP_PORT") {
			t.Fatalf("run with a bad PARLEY_SMTP_PORT = %v", err)
		}
	})
}

// TestRunServes starts the command against the test backends, checks that
// it serves gRPC (health and the API), and that cancelling stops it cleanly.
func TestRunServes(t *testing.T) {
	env := testenv.New(t)
	addr := testenv.FreeAddr(t)
	streams := map[string]string{
		"events-stream": testenv.Unique("EV"), "events-dlq-stream": testenv.Unique("EVDLQ"),
		"jobs-stream": testenv.Unique("NJ"), "jobs-dlq-stream": testenv.Unique("NDLQ"),
	}
	db := testenv.Unique("cmd")
	args := []string{
		"-grpc-addr", addr, "-mongodb-uri", env.MongoURI, "-mongodb-database", db, "-nats-url", env.NATSURL,
		"-events-subject-prefix", testenv.Unique("ev"), "-events-dlq-subject-prefix", testenv.Unique("evdlq"),
		"-events-durable", testenv.Unique("n"), "-jobs-subject-prefix", testenv.Unique("nj"),
		"-jobs-dlq-subject-prefix", testenv.Unique("ndlq"), "-jobs-durable-prefix", testenv.Unique("w"),
		"-key-dir", t.TempDir(), "-service-token", "secret", "-log-level", "error",
	}
	for f, v := range streams {
		args = append(args, "-"+f, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, args, &out, &out) }()
	t.Cleanup(func() {
		nc := env.NATS(t)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		for _, s := range streams {
			if err := js.DeleteStream(cctx, s); err != nil {
				t.Errorf("delete stream %s: %v", s, err)
			}
		}
		if err := env.MongoClient(t).Database(db).Drop(cctx); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	testenv.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, out.String())
		default:
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
		defer ccancel()
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return errors.New(resp.GetStatus().String())
		}
		return nil
	})
	// A generated VAPID key pair is served (the key dir was given).
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	cfgResp, err := notificationv1.NewNotificationServiceClient(conn).GetWebPushConfig(cctx, &notificationv1.GetWebPushConfigRequest{})
	if err != nil || len(cfgResp.GetVapidPublicKey()) != 87 {
		t.Fatalf("GetWebPushConfig = %v, %v", cfgResp, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30s")
	}
}
