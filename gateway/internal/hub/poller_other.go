//go:build !linux

package hub

import (
	"errors"
	"log/slog"
	"syscall"
)

// readPoller is Linux's epoll (poller_linux.go); elsewhere every connection
// is read by a goroutine of its own (readLoop).
type readPoller struct{}

func newReadPoller(*slog.Logger) (*readPoller, error) {
	return nil, errors.New("hub: no read poller on this system")
}

func (*readPoller) add(*conn)                  {}
func (*readPoller) remove(*conn)               {}
func (*readPoller) arm(*conn) error            { return errors.ErrUnsupported }
func (*readPoller) read(*conn) ([]byte, error) { return nil, errors.ErrUnsupported }
func (*readPoller) run()                       {}
func (*readPoller) stop()                      {}

// writeNonBlocking is never called here: connections are never polled
// (conn.writeNow).
func writeNonBlocking(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
