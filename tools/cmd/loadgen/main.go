// Command loadgen drives Parley's WebSocket gateway with many concurrent
// clients and reports what it measured as JSON.
//
// Chat mode (the default) opens channels x members connections, each joined
// to its channel; senders (a subset of the clients, spread over the
// channels) send messages at a total rate (or, with --rate 0, as fast as
// their own messages come back: saturation). Every message carries its send
// time and index in its metadata, so each delivery yields a send->deliver
// latency and every recipient is accounted for: expected deliveries are the
// members connected to the channel when the message was sent, lost ones are
// those that never arrived.
//
// Idle mode opens --clients authenticated connections that only answer
// pings, and with --server-pid reports the server's resident memory per
// connection (VmRSS from /proc before and after).
//
// --broadcast-baseline runs the same traffic against a minimal gorilla
// broadcast server (read a frame, write it to every socket of the room),
// the yardstick for the gateway's efficiency: in-process, or, for a fair
// comparison (and file descriptors to spare), a separate process started
// with --mode baseline-server and named by --baseline-url.
//
// Clients spread over --source-ips (loopback addresses, each good for about
// 28,000 ephemeral ports), so 10,000s of connections need no tuning.
// Everything is bounded: connections, duration, rate and message count; the
// target must be a loopback address.
//
// Examples:
//
//	loadgen --register --channels 100 --members 100 --senders 100 --rate 200 \
//	    --duration 60s --source-ips 127.0.0.1-127.0.0.8
//	loadgen --mode baseline-server --listen 127.0.0.1:18090 &
//	loadgen --broadcast-baseline --baseline-url ws://127.0.0.1:18090/ws \
//	    --channels 100 --members 100 --senders 100 --rate 200
//	loadgen --mode idle --clients 10000 --tokens-file tokens.txt --server-pid $(pgrep parley)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Bounds that keep a typo from turning loadgen into something else.
const (
	maxClients     = 60000
	maxDuration    = 30 * time.Minute
	maxRate        = 100000
	maxSourceIPs   = 1024
	defaultDialers = 64
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if os.Getenv("GOGC") == "" {
		// loadgen shares the machine with the server it measures: it
		// trades memory (a few hundred MB for 10,000 clients) for fewer
		// collections, whose CPU the server would otherwise lose.
		debug.SetGCPercent(400)
	}
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.Error("loadgen failed", slog.Any("error", err))
		os.Exit(1)
	}
}

