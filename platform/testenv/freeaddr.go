package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreeAddr returns a loopback address whose port nobody listens on, for a
// command under test that takes an address rather than a listener.
//
// The port is below the kernel's ephemeral range: a port picked by
// listening on port 0 and closing again is handed out again to the next
// listener on port 0 (this or another test process binding its own
// servers) before the command gets to bind it, which failed CI runs with
// "address already in use". Ports outside the range are only taken by
// explicit binds.
func FreeAddr(t testing.TB) string {
	t.Helper()
	low := ephemeralLow()
	const floor = 20000
	for range 100 {
		port := floor + rand.IntN(low-floor)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: try another
		}
		if err := l.Close(); err != nil {
			t.Fatalf("testenv: close probe listener: %v", err)
		}
		return addr
	}
	t.Fatalf("testenv: no free port between %d and %d", floor, low)
	return ""
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default when it cannot be read).
func ephemeralLow() int {
	low, high := 32768, 60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if _, err := fmt.Sscan(string(b), &low, &high); err != nil || low <= 21000 {
			low = 32768
		}
	}
	return low
}
