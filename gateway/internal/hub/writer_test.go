package hub

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
	"github.com/parleyhq/parley/platform/testenv"
)

func TestWSText(t *testing.T) {
	tests := []struct {
		n      int
		header []byte // expected header; the payload follows
	}{
		{0, []byte{0x81, 0}},
		{1, []byte{0x81, 1}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, binary.BigEndian.AppendUint64([]byte{0x81, 127}, 65536)},
		{1 << 20, binary.BigEndian.AppendUint64([]byte{0x81, 127}, 1<<20)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			payload := bytes.Repeat([]byte{'x'}, tt.n)
			got := wsText(payload)
			if !bytes.Equal(got[:len(tt.header)], tt.header) {
				t.Errorf("header % x, want % x", got[:len(tt.header)], tt.header)
			}
			if !bytes.Equal(got[len(tt.header):], payload) {
				t.Errorf("payload of %d bytes, want %d", len(got)-len(tt.header), tt.n)
			}
		})
	}
}

// TestWriteNowFillsTheSocket: frames fanned out to a client that reads
// nothing fill its socket; writeNow writes what the socket takes, and the
// write loop the rest, resuming inside a frame where the socket's buffer
// ran out. Once the client reads, it gets every frame whole and in order.
func TestWriteNowFillsTheSocket(t *testing.T) {
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.chat.addChannel("bulk", "public", "alice", "reader")
			th := fx.startHub(t, generous, func(c *Config) {
				c.BlockingReads = mode.blocking
				c.Limits.SendQueueSize = 4096
			})
			// The kernel cannot absorb the frames for the client: 8 MB
			// against at most 4 MB of the server's send buffer and 64 KiB
			// of this one.
			reader := dialSlowReader(t, th.url, "reader")
			reader.join("bulk")

			const n = 2000
			content := strings.Repeat("y", 3900)
			for i := 1; i <= n; i++ {
				if _, err := fx.chat.sendAs("alice", "bulk", fmt.Sprintf("%d %s", i, content)); err != nil {
					t.Fatal(err)
				}
			}
			for next := int64(1); next <= n; {
				f, err := reader.read(waitTimeout)
				if err != nil {
					t.Fatalf("at seq %d: %v", next, err)
				}
				if f.Type != protocol.TypeMessage {
					continue
				}
				var d struct {
					Seq     protocol.Int `json:"seq"`
					Content string       `json:"content"`
				}
				if err := jsonUnmarshal(f.Data, &d); err != nil {
					t.Fatalf("at seq %d: %v", next, err)
				}
				if want := fmt.Sprintf("%d %s", next, content); int64(d.Seq) != next || d.Content != want {
					t.Fatalf("got seq %d with %d bytes of content, want seq %d with %d", d.Seq, len(d.Content), next, len(want))
				}
				next++
			}
		})
	}
}

// TestKeepsUp: the fan-out writes inline only while no message waits
// behind the one its subscription is delivering.
func TestKeepsUp(t *testing.T) {
	if !keepsUp(nil) {
		t.Fatal("keepsUp(nil) = false")
	}
	env := testenv.New(t)
	nc := env.NATS(t)
	subject := testenv.Unique(t.Name())
	release := make(chan struct{})
	got := make(chan bool, 3)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		got <- keepsUp(m.Sub)
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	for range 3 {
		if err := nc.Publish(subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// The first message is held until the other two are pending (the
	// held one counts until its handler returns).
	eventually(t, func() error {
		if n, _, _ := sub.Pending(); n != 3 {
			return fmt.Errorf("%d pending, want 3", n)
		}
		return nil
	})
	close(release)
	// The first delivery may have looked before the others arrived; the
	// second had one behind it, the last none.
	<-got
	if <-got {
		t.Error("keepsUp with a message waiting = true")
	}
	if !<-got {
		t.Error("keepsUp of the last message = false")
	}
}
