package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// maxClosedLoopMessages bounds a saturation run's bookkeeping.
const maxClosedLoopMessages = 2_000_000

// Summary is loadgen's JSON report.
type Summary struct {
	Target            string         `json:"target"`
	Mode              string         `json:"mode"`
	BroadcastBaseline bool           `json:"broadcast_baseline"`
	Connections       ConnSummary    `json:"connections"`
	Channels          int            `json:"channels,omitempty"`
	MembersPerChannel int            `json:"members_per_channel,omitempty"`
	Senders           int            `json:"senders,omitempty"`
	RatePerSec        float64        `json:"rate_per_sec"`
	DurationSeconds   float64        `json:"duration_seconds"`
	Sent              int64          `json:"sent"`
	Acked             int64          `json:"acked"`
	SendErrors        int64          `json:"send_errors"`
	Expected          int64          `json:"expected"`
	Delivered         int64          `json:"delivered"`
	Lost              int64          `json:"lost"`
	Duplicates        int64          `json:"duplicates"`
	DeliveriesPerSec  float64        `json:"deliveries_per_sec"`
	Latency           LatencySummary `json:"latency_ms"`
	AckLatency        LatencySummary `json:"ack_latency_ms"`
	Errors            ErrorSummary   `json:"errors"`
	ServerRSS         *RSSSummary    `json:"server_rss,omitempty"`
	// Timeline tells, per second of sending, how that second's messages
	// fared (chat mode).
	Timeline []TimelineSecond `json:"timeline,omitempty"`
}

// ConnSummary counts connections.
type ConnSummary struct {
	Requested   int     `json:"requested"`
	Established int     `json:"established"`
	Failed      int     `json:"failed"`
	DialSeconds float64 `json:"dial_seconds"`
	SourceIPs   int     `json:"source_ips"`
}

// ErrorSummary counts what went wrong.
type ErrorSummary struct {
	Dial        int            `json:"dial"`
	ErrorFrames int64          `json:"error_frames"`
	ErrorCodes  map[string]int `json:"error_codes,omitempty"`
	// Closed counts connections that ended before the run did, by close
	// code (0: no close frame).
	Closed map[string]int `json:"closed,omitempty"`
	First  string         `json:"first,omitempty"`
}

// RSSSummary is the server's resident memory around connecting.
type RSSSummary struct {
	PID                int     `json:"pid"`
	BeforeKB           int64   `json:"before_kb"`
	AfterKB            int64   `json:"after_kb"`
	PerConnectionBytes float64 `json:"per_connection_bytes"`
}

// msgSlot tracks one sent message.
type msgSlot struct {
	// Written by the sender before the message leaves, read by receivers:
	// atomics, since the only ordering between them is the network.
	sentAt    atomic.Int64 // unix ns
	expected  atomic.Int32
	sender    atomic.Int32
	delivered atomic.Int32
	acked     atomic.Bool
	failed    atomic.Bool
}

// runState is shared by the clients of one run.
type runState struct {
	cfg     config
	log     *slog.Logger
	slots   []msgSlot
	nextIdx atomic.Int64

	latency, ackLatency histogram
	acked, sendErrors   atomic.Int64
	errorFrames         atomic.Int64
	duplicates          atomic.Int64
	firstSend, lastSeen atomic.Int64
	timeline            atomic.Pointer[timeline] // set when sending starts
	stopping            atomic.Bool

	mu         sync.Mutex
	errorCodes map[string]int
	closed     map[string]int
	firstErr   string
}

func (s *runState) noteError(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErr == "" {
		s.firstErr = fmt.Sprintf(format, args...)
	}
}

// client is one WebSocket connection.
type client struct {
	idx     int
	ws      *websocket.Conn
	channel string
	// window holds closed-loop send tokens (senders only).
	window chan struct{}
	done   chan struct{}
}

