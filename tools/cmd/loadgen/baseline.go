package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// baseline is the yardstick: the minimal gorilla broadcast server most chat
// tutorials write. Each connection's reader writes every frame it reads to
// every socket of its room, one after the other; no auth, no queue, no
// persistence. The gateway does far more per message (authorisation,
// storage, NATS, sequence tracking), so the ratio of the two runs says what
// that costs.
type baseline struct {
	url string
	lis net.Listener
	srv *http.Server
	wg  sync.WaitGroup

	mu    sync.Mutex
	rooms map[string]map[*baselineConn]struct{}
	all   map[*baselineConn]struct{}
}

// baselineFrame is a message frame in the gateway's field order, so
// loadgen reads both servers' frames the same way (fastMessage).
type baselineFrame struct {
	Type      string          `json:"type"`
	Channel   string          `json:"channel"`
	Data      json.RawMessage `json:"data"`
	Timestamp int64           `json:"timestamp"`
}

type baselineConn struct {
	ws *websocket.Conn
	mu sync.Mutex // one writer at a time
}

// serveBaseline runs the baseline server until ctx ends.
func serveBaseline(ctx context.Context, addr string, log *slog.Logger) error {
	b, err := startBaseline(addr)
	if err != nil {
		return err
	}
	log.Info("broadcast baseline listening", slog.String("url", b.url), slog.Int("pid", os.Getpid()))
	<-ctx.Done()
	b.close()
	return nil
}

func startBaseline(addr string) (*baseline, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &baseline{
		url:   "ws://" + lis.Addr().String() + "/ws",
		lis:   lis,
		rooms: make(map[string]map[*baselineConn]struct{}),
		all:   make(map[*baselineConn]struct{}),
	}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	b.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			b.serve(ws, r.URL.Query().Get("room"))
		}),
	}
	// Serve returns when close closes the server; its error then says
	// nothing useful.
	b.wg.Go(func() { _ = b.srv.Serve(lis) })
	return b, nil
}

func (b *baseline) serve(ws *websocket.Conn, room string) {
	c := &baselineConn{ws: ws}
	// The client counts as connected once it reads the welcome, which is
	// written after the connection joined its room and before any
	// broadcast can reach it (c.mu is held across both): a message sent
	// right after the handshake would otherwise miss a member the client
	// already counts.
	c.mu.Lock()
	b.mu.Lock()
	if b.rooms[room] == nil {
		b.rooms[room] = make(map[*baselineConn]struct{})
	}
	b.rooms[room][c] = struct{}{}
	b.all[c] = struct{}{}
	b.mu.Unlock()
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	werr := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome"}`))
	c.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.rooms[room], c)
		delete(b.all, c)
		b.mu.Unlock()
		_ = ws.Close()
	}()
	if werr != nil {
		return
	}
	var peers []*baselineConn
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var in struct {
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(data, &in) != nil {
			continue
		}
		out, err := json.Marshal(baselineFrame{Type: "message", Channel: room, Data: in.Data, Timestamp: time.Now().UnixMilli()})
		if err != nil {
			continue
		}
		b.mu.Lock()
		peers = peers[:0]
		for p := range b.rooms[room] {
			peers = append(peers, p)
		}
		b.mu.Unlock()
		for _, p := range peers {
			p.mu.Lock()
			_ = p.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_ = p.ws.WriteMessage(websocket.TextMessage, out)
			p.mu.Unlock()
		}
	}
}

func (b *baseline) close() {
	_ = b.srv.Close()
	b.mu.Lock()
	for c := range b.all {
		_ = c.ws.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
