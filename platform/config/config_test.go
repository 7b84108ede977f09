package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	tests := []struct{ flag, want string }{
		{"mongodb-uri", "PARLEY_MONGODB_URI"},
		{"http-addr", "PARLEY_HTTP_ADDR"},
		{"demo", "PARLEY_DEMO"},
		{"log.level", "PARLEY_LOG_LEVEL"},
	}
	for _, tt := range tests {
		if got := EnvName(tt.flag); got != tt.want {
			t.Errorf("EnvName(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
}

type settings struct {
	addr    string
	demo    bool
	workers int
	timeout time.Duration
}

func newFlags(s *settings) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.addr, "http-addr", "localhost:8080", "")
	fs.BoolVar(&s.demo, "demo", false, "")
	fs.IntVar(&s.workers, "workers", 4, "")
	fs.DurationVar(&s.timeout, "shutdown-timeout", 10*time.Second, "")
	return fs
}

func TestParse(t *testing.T) {
	defaults := settings{addr: "localhost:8080", workers: 4, timeout: 10 * time.Second}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    settings
		wantErr string // substring; "" = no error
		errIs   error
	}{
		{name: "defaults", want: defaults},
		{
			name: "env over defaults",
			env:  map[string]string{"PARLEY_HTTP_ADDR": ":9000", "PARLEY_DEMO": "true", "PARLEY_SHUTDOWN_TIMEOUT": "3s"},
			want: settings{addr: ":9000", demo: true, workers: 4, timeout: 3 * time.Second},
		},
		{
			name: "flags over env",
			args: []string{"-http-addr", ":7000", "-workers=2"},
			env:  map[string]string{"PARLEY_HTTP_ADDR": ":9000", "PARLEY_WORKERS": "8"},
			want: settings{addr: ":7000", workers: 2, timeout: 10 * time.Second},
		},
		{
			name: "flag set to its default still wins",
			args: []string{"-workers=4"},
			env:  map[string]string{"PARLEY_WORKERS": "8"},
			want: defaults,
		},
		{
			name: "empty env is unset",
			env:  map[string]string{"PARLEY_HTTP_ADDR": ""},
			want: defaults,
		},
		{
			name:    "bad env value names the variable",
			env:     map[string]string{"PARLEY_WORKERS": "many"},
			wantErr: `PARLEY_WORKERS="many"`,
			errIs:   ErrBadEnv,
		},
		{
			name:    "bad bool",
			env:     map[string]string{"PARLEY_DEMO": "yes please"},
			wantErr: "PARLEY_DEMO",
			errIs:   ErrBadEnv,
		},
		{
			name:    "bad flag",
			args:    []string{"-workers=x"},
			wantErr: "-workers",
		},
		{
			name:    "unknown flag",
			args:    []string{"-nope"},
			wantErr: "nope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got settings
			fs := newFlags(&got)
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			err := parse(fs, tt.args, lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Fatalf("err = %v, want errors.Is %v", err, tt.errIs)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got != tt.want {
				t.Fatalf("settings = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseReadsProcessEnv covers the exported entry point with the real
// environment.
func TestParseReadsProcessEnv(t *testing.T) {
	t.Setenv("PARLEY_HTTP_ADDR", ":1234")
	var got settings
	if err := Parse(newFlags(&got), nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got.addr != ":1234" {
		t.Fatalf("addr = %q, want :1234", got.addr)
	}
}