func execute(ctx context.Context, cfg config, log *slog.Logger) (*Summary, error) {
	sum := &Summary{
		Target: cfg.url, Mode: cfg.mode, BroadcastBaseline: cfg.baseline,
		RatePerSec: cfg.rate, DurationSeconds: cfg.duration.Seconds(),
	}
	if cfg.mode == "chat" {
		sum.Channels, sum.MembersPerChannel, sum.Senders = cfg.channels, cfg.members, cfg.senders
	}
	switch {
	case cfg.baseline && cfg.baselineURL != "":
		cfg.url = cfg.baselineURL
		sum.Target = "gorilla broadcast server at " + cfg.baselineURL
	case cfg.baseline:
		b, err := startBaseline("127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer b.close()
		cfg.url = b.url
		sum.Target = "in-process gorilla broadcast server"
		log.Info("broadcast baseline listening", slog.String("url", b.url))
	}
	ids, err := identities(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	st := &runState{cfg: cfg, log: log, errorCodes: make(map[string]int), closed: make(map[string]int)}
	if cfg.mode == "chat" {
		n := maxClosedLoopMessages
		if cfg.rate > 0 {
			n = int(math.Ceil(cfg.rate*cfg.duration.Seconds()*1.1)) + cfg.senders
		}
		st.slots = make([]msgSlot, n)
	}

	var before int64
	if cfg.serverPID > 0 {
		if before, err = readRSS(cfg.serverPID); err != nil {
			return nil, err
		}
	}
	dialStart := time.Now()
	clients, dialErrs := dialAll(ctx, cfg, ids, st)
	established := 0
	for _, c := range clients {
		if c != nil {
			established++
		}
	}
	sum.Connections = ConnSummary{
		Requested: len(ids), Established: established, Failed: len(ids) - established,
		DialSeconds: time.Since(dialStart).Seconds(), SourceIPs: len(cfg.sourceIPs),
	}
	sum.Errors.Dial = dialErrs
	log.Info("connected", slog.Int("established", established), slog.Int("failed", len(ids)-established), slog.Duration("took", time.Since(dialStart)))
	defer closeAll(clients, st)

	if cfg.mode == "idle" {
		if err := sleepCtx(ctx, cfg.settle); err != nil {
			return nil, err
		}
	}
	if cfg.serverPID > 0 {
		after, err := readRSS(cfg.serverPID)
		if err != nil {
			return nil, err
		}
		sum.ServerRSS = &RSSSummary{PID: cfg.serverPID, BeforeKB: before, AfterKB: after}
		if established > 0 {
			sum.ServerRSS.PerConnectionBytes = float64(after-before) * 1024 / float64(established)
		}
	}
	if cfg.mode == "idle" {
		log.Info("holding idle connections", slog.Duration("for", cfg.duration))
		if err := sleepCtx(ctx, cfg.duration); err != nil {
			return nil, err
		}
	} else {
		if err := chat(ctx, cfg, clients, st); err != nil {
			return nil, err
		}
	}
	st.stopping.Store(true)
	st.fill(sum)
	return sum, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dialAll opens every connection (nil where it failed) and starts its
// reader.
func dialAll(ctx context.Context, cfg config, ids []identity, st *runState) ([]*client, int) {
	dialers := make([]*websocket.Dialer, len(cfg.sourceIPs))
	for i, ip := range cfg.sourceIPs {
		nd := &net.Dialer{Timeout: cfg.dialTimeout, LocalAddr: &net.TCPAddr{IP: ip}}
		dialers[i] = &websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: cfg.dialTimeout,
			ReadBufferSize:   1024,
			WriteBufferSize:  1024,
		}
	}
	clients := make([]*client, len(ids))
	var failed atomic.Int64
	_ = parallel(ctx, len(ids), cfg.dialConcurrency, func(ctx context.Context, i int) error {
		c, err := dialOne(ctx, cfg, dialers[i%len(dialers)], i, ids[i])
		if err != nil {
			failed.Add(1)
			st.noteError("dial client %d: %v", i, err)
			return nil // count and go on
		}
		clients[i] = c
		go c.read(st)
		return nil
	})
	return clients, int(failed.Load())
}

func dialOne(ctx context.Context, cfg config, d *websocket.Dialer, i int, id identity) (*client, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout)
	defer cancel()
	target := cfg.url
	h := http.Header{}
	if cfg.baseline {
		target += "?room=" + url.QueryEscape(id.channel)
	} else {
		h.Set("Authorization", "Bearer "+id.token)
	}
	ws, resp, err := d.DialContext(ctx, target, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &client{idx: i, ws: ws, channel: id.channel, done: make(chan struct{})}
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	// Both servers greet a connection once it receives its channel's
	// messages (the baseline once it joined its room).
	if err := c.await("welcome", ""); err != nil {
		_ = ws.Close()
		return nil, err
	}
	if cfg.baseline {
		_ = ws.SetReadDeadline(time.Time{})
		return c, nil
	}
	if cfg.mode == "chat" {
		_ = ws.SetWriteDeadline(deadline)
		join := fmt.Sprintf(`{"type":"join_channel","id":"join","channel":%q}`, id.channel)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(join)); err != nil {
			_ = ws.Close()
			return nil, err
		}
		if err := c.await("ack", "join"); err != nil {
			_ = ws.Close()
			return nil, fmt.Errorf("join %s: %w", id.channel, err)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return c, nil
}

// await reads until a frame of type typ (with id, if given) arrives; an
// error frame for the id fails.
func (c *client) await(typ, id string) error {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return err
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("undecodable frame: %w", err)
		}
		if f.Type == "error" && (id == "" || f.ID == id) {
			return fmt.Errorf("error frame: %s %s", f.Data.Code, f.Data.Message)
		}
		if f.Type == typ && (id == "" || f.ID == id) {
			return nil
		}
	}
}

// inFrame is what loadgen reads of a server frame.
type inFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data struct {
		Metadata struct {
			Idx  string `json:"lg_idx"`
			Sent string `json:"lg_sent"`
		} `json:"metadata"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"data"`
}

// read consumes the connection's frames until it closes. Frames are read
// into one reused buffer, and message frames are scanned rather than
// decoded (fastMessage): loadgen shares the machine with the server it
// measures, so its own cost per delivery is kept small.
func (c *client) read(st *runState) {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		b, err := readFrame(c.ws, &buf)
		if err != nil {
			if !st.stopping.Load() {
				code := "0"
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = strconv.Itoa(ce.Code)
				}
				st.mu.Lock()
				st.closed[code]++
				st.mu.Unlock()
				st.noteError("client %d closed: %v", c.idx, err)
			}
			return
		}
		now := time.Now().UnixNano()
		var f inFrame
		if idx, sent, ok := fastMessage(b); ok {
			f.Type = "message"
			f.Data.Metadata.Idx, f.Data.Metadata.Sent = idx, sent
		} else if err := json.Unmarshal(b, &f); err != nil {
			st.noteError("client %d: undecodable frame: %v", c.idx, err)
			continue
		}
		switch f.Type {
		case "message":
			slot := st.slot(f.Data.Metadata.Idx)
			if slot == nil {
				continue
			}
			if n := slot.delivered.Add(1); n > slot.expected.Load() {
				st.duplicates.Add(1)
				continue
			}
			if sent, err := strconv.ParseInt(f.Data.Metadata.Sent, 10, 64); err == nil {
				st.latency.record(time.Duration(now - sent))
				if tl := st.timeline.Load(); tl != nil {
					tl.record(sent, time.Duration(now-sent))
				}
			}
			st.lastSeen.Store(now)
			if int(slot.sender.Load()) == c.idx && c.window != nil {
				select {
				case c.window <- struct{}{}:
				default:
				}
			}
		case "ack":
			if slot := st.slotOfID(f.ID); slot != nil && !slot.acked.Swap(true) {
				st.acked.Add(1)
				st.ackLatency.record(time.Duration(now - slot.sentAt.Load()))
			}
		case "error":
			st.errorFrames.Add(1)
			st.mu.Lock()
			st.errorCodes[f.Data.Code]++
			st.mu.Unlock()
			st.noteError("client %d: error frame %s: %s", c.idx, f.Data.Code, f.Data.Message)
			if slot := st.slotOfID(f.ID); slot != nil && !slot.failed.Swap(true) {
				st.sendErrors.Add(1)
				if c.window != nil {
					select {
					case c.window <- struct{}{}:
					default:
					}
				}
			}
		}
	}
}

