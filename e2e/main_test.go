package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// parleyBin is the all-in-one binary built once for the package's tests.
var parleyBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	parleyBin = filepath.Join(dir, "parley")
	build := exec.Command("go", "build", "-o", parleyBin, "github.com/parleyhq/parley/cmd/parley")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building cmd/parley:", err)
		return 1
	}
	return m.Run()
}

// server is a running all-in-one process.
type server struct {
	URL    string
	cmd    *exec.Cmd
	done   chan error
	logsMu sync.Mutex
	logs   strings.Builder
}

// startServer runs the all-in-one on dataDir and waits for its banner. The
// environment variables that point at real backends are removed so the
// process uses its embedded ones, unless keepEnv is set.
func startServer(t *testing.T, dataDir string, extraArgs ...string) *server {
	t.Helper()
	// Port 0: the process binds a free port itself and prints it in its
	// banner; a port picked here could be taken by one of its own loopback
	// listeners before it gets to bind it.
	args := append([]string{"--http-addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "warn"}, extraArgs...)
	cmd := exec.Command(parleyBin, args...)
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PARLEY_") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		s.logsMu.Lock()
		defer s.logsMu.Unlock()
		return s.logs.Write(p)
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "Parley is running at "); ok {
				ready <- strings.TrimSpace(rest)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.URL = <-ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("parley exited before serving: %v\nlogs:\n%s", err, s.logText())
	case <-time.After(90 * time.Second):
		t.Fatalf("parley did not print its banner within 90s\nlogs:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.logsMu.Lock()
	defer s.logsMu.Unlock()
	return s.logs.String()
}

// stop sends SIGINT (Ctrl-C) and requires a clean exit within 10 s.
func (s *server) stop(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Errorf("signal parley: %v", err)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("parley exited with %v after Ctrl-C\nlogs:\n%s", err, s.logText())
		}
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Errorf("parley did not stop within 10s of Ctrl-C\nlogs:\n%s", s.logText())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// get performs a GET with a deadline and returns status and body.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, body
}

// call performs a JSON request with a deadline and decodes the response into
// out (when non-nil); it returns the status code and the raw body.
func call(t *testing.T, method, url, token string, in, out any) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// authResponse is the shape of register, login and refresh responses.
type authResponse struct {
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Email    string `json:"email"`
	} `json:"user"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresAt    string `json:"expires_at"`
}
