package main

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRunRefusesBadConfiguration(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no key source", nil, nil, errNoKeys.Error()},
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"bad number from the environment", nil, map[string]string{"PARLEY_CACHE_SIZE": "many"}, "PARLEY_CACHE_SIZE"},
		{"bad log level", []string{"-log-level", "loud"}, nil, "loud"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := run(t.Context(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := run(t.Context(), nil, io.Discard, io.Discard); !errors.Is(err, errNoKeys) {
		t.Fatalf("without keys: %v", err)
	}
}
