package main

import (
	"context"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr bool
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.cfg.GRPCAddr != ":9094" || o.cfg.Names.EventsStream != "EVENTS" || o.cfg.StreamReplicas != 1 || o.cfg.Durable != "audit" {
				t.Errorf("defaults = %+v", o.cfg)
			}
		}},
		{name: "env", env: map[string]string{"PARLEY_NATS_URL": "nats://n:4222", "PARLEY_STREAM_REPLICAS": "3", "PARLEY_EVENTS_MAX_AGE": "24h"},
			check: func(t *testing.T, o options) {
				if o.cfg.NATSURL != "nats://n:4222" || o.cfg.StreamReplicas != 3 || o.cfg.MaxAge != 24*time.Hour {
					t.Errorf("env not applied: %+v", o.cfg)
				}
			}},
		{name: "flag beats env", env: map[string]string{"PARLEY_MONGODB_URI": "mongodb://env"}, args: []string{"-mongodb-uri", "mongodb://flag"},
			check: func(t *testing.T, o options) {
				if o.cfg.MongoURI != "mongodb://flag" {
					t.Errorf("MongoURI = %q", o.cfg.MongoURI)
				}
			}},
		{name: "bad env value", env: map[string]string{"PARLEY_STREAM_REPLICAS": "three"}, wantErr: true},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			o, err := parseFlags(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFlags() error = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	ctx := context.Background()
	if code := run(ctx, []string{"-nope"}); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want %d", code, exitUsage)
	}
	if code := run(ctx, []string{"-log-level", "loud"}); code != exitUsage {
		t.Errorf("bad log level: exit %d, want %d", code, exitUsage)
	}
	if code := run(ctx, []string{"-h"}); code != exitOK {
		t.Errorf("-h: exit %d, want %d", code, exitOK)
	}
	// A backend that cannot be reached fails the start, with exit 1.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if code := run(cctx, []string{"-mongodb-uri", "mongodb://127.0.0.1:1", "-grpc-addr", "127.0.0.1:0", "-http-addr", ""}); code != exitFailed {
		t.Errorf("unreachable MongoDB: exit %d, want %d", code, exitFailed)
	}
}
