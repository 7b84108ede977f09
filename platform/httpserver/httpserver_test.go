package httpserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyhq/parley/platform/httpserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewTimeouts(t *testing.T) {
	srv := httpserver.New(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("missing protective limits: %+v", srv)
	}
	if srv.WriteTimeout != 0 || srv.ReadTimeout != 0 {
		t.Errorf("WriteTimeout %v / ReadTimeout %v would cut off WebSockets", srv.WriteTimeout, srv.ReadTimeout)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func TestServe(t *testing.T) {
	tests := []struct {
		name    string
		grace   time.Duration
		hold    bool // a request is still running at shutdown
		wantErr bool
	}{
		{name: "idle server stops cleanly", grace: time.Second},
		{name: "running request finishes within grace", grace: 10 * time.Second, hold: true},
		{name: "request outliving grace is cut off", grace: 100 * time.Millisecond, hold: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				_, _ = io.WriteString(w, "done")
			})
			mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "pong") })
			srv := httpserver.New(mux)
			lis := listen(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- httpserver.ServeWithGrace(ctx, srv, lis, tt.grace) }()

			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			resp, err := client.Get("http://" + lis.Addr().String() + "/ping")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(body) != "pong" {
				t.Fatalf("body = %q", body)
			}

			holdDone := make(chan error, 1)
			if tt.hold {
				go func() {
					resp, err := client.Get("http://" + lis.Addr().String() + "/hold")
					if err == nil {
						_, err = io.ReadAll(resp.Body)
						_ = resp.Body.Close()
					}
					holdDone <- err
				}()
				<-entered
			}
			cancel()
			if tt.hold && !tt.wantErr {
				// Shutdown waits for the running request; let it finish.
				close(release)
			}
			select {
			case err := <-done:
				if (err != nil) != tt.wantErr {
					t.Fatalf("Serve = %v, wantErr %v", err, tt.wantErr)
				}
				if tt.wantErr && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Serve = %v, want the grace deadline", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Serve did not return")
			}
			if tt.hold {
				if tt.wantErr {
					close(release)
				}
				err := <-holdDone
				if (err != nil) != tt.wantErr {
					t.Fatalf("held request = %v, wantErr %v", err, tt.wantErr)
				}
			}
		})
	}
}

func TestServeReportsListenerFailure(t *testing.T) {
	lis := listen(t)
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	if err := httpserver.Serve(t.Context(), httpserver.New(http.NotFoundHandler()), lis); err == nil {
		t.Fatal("Serve on a closed listener = nil, want an error")
	}
}
