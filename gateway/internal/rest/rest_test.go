package rest_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/gateway/internal/rest"
	"github.com/parleyhq/parley/platform/rpc"
)

// userStub is a UserService whose handlers are never meant to run for
// invalid requests: validation rejects them first. Register records that it
// was reached so the tests can tell validation apart from the handler.
type userStub struct {
	userv1.UnimplementedUserServiceServer
	reached chan string
}

func (s *userStub) Register(_ context.Context, req *userv1.RegisterRequest) (*userv1.RegisterResponse, error) {
	s.reached <- req.GetUsername()
	return &userv1.RegisterResponse{User: &userv1.User{Id: "u1", Username: req.GetUsername()}}, nil
}

// startUserService serves the stub through the platform gRPC server (with its
// real interceptor chain) and returns a client connection and the REST edge.
func startUserService(t *testing.T) (*userStub, userv1.UserServiceClient, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := rpc.NewServer(rpc.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stub := &userStub{reached: make(chan string, 10)}
	userv1.RegisterUserServiceServer(srv, stub)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rpc.Serve(ctx, srv, lis) }()
	conn, err := rpc.Dial(lis.Addr().String(), rpc.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := rest.NewMux(ctx, rest.Conns{User: conn})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(rest.Handler(mux, 1<<20))
	t.Cleanup(func() {
		web.Close()
		_ = conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return stub, userv1.NewUserServiceClient(conn), web
}

func TestValidationOverGRPC(t *testing.T) {
	stub, client, _ := startUserService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := client.Register(ctx, &userv1.RegisterRequest{
		Username: "x", Email: "not-an-email", Password: "short", DisplayName: "Al",
	})
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Fatalf("Register with bad fields: code %v (%v), want InvalidArgument", got, err)
	}
	fields := map[string]bool{}
	for _, v := range rpc.FieldViolations(err) {
		fields[v.Field] = true
	}
	for _, want := range []string{"username", "email", "password"} {
		if !fields[want] {
			t.Errorf("no field violation for %q in %v", want, rpc.FieldViolations(err))
		}
	}
	select {
	case u := <-stub.reached:
		t.Fatalf("handler ran for an invalid request (username %q)", u)
	default:
	}

	// A valid request passes validation and reaches the handler.
	if _, err := client.Register(ctx, &userv1.RegisterRequest{
		Username: "alice", Email: "alice@example.com", Password: "correct horse", DisplayName: "Alice",
	}); err != nil {
		t.Fatalf("valid Register: %v", err)
	}
	if u := <-stub.reached; u != "alice" {
		t.Errorf("handler saw username %q", u)
	}
}

// restError is grpc-gateway's JSON error body.
type restError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		FieldViolations []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"field_violations"`
	} `json:"details"`
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestValidationOverREST(t *testing.T) {
	stub, _, web := startUserService(t)
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantField string // a field violation that must be reported; "" = none checked
	}{
		{"short username", `{"username":"x","email":"a@example.com","password":"long enough","display_name":"A"}`, 400, "username"},
		{"bad email", `{"username":"alice","email":"nope","password":"long enough","display_name":"A"}`, 400, "email"},
		{"short password", `{"username":"alice","email":"a@example.com","password":"short","display_name":"A"}`, 400, "password"},
		{"operator injection", `{"username":{"$gt":""},"email":"a@example.com","password":"long enough","display_name":"A"}`, 400, ""},
		{"unknown field", `{"username":"alice","email":"a@example.com","password":"long enough","display_name":"A","admin":true}`, 400, ""},
		{"not json", `username=alice`, 400, ""},
		{"valid", `{"username":"alice","email":"a@example.com","password":"long enough","display_name":"A"}`, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(t, web.URL+"/v1/auth/register", tc.body)
			if code != tc.wantCode {
				t.Fatalf("status %d (%s), want %d", code, body, tc.wantCode)
			}
			if code == 200 {
				var resp struct {
					User struct {
						Username string `json:"username"`
					} `json:"user"`
				}
				if err := json.Unmarshal(body, &resp); err != nil || resp.User.Username != "alice" {
					t.Errorf("response %s (err %v): want user alice in snake_case JSON", body, err)
				}
				<-stub.reached
				return
			}
			var e restError
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if e.Code != int(codes.InvalidArgument) || e.Message == "" {
				t.Errorf("error body %s: want code %d and a message", body, codes.InvalidArgument)
			}
			if tc.wantField != "" {
				found := false
				for _, d := range e.Details {
					for _, v := range d.FieldViolations {
						found = found || v.Field == tc.wantField
					}
				}
				if !found {
					t.Errorf("no field violation for %q in %s", tc.wantField, body)
				}
			}
			select {
			case u := <-stub.reached:
				t.Errorf("handler ran for a rejected request (username %q)", u)
			default:
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	_, _, web := startUserService(t)
	big := `{"username":"alice","email":"a@example.com","password":"long enough","display_name":"` + strings.Repeat("a", 2<<20) + `"}`
	code, _ := post(t, web.URL+"/v1/auth/register", big)
	if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: status %d, want 400 or 413", code)
	}
}
