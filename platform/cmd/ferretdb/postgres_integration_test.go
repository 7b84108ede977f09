//go:build integration

package main

import (
	"context"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestServesPostgreSQL runs the command against a real PostgreSQL, the way
// CI uses it. PARLEY_TEST_POSTGRES_URL names the database FerretDB should
// store in (e.g. postgres://postgres@127.0.0.1:5432/ferretdb); the test
// creates it when missing, through the server's "postgres" database.
//
//	PARLEY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/ferretdb \
//	  go test -race -tags integration ./cmd/ferretdb/
func TestServesPostgreSQL(t *testing.T) {
	pgURL := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set: the integration tier needs a PostgreSQL server")
	}
	createDatabase(t, pgURL)
	serveAndUse(t, []string{
		"--handler", "postgresql",
		"--postgresql-url", pgURL,
		"--listen-addr", "127.0.0.1:0",
	})
}

// createDatabase creates the database pgURL names unless it exists.
func createDatabase(t *testing.T, pgURL string) {
	t.Helper()
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatalf("PARLEY_TEST_POSTGRES_URL: %v", err)
	}
	name := u.Path
	if len(name) > 0 && name[0] == '/' {
		name = name[1:]
	}
	if name == "" {
		t.Fatal("PARLEY_TEST_POSTGRES_URL names no database")
	}
	admin := *u
	admin.Path = "/postgres"

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer func() {
		if err := conn.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return
	}
	if err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
}
