package embedded

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// natsReadyTimeout bounds how long a fresh server may take to accept
// clients; JetStream recovers its streams from disk before that.
const natsReadyTimeout = 30 * time.Second

// NATSConfig configures StartNATS.
type NATSConfig struct {
	// Dir is the JetStream store directory; "" uses a temporary directory
	// that Close removes.
	Dir string
	// Host defaults to 127.0.0.1.
	Host string
	// Port 0 or -1 picks a random free port.
	Port int
	// Logger receives the server's notices, warnings and errors; nil
	// discards them.
	Logger *slog.Logger
}

// NATS is an embedded nats-server with JetStream enabled.
type NATS struct {
	opts    server.Options
	logger  *slog.Logger
	tempDir string // removed by Close; "" when the caller owns Dir

	mu  sync.Mutex
	srv *server.Server
}

// StartNATS starts nats-server with JetStream and waits until it accepts
// clients.
func StartNATS(cfg NATSConfig) (*NATS, error) {
	n := &NATS{logger: componentLogger(cfg.Logger, "nats")}
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "parley-nats-")
		if err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
		dir, n.tempDir = tmp, tmp
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	n.opts = server.Options{
		ServerName: "parley-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true, // signals belong to the host process
		NoLog:      cfg.Logger == nil,
		MaxPayload: 8 << 20,
	}
	srv, err := n.start()
	if err != nil {
		n.removeTemp()
		return nil, err
	}
	n.srv = srv
	// Pin the port so Restart comes back on the same URL.
	if addr, ok := srv.Addr().(*net.TCPAddr); ok {
		n.opts.Port = addr.Port
	}
	return n, nil
}

func (n *NATS) start() (*server.Server, error) {
	opts := n.opts // NewServer keeps and mutates the pointer it gets
	srv, err := server.NewServer(&opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if !opts.NoLog {
		srv.SetLoggerV2(natsLogger{n.logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(natsReadyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start nats: %w", ErrNotReady)
	}
	return srv, nil
}

// URL returns the nats:// client URL.
func (n *NATS) URL() string {
	return "nats://" + net.JoinHostPort(n.opts.Host, strconv.Itoa(n.opts.Port))
}

// Server returns the running server, e.g. for tests that shut it down to
// simulate an outage. After Restart it returns the new server.
func (n *NATS) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Restart stops the server and starts a new one on the same port and store
// directory, as a crash and restart of a real server would; clients with
// reconnect enabled reconnect by themselves. It also starts a server that
// the caller shut down through Server().
func (n *NATS) Restart() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
	}
	srv, err := n.start()
	if err != nil {
		n.srv = nil
		return fmt.Errorf("restart: %w", err)
	}
	n.srv = srv
	return nil
}

// Close shuts the server down and waits for it, flushing JetStream to disk.
func (n *NATS) Close() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	n.removeTemp()
}

func (n *NATS) removeTemp() {
	if n.tempDir == "" {
		return
	}
	if err := os.RemoveAll(n.tempDir); err != nil {
		n.logger.Warn("remove nats temp dir", slog.String("dir", n.tempDir), slog.Any("error", err))
	}
	n.tempDir = ""
}

// natsLogger adapts nats-server's printf-style logger to slog.
type natsLogger struct{ l *slog.Logger }

func (a natsLogger) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a natsLogger) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a natsLogger) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a natsLogger) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a natsLogger) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a natsLogger) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