// readFrame reads the next data frame into buf (reset first) and returns
// its bytes, valid until the next call.
func readFrame(ws *websocket.Conn, buf *bytes.Buffer) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Message frames start with their type, and loadgen's metadata values
// are plain digits.
var (
	messagePrefix = []byte(`{"type":"message",`)
	idxKey        = []byte(`"lg_idx":"`)
	sentKey       = []byte(`"lg_sent":"`)
)

// fastMessage reads lg_idx and lg_sent of a message frame without decoding
// it. In JSON text every quote inside a string is escaped, so an unescaped
// "lg_idx":" can only be that key. Anything else (another frame type, a
// key missing, a value with an escape) reports false, and the caller
// decodes the frame in full.
func fastMessage(b []byte) (idx, sent string, ok bool) {
	if !bytes.HasPrefix(b, messagePrefix) {
		return "", "", false
	}
	if idx, ok = stringAfter(b, idxKey); !ok {
		return "", "", false
	}
	if sent, ok = stringAfter(b, sentKey); !ok {
		return "", "", false
	}
	return idx, sent, true
}

// stringAfter returns the string value that follows key (which ends with
// the value's opening quote), if it has no escapes.
func stringAfter(b, key []byte) (string, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return "", false
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func (st *runState) slot(idx string) *msgSlot {
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= len(st.slots) || int64(i) >= st.nextIdx.Load() {
		return nil
	}
	return &st.slots[i]
}

func (st *runState) slotOfID(id string) *msgSlot {
	rest, ok := strings.CutPrefix(id, "m")
	if !ok {
		return nil
	}
	return st.slot(rest)
}

// chat runs the senders for the duration, then waits for deliveries.
func chat(ctx context.Context, cfg config, clients []*client, st *runState) error {
	members := make(map[string]int32)
	for _, c := range clients {
		if c != nil {
			members[c.channel]++
		}
	}
	var senders []*client
	total := len(clients)
	for k := range cfg.senders {
		if c := clients[k*total/cfg.senders]; c != nil {
			senders = append(senders, c)
		}
	}
	if len(senders) == 0 {
		return errors.New("no sender connected")
	}
	content := strings.Repeat("x", cfg.contentBytes)
	sendCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	first := time.Now()
	st.timeline.Store(newTimeline(first, int(cfg.duration/time.Second)+1))
	st.firstSend.Store(first.UnixNano())
	var wg sync.WaitGroup
	for k, c := range senders {
		if cfg.rate == 0 {
			c.window = make(chan struct{}, cfg.window)
			for range cfg.window {
				c.window <- struct{}{}
			}
		}
		wg.Go(func() { st.send(sendCtx, c, k, len(senders), members[c.channel], content) })
	}
	wg.Wait()
	sent := st.nextIdx.Load()
	st.log.Info("sending done; draining", slog.Int64("sent", sent))
	deadline := time.Now().Add(cfg.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st.outstanding() == 0 {
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// send is one sender: open loop at its share of the rate, or closed loop
// with a window of messages in flight.
func (st *runState) send(ctx context.Context, c *client, k, senders int, members int32, content string) {
	var tick <-chan time.Time
	if st.cfg.rate > 0 {
		every := time.Duration(float64(time.Second) * float64(senders) / st.cfg.rate)
		// Spread the senders' phases over one interval.
		if err := sleepCtx(ctx, every*time.Duration(k)/time.Duration(senders)); err != nil {
			return
		}
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-c.window:
			case <-c.done:
				return
			}
		}
		idx := st.nextIdx.Add(1) - 1
		if idx >= int64(len(st.slots)) {
			st.nextIdx.Add(-1)
			return
		}
		slot := &st.slots[idx]
		now := time.Now()
		slot.sentAt.Store(now.UnixNano())
		slot.expected.Store(members)
		slot.sender.Store(int32(c.idx))
		frame := fmt.Sprintf(`{"type":"send_message","id":"m%d","channel":%q,"data":{"content":%q,"metadata":{"lg_idx":"%d","lg_sent":"%d"}}}`,
			idx, c.channel, content, idx, now.UnixNano())
		_ = c.ws.SetWriteDeadline(now.Add(10 * time.Second))
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			slot.failed.Store(true)
			st.sendErrors.Add(1)
			st.noteError("sender %d: write: %v", c.idx, err)
			return
		}
	}
}

// counted reports whether a message is expected to reach its channel: not
// refused, and (against Parley) acked or seen delivered.
func (st *runState) counted(s *msgSlot) bool {
	if s.failed.Load() {
		return false
	}
	return st.cfg.baseline || s.acked.Load() || s.delivered.Load() > 0
}

// outstanding counts deliveries still expected, and (against Parley) acks.
func (st *runState) outstanding() int64 {
	var n int64
	sent := st.nextIdx.Load()
	for i := range sent {
		s := &st.slots[i]
		if s.failed.Load() {
			continue
		}
		if d, e := s.delivered.Load(), s.expected.Load(); d < e {
			n += int64(e - d)
		}
		if !st.cfg.baseline && !s.acked.Load() {
			n++ // the ack follows the deliveries
		}
	}
	return n
}

func (st *runState) fill(sum *Summary) {
	sent := st.nextIdx.Load()
	sum.Sent, sum.Acked, sum.SendErrors = sent, st.acked.Load(), st.sendErrors.Load()
	for i := range sent {
		s := &st.slots[i]
		if !st.counted(s) {
			continue
		}
		e := s.expected.Load()
		sum.Expected += int64(e)
		sum.Delivered += int64(min(s.delivered.Load(), e))
	}
	sum.Lost = sum.Expected - sum.Delivered
	sum.Duplicates = st.duplicates.Load()
	if first, last := st.firstSend.Load(), st.lastSeen.Load(); last > first && first > 0 {
		sum.DeliveriesPerSec = float64(sum.Delivered) / (float64(last-first) / 1e9)
	}
	sum.Latency, sum.AckLatency = st.latency.summary(), st.ackLatency.summary()
	if tl := st.timeline.Load(); tl != nil {
		sum.Timeline = tl.summary()
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	sum.Errors.ErrorFrames = st.errorFrames.Load()
	if len(st.errorCodes) > 0 {
		sum.Errors.ErrorCodes = st.errorCodes
	}
	if len(st.closed) > 0 {
		sum.Errors.Closed = st.closed
	}
	sum.Errors.First = st.firstErr
}

// closeAll closes every connection and waits for the readers.
func closeAll(clients []*client, st *runState) {
	st.stopping.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, c := range clients {
		if c != nil {
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			_ = c.ws.Close()
		}
	}
	for _, c := range clients {
		if c != nil {
			<-c.done
		}
	}
}

// readRSS returns a process's resident set size in KiB.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("server RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("server RSS: no VmRSS in /proc/%d/status", pid)
}
