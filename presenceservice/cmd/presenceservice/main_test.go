package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/parleyhq/parley/platform/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"unknown flag", []string{"-nope"}, nil},
		{"no way to verify tokens", []string{"-redis-url", "redis://127.0.0.1:1"}, errNoKeys},
		{"bad duration", []string{"-heartbeat-interval", "soon"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &bytes.Buffer{}, &stderr)
			if err == nil {
				t.Fatal("run succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	env := testenv.New(t)
	addr, httpAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	prefix := testenv.Unique("cmd")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{
			"-grpc-addr", addr, "-http-addr", httpAddr,
			"-mongodb-uri", env.MongoURI, "-database", prefix,
			"-nats-url", env.NATSURL,
			"-redis-url", env.RedisURL, "-redis-prefix", prefix + ":",
			"-jwks-url", "http://127.0.0.1:1/.well-known/jwks.json",
			"-log-level", "warn",
		}, &bytes.Buffer{}, &stderr)
	}()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	health := healthpb.NewHealthClient(conn)
	testenv.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, stderr.String())
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		resp, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %s", resp.GetStatus())
		}
		return nil
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: HTTP %d", path, resp.StatusCode)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	mc := env.MongoClient(t)
	if err := mc.Database(prefix).Drop(context.Background()); err != nil {
		t.Error(err)
	}
}
