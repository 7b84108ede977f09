package hub

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// deadlineRecorder is a socket that records the deadlines it is given.
type deadlineRecorder struct {
	net.Conn
	calls []string
}

func (r *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	r.calls = append(r.calls, "write "+stamp(t))
	return nil
}

func (r *deadlineRecorder) SetDeadline(t time.Time) error {
	r.calls = append(r.calls, "both "+stamp(t))
	return nil
}

var deadlineBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func stamp(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(deadlineBase).String()
}

func TestLazyDeadlineConn(t *testing.T) {
	at := func(d time.Duration) time.Time { return deadlineBase.Add(d) }
	steps := []struct {
		name    string
		both    bool // SetDeadline instead of SetWriteDeadline
		t       time.Time
		forward string // what reaches the socket, "" for nothing
	}{
		{"first deadline", false, at(10 * time.Second), "write 10s"},
		{"the same", false, at(10 * time.Second), ""},
		{"later within the slack", false, at(11 * time.Second), ""},
		{"exactly the slack later", false, at(12500 * time.Millisecond), ""},
		{"past the slack", false, at(12600 * time.Millisecond), "write 12.6s"},
		{"earlier", false, at(5 * time.Second), "write 5s"},
		{"none", false, time.Time{}, "write none"},
		{"none again", false, time.Time{}, ""},
		{"after none", false, at(6 * time.Second), "write 6s"},
		{"both deadlines", true, at(20 * time.Second), "both 20s"},
		{"within the slack of both", false, at(21 * time.Second), ""},
	}
	rec := &deadlineRecorder{}
	c := &lazyDeadlineConn{Conn: rec, slack: 2500 * time.Millisecond}
	for _, s := range steps {
		before := len(rec.calls)
		var err error
		if s.both {
			err = c.SetDeadline(s.t)
		} else {
			err = c.SetWriteDeadline(s.t)
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := ""
		switch len(rec.calls) - before {
		case 0:
		case 1:
			got = rec.calls[before]
		default:
			t.Fatalf("%s: %d calls reached the socket: %v", s.name, len(rec.calls)-before, rec.calls[before:])
		}
		if got != s.forward {
			t.Errorf("%s: the socket got %q, want %q", s.name, got, s.forward)
		}
	}
}

// The upgrader, given a lazyDeadlineWriter, builds its connection on a
// lazyDeadlineConn with a quarter of the write wait as its slack.
func TestLazyDeadlineWriterHijacks(t *testing.T) {
	got := make(chan net.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var up websocket.Upgrader
		ws, err := up.Upgrade(lazyDeadlineWriter{ResponseWriter: w, writeWait: 8 * time.Second}, r, nil)
		if err != nil {
			got <- nil
			return
		}
		got <- ws.NetConn()
		_ = ws.Close()
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	conn := <-got
	c, ok := conn.(*lazyDeadlineConn)
	if !ok {
		t.Fatalf("the upgraded socket is a %T, want a *lazyDeadlineConn", conn)
	}
	if c.slack != 2*time.Second {
		t.Fatalf("slack %v, want 2s", c.slack)
	}

	rec := httptest.NewRecorder() // cannot be hijacked
	if _, _, err := (lazyDeadlineWriter{ResponseWriter: rec}).Hijack(); err == nil {
		t.Fatal("hijacking a recorder succeeded")
	}
}
