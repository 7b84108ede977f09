package hub

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/gateway/internal/hub/protocol"
)

// BenchmarkFanout measures one hub fanning messages out to N local
// connections of one channel: NATS in, N WebSocket writes out. An op is
// one message published; deliveries/s counts frames the clients read.
// The clients run in the same process, so ns/op and allocs/op include
// their reads too.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) { benchmarkFanout(b, n) })
	}
}

func benchmarkFanout(b *testing.B, n int) {
	fx := newFixture(b)
	fx.chat.addChannel("bench", "public", "sender")
	th := fx.startHub(b, generous, func(c *Config) {
		c.Limits.MaxConnsPerIP = -1
		c.Limits.MaxConnsPerUser = -1
		c.Presence = nil // keep the benchmark about fan-out
		c.Users = nil
	})
	var wg sync.WaitGroup
	counts := make([]atomic.Int64, n)
	// progress wakes the publisher when any client has read a message.
	progress := make(chan struct{}, 1)
	conns := make([]*websocket.Conn, 0, n)
	setup := time.Now()
	for i := range n {
		c := dial(b, th.url, fmt.Sprintf("u%d", i))
		c.join("bench")
		conns = append(conns, c.ws)
		ws := c.ws
		_ = ws.SetReadDeadline(time.Time{}) // dial and join set one
		// Read from the start: a client that does not read cannot answer
		// pings.
		wg.Go(func() {
			// Read without allocating, so allocs/op is mostly the hub's.
			var head [17]byte
			for {
				_, r, err := ws.NextReader()
				if err != nil {
					return
				}
				n, _ := io.ReadFull(r, head[:])
				if _, err := io.Copy(io.Discard, r); err != nil {
					return
				}
				if string(head[:n]) == `{"type":"message"` {
					counts[i].Add(1)
					select {
					case progress <- struct{}{}:
					default: // a wake-up is pending already
					}
				}
			}
		})
	}
	b.Logf("%d connections joined in %s", n, time.Since(setup))
	b.Cleanup(func() {
		for _, ws := range conns {
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			_ = ws.Close()
		}
		wg.Wait()
	})
	subject := fx.prefix + "rt.channel.bench"
	body := `{"id":"m","channel_id":"bench","user_id":"sender","content":"` + strings.Repeat("x", 100) + `","type":"text"}`
	// At most window messages in flight to the slowest client, so no
	// queue overflows: the benchmark measures throughput, not 4013s.
	const window = 64
	var seq int64
	slowest := func() int64 {
		low := counts[0].Load()
		for i := range counts {
			low = min(low, counts[i].Load())
		}
		return low
	}
	// check bounds a wait: the slowest client must keep up, and no client
	// may be closed as a slow consumer.
	check := time.NewTicker(50 * time.Millisecond)
	defer check.Stop()
	wait := func(upTo int64) {
		deadline := time.Now().Add(time.Minute)
		for slowest() < upTo {
			select {
			case <-progress:
				continue
			case <-check.C:
			}
			if time.Now().After(deadline) || th.metric(b, "parley_gateway_slow_consumer_closes_total", nil) != 0 {
				hi, stuck := int64(0), 0
				for i := range counts {
					hi = max(hi, counts[i].Load())
					if counts[i].Load() < upTo {
						stuck++
					}
				}
				b.Fatalf("slowest client at %d of %d (fastest %d, %d behind; slow consumers %v, recoveries %v, nats reconnects %d, dropped %v)",
					slowest(), upTo, hi, stuck, th.metric(b, "parley_gateway_slow_consumer_closes_total", nil),
					th.metric(b, "parley_gateway_recoveries_total", nil), th.nc.Stats().Reconnects,
					th.metric(b, "parley_gateway_nats_dropped_total", nil))
			}
		}
	}
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		seq++
		frame := fmt.Sprintf(`{"type":%q,"channel":"bench","data":%s,"timestamp":%d,"user_id":"sender"}`,
			protocol.TypeMessage, strings.Replace(body, `"id":"m"`, fmt.Sprintf(`"id":"m%d","seq":"%d"`, seq, seq), 1), time.Now().UnixMilli())
		if err := fx.nc.Publish(subject, []byte(frame)); err != nil {
			b.Fatal(err)
		}
		if seq > window {
			wait(seq - window)
		}
	}
	wait(seq)
	elapsed := time.Since(start)
	b.ReportMetric(float64(seq*int64(n))/elapsed.Seconds(), "deliveries/s")
}