// config is the parsed command line.
type config struct {
	url, api        string
	mode            string
	clients         int
	channels        int
	members         int
	senders         int
	rate            float64
	window          int
	duration        time.Duration
	drain           time.Duration
	settle          time.Duration
	dialTimeout     time.Duration
	dialConcurrency int
	sourceIPs       []net.IP
	tokensFile      string
	token           string
	channelIDs      []string
	register        bool
	users           int
	registerPar     int
	password        string
	tokensOut       string
	baseline        bool
	baselineURL     string
	listen          string
	serverPID       int
	out             string
	contentBytes    int
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var sourceIPs, channelIDs string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "ws://127.0.0.1:8080/v1/ws", "WebSocket endpoint of the gateway")
	fs.StringVar(&c.api, "api", "", "REST base URL for --register (default: derived from --url)")
	fs.StringVar(&c.mode, "mode", "chat", "chat (traffic), idle (connections only, for memory) or baseline-server (serve the broadcast baseline on --listen)")
	fs.IntVar(&c.clients, "clients", 1000, "idle mode: connections to open")
	fs.IntVar(&c.channels, "channels", 10, "chat mode: channels")
	fs.IntVar(&c.members, "members", 10, "chat mode: connections per channel")
	fs.IntVar(&c.senders, "senders", 10, "chat mode: sending clients, spread over the channels")
	fs.Float64Var(&c.rate, "rate", 100, "chat mode: messages per second over all senders; 0 = saturation (closed loop)")
	fs.IntVar(&c.window, "window", 4, "with --rate 0: messages in flight per sender")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long to send (chat) or hold the connections (idle)")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "after sending stops, how long to wait for deliveries")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "idle mode: wait after connecting before reading the server's RSS")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 15*time.Second, "per-connection dial and handshake timeout")
	fs.IntVar(&c.dialConcurrency, "dial-concurrency", defaultDialers, "connections being opened at once")
	fs.StringVar(&sourceIPs, "source-ips", "127.0.0.1", "loopback source addresses: a,b,c or ranges like 127.0.0.1-127.0.0.40")
	fs.StringVar(&c.tokensFile, "tokens-file", "", `file of "<access token> [channel id]" lines, one per client (reused cyclically)`)
	fs.StringVar(&c.token, "token", "", "one access token for every client (the server's per-user cap applies)")
	fs.StringVar(&channelIDs, "channel-ids", "", "comma-separated channel ids for clients whose token line names none")
	fs.BoolVar(&c.register, "register", false, "register users and create/join channels over REST first")
	fs.IntVar(&c.users, "users", 0, "with --register: distinct users, reused cyclically over the connections (0: one per connection); mind the server's per-user connection cap")
	fs.IntVar(&c.registerPar, "register-concurrency", 16, "concurrent REST calls while registering")
	fs.StringVar(&c.password, "password", "loadgen-Passw0rd!", "password of registered users")
	fs.StringVar(&c.tokensOut, "tokens-out", "", "with --register: write the tokens file for later runs")
	fs.BoolVar(&c.baseline, "broadcast-baseline", false, "run the traffic against a minimal gorilla broadcast server (in-process, or --baseline-url)")
	fs.StringVar(&c.baselineURL, "baseline-url", "", "with --broadcast-baseline: a baseline server started with --mode baseline-server, e.g. ws://127.0.0.1:18090/ws")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:18090", "baseline-server mode: loopback address to listen on")
	fs.IntVar(&c.serverPID, "server-pid", 0, "read this process's VmRSS before and after connecting")
	fs.StringVar(&c.out, "out", "-", "where to write the JSON summary (- for stdout)")
	fs.IntVar(&c.contentBytes, "content-bytes", 100, "chat mode: message content size")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	ips, err := parseSourceIPs(sourceIPs)
	if err != nil {
		return c, err
	}
	c.sourceIPs = ips
	for _, id := range strings.Split(channelIDs, ",") {
		if id = strings.TrimSpace(id); id != "" {
			c.channelIDs = append(c.channelIDs, id)
		}
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch c.mode {
	case "chat", "idle":
	case "baseline-server":
		host, _, err := net.SplitHostPort(c.listen)
		if err != nil {
			return fmt.Errorf("--listen %q: %w", c.listen, err)
		}
		return requireLoopback(host)
	default:
		return fmt.Errorf("--mode %q: want chat, idle or baseline-server", c.mode)
	}
	if c.total() < 1 || c.total() > maxClients {
		return fmt.Errorf("%d connections: want 1..%d", c.total(), maxClients)
	}
	if c.duration <= 0 || c.duration > maxDuration || c.drain < 0 || c.drain > maxDuration {
		return fmt.Errorf("--duration and --drain must be within (0, %s]", maxDuration)
	}
	if c.mode == "chat" {
		if c.senders < 1 || c.senders > c.total() {
			return fmt.Errorf("--senders %d: want 1..%d", c.senders, c.total())
		}
		if c.rate < 0 || c.rate > maxRate {
			return fmt.Errorf("--rate %v: want 0..%d", c.rate, maxRate)
		}
		if c.rate == 0 && (c.window < 1 || c.window > 1000) {
			return fmt.Errorf("--window %d: want 1..1000", c.window)
		}
		if c.contentBytes < 1 || c.contentBytes > 3900 {
			return fmt.Errorf("--content-bytes %d: want 1..3900", c.contentBytes)
		}
	}
	if c.users < 0 || c.users > c.total() {
		return fmt.Errorf("--users %d: want 0..%d", c.users, c.total())
	}
	if c.dialConcurrency < 1 || c.dialConcurrency > 1024 {
		return fmt.Errorf("--dial-concurrency %d: want 1..1024", c.dialConcurrency)
	}
	if c.baselineURL != "" {
		u, err := url.Parse(c.baselineURL)
		if err != nil || u.Scheme != "ws" {
			return fmt.Errorf("--baseline-url %q: want ws://", c.baselineURL)
		}
		if err := requireLoopback(u.Hostname()); err != nil {
			return fmt.Errorf("--baseline-url: %w", err)
		}
	}
	if !c.baseline {
		u, err := url.Parse(c.url)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
			return fmt.Errorf("--url %q: want ws:// or wss://", c.url)
		}
		if err := requireLoopback(u.Hostname()); err != nil {
			return fmt.Errorf("--url: %w", err)
		}
		if c.api == "" {
			scheme := "http"
			if u.Scheme == "wss" {
				scheme = "https"
			}
			c.api = scheme + "://" + u.Host
		}
		sources := 0
		for _, s := range []bool{c.register, c.tokensFile != "", c.token != ""} {
			if s {
				sources++
			}
		}
		if sources != 1 {
			return errors.New("give exactly one of --register, --tokens-file, --token (or --broadcast-baseline)")
		}
	}
	return nil
}

// total is the number of connections the run opens.
func (c *config) total() int {
	if c.mode == "idle" {
		return c.clients
	}
	return c.channels * c.members
}

func requireLoopback(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: loadgen only targets this machine", host)
	}
	return nil
}

// parseSourceIPs reads "a,b,c" and "first-last" ranges of loopback IPv4
// addresses.
func parseSourceIPs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(first))
		if a == nil || !a.IsLoopback() {
			return nil, fmt.Errorf("--source-ips: %q is not a loopback address", first)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(last))
		a4, b4 := a.To4(), b.To4()
		if a4 == nil || b4 == nil || !b.IsLoopback() || a4[0] != b4[0] || a4[1] != b4[1] || a4[2] != b4[2] || a4[3] > b4[3] {
			return nil, fmt.Errorf("--source-ips: bad range %q (same /24, ascending, loopback)", part)
		}
		for i := int(a4[3]); i <= int(b4[3]); i++ {
			out = append(out, net.IPv4(a4[0], a4[1], a4[2], byte(i)))
		}
	}
	if len(out) == 0 || len(out) > maxSourceIPs {
		return nil, fmt.Errorf("--source-ips: want 1..%d addresses, got %d", maxSourceIPs, len(out))
	}
	return out, nil
}

// run is loadgen without the process around it.
func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.mode == "baseline-server" {
		return serveBaseline(ctx, cfg.listen, log)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+cfg.drain+cfg.settle+30*time.Minute)
	defer cancel()
	sum, err := execute(ctx, cfg, log)
	if err != nil {
		return err
	}
	w := stdout
	if cfg.out != "-" {
		f, err := os.Create(cfg.out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); cerr != nil {
				log.Error("close summary", slog.Any("error", cerr))
			}
		}()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}
