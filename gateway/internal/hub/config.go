package hub

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	chatv1 "github.com/parleyhq/parley/apis/gen/go/parley/chat/v1"
	presencev1 "github.com/parleyhq/parley/apis/gen/go/parley/presence/v1"
	userv1 "github.com/parleyhq/parley/apis/gen/go/parley/user/v1"
	"github.com/parleyhq/parley/gateway/internal/hub/ratelimit"
	"github.com/parleyhq/parley/platform/auth"
)

// Config assembles a Hub. Zero values mean the defaults documented on each
// field.
type Config struct {
	// Chat authorises joins and stores messages. Required.
	Chat chatv1.ChatServiceClient
	// Presence receives Connect/Disconnect/Heartbeat and set_status; nil
	// turns presence reporting off (user_online/user_offline frames still
	// flow from NATS).
	Presence presencev1.PresenceServiceClient
	// Users lists a user's friends, whose presence the user follows; nil
	// means only channel members are followed.
	Users userv1.UserServiceClient
	// NATS carries the realtime frames. Required. The hub does not own it;
	// it should reconnect forever (the hub replays what an outage lost).
	NATS *nats.Conn
	// Verifier checks access tokens. Required.
	Verifier auth.TokenVerifier
	// ServiceToken authenticates the hub's internal calls (CheckAccess,
	// Connect, Disconnect, Heartbeat).
	ServiceToken string
	// NodeID names this gateway replica to the presence service (default
	// hostname plus a random suffix). It must match [A-Za-z0-9_.:-]{1,128}.
	NodeID string
	// SubjectPrefix is prepended to every NATS subject (rt.channel.<id>,
	// presence.<id>), e.g. "tenant1."; the services must use the same.
	SubjectPrefix string
	// AllowedOrigins lists browser origins ("https://chat.example.com")
	// allowed besides the same origin; "*" allows every origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// ClientIP returns the address connection caps count against (default
	// the host of RemoteAddr). Behind a trusted proxy, read its header here.
	ClientIP func(*http.Request) string
	// Registry receives the hub's metrics; nil means a private registry
	// (see Hub.Metrics).
	Registry *prometheus.Registry
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock (default time.Now); tests inject theirs.
	Now func() time.Time
	// BlockingReads reads every connection on a goroutine of its own
	// instead of the shared read poller (epoll). Connections cost about
	// 4 KiB more each; it is what systems other than Linux always get.
	BlockingReads bool
	// Limits bound what one connection, user and address may do.
	Limits Limits
}

// Limits are the hub's bounds. Zero values mean the defaults; where noted a
// negative value turns a limit off.
type Limits struct {
	// AuthTimeout: an unauthenticated connection must authenticate within
	// this time or is closed with 4001 (default 5 s).
	AuthTimeout time.Duration
	// MaxMessageBytes is the largest frame read; larger ones close the
	// connection with 1009 (default 64 KiB).
	MaxMessageBytes int64
	// SendQueueSize is the number of frames queued per connection; a
	// connection whose queue overflows is closed with 4013 (default 256).
	SendQueueSize int
	// PingInterval between WebSocket pings to each connection (default 25 s).
	PingInterval time.Duration
	// PongWait: a connection silent (no frame, no pong) this long is dead
	// (default 60 s).
	PongWait time.Duration
	// WriteWait bounds one write to a socket (default 10 s). The socket's
	// deadline is moved lazily (deadline.go), so a write may time out up
	// to a quarter of WriteWait early.
	WriteWait time.Duration
	// CallTimeout bounds each call to a service (default 10 s).
	CallTimeout time.Duration
	// DrainTimeout bounds how long Run waits for connections to close on
	// shutdown before dropping them (default 10 s).
	DrainTimeout time.Duration
	// HeartbeatInterval between batched presence heartbeats (default 10 s).
	HeartbeatInterval time.Duration
	// MaxConnsPerIP caps concurrent connections per client address
	// (default 50; negative: unlimited).
	MaxConnsPerIP int
	// MaxConnsPerUser caps concurrent connections per user (default 20;
	// negative: unlimited).
	MaxConnsPerUser int
	// MaxSetups caps the connections being set up at once, from the
	// upgrade request (or the authenticate frame) through authentication,
	// the presence connect and the friends lookup (default 8 per CPU;
	// negative: unlimited). Beyond it new connections queue. In a
	// reconnect storm (every client of a restarted replica at once) the
	// setups would otherwise all run together, each holding request
	// buffers, a deep goroutine stack and service calls: 10,000 at once
	// took the all-in-one from 0.1 to 1.4 GB, and it kept 28 KiB per idle
	// connection after. Setups are mostly CPU, so a few per CPU keep the
	// pace; more only add deep stacks, and the runtime starts new
	// goroutines on the average stack in use, so 64 at once on two CPUs
	// doubled the stacks of the read loops connections had then
	// (docs/performance.md).
	// Teardowns take the same slots for their presence disconnect: 10,000
	// clients leaving at once took the all-in-one from 0.27 to 0.75 GB.
	MaxSetups int
	// SetupWait is how long a new connection waits for a setup slot before
	// it is refused (default 10 s): with HTTP 503 and Retry-After on the
	// upgrade request, or with error rate_limited and close code 1013 after
	// an authenticate frame. A teardown that waits as long skips its
	// presence disconnect: the next heartbeat no longer lists the
	// connection, and the presence service drops it then.
	SetupWait time.Duration
	// MaxChannelsPerConn caps the channels one connection joins (default 500).
	MaxChannelsPerConn int
	// MaxSyncMessages bounds the messages one sync (or one recovery after a
	// NATS outage) replays per channel (default 1000).
	MaxSyncMessages int
	// MaxSyncChannels bounds the channels of one sync frame (default 100).
	MaxSyncChannels int
	// PresenceMembers is how many members of a joined channel the hub
	// follows for user_online/user_offline (default 200).
	PresenceMembers int
	// MaxFriends is how many friends of a user the hub follows (default 500).
	MaxFriends int
	// TypingThrottle: at most one user_typing per user per channel per
	// interval crosses NATS (default 2 s).
	TypingThrottle time.Duration
	// ReceiptInterval coalesces delivered receipts per user and channel
	// (default 500 ms).
	ReceiptInterval time.Duration
	// ReceiptMaxMembers: delivered receipts are published only in group and
	// private channels of at most this many members, so a big channel does
	// not turn every message into a storm of receipts (default 32; negative:
	// never).
	ReceiptMaxMembers int
	// Per-connection token buckets per frame class.
	Messages ratelimit.Rate // send/edit/delete_message (default 10/s, burst 20)
	Typing   ratelimit.Rate // user_typing (default 1 per 2 s, burst 1)
	Joins    ratelimit.Rate // join_channel, leave_channel, sync (default 20/s, burst 20)
	Other    ratelimit.Rate // everything else (default 20/s, burst 40)
	// AbuseThreshold rate-limited or malformed frames within AbuseWindow
	// close the connection with 4008 (default 30 in 10 s; negative: never).
	AbuseThreshold int
	AbuseWindow    time.Duration
	// ReconnectCheckInterval is how often the hub looks for a NATS
	// reconnection to replay what the outage lost (default 250 ms).
	ReconnectCheckInterval time.Duration
}

// DefaultLimits returns the limits zero values stand for.
func DefaultLimits() Limits {
	return Limits{
		AuthTimeout:            5 * time.Second,
		MaxMessageBytes:        64 << 10,
		SendQueueSize:          256,
		PingInterval:           25 * time.Second,
		PongWait:               60 * time.Second,
		WriteWait:              10 * time.Second,
		CallTimeout:            10 * time.Second,
		DrainTimeout:           10 * time.Second,
		HeartbeatInterval:      10 * time.Second,
		MaxConnsPerIP:          50,
		MaxConnsPerUser:        20,
		MaxSetups:              8 * runtime.GOMAXPROCS(0),
		SetupWait:              10 * time.Second,
		MaxChannelsPerConn:     500,
		MaxSyncMessages:        1000,
		MaxSyncChannels:        100,
		PresenceMembers:        200,
		MaxFriends:             500,
		TypingThrottle:         2 * time.Second,
		ReceiptInterval:        500 * time.Millisecond,
		ReceiptMaxMembers:      32,
		Messages:               ratelimit.PerSecond(10, 20),
		Typing:                 ratelimit.Rate{Every: 2 * time.Second, Burst: 1},
		Joins:                  ratelimit.PerSecond(20, 20),
		Other:                  ratelimit.PerSecond(20, 40),
		AbuseThreshold:         30,
		AbuseWindow:            10 * time.Second,
		ReconnectCheckInterval: 250 * time.Millisecond,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	durations := []struct{ v, def *time.Duration }{
		{&l.AuthTimeout, &d.AuthTimeout}, {&l.PingInterval, &d.PingInterval},
		{&l.PongWait, &d.PongWait}, {&l.WriteWait, &d.WriteWait},
		{&l.CallTimeout, &d.CallTimeout}, {&l.DrainTimeout, &d.DrainTimeout},
		{&l.HeartbeatInterval, &d.HeartbeatInterval}, {&l.TypingThrottle, &d.TypingThrottle},
		{&l.ReceiptInterval, &d.ReceiptInterval}, {&l.AbuseWindow, &d.AbuseWindow},
		{&l.ReconnectCheckInterval, &d.ReconnectCheckInterval}, {&l.SetupWait, &d.SetupWait},
	}
	for _, f := range durations {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	ints := []struct{ v, def *int }{
		{&l.SendQueueSize, &d.SendQueueSize}, {&l.MaxConnsPerIP, &d.MaxConnsPerIP},
		{&l.MaxConnsPerUser, &d.MaxConnsPerUser}, {&l.MaxChannelsPerConn, &d.MaxChannelsPerConn},
		{&l.MaxSyncMessages, &d.MaxSyncMessages}, {&l.MaxSyncChannels, &d.MaxSyncChannels},
		{&l.PresenceMembers, &d.PresenceMembers}, {&l.MaxFriends, &d.MaxFriends},
		{&l.ReceiptMaxMembers, &d.ReceiptMaxMembers}, {&l.AbuseThreshold, &d.AbuseThreshold},
		{&l.MaxSetups, &d.MaxSetups},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	rates := []struct{ v, def *ratelimit.Rate }{
		{&l.Messages, &d.Messages}, {&l.Typing, &d.Typing}, {&l.Joins, &d.Joins}, {&l.Other, &d.Other},
	}
	for _, f := range rates {
		if f.v.Every <= 0 {
			*f.v = *f.def
		}
	}
	if l.SendQueueSize < 4 {
		l.SendQueueSize = 4 // flow control keeps half of it for live traffic
	}
	return l
}

func (c Config) validate() error {
	var missing []string
	if c.Chat == nil {
		missing = append(missing, "Chat")
	}
	if c.NATS == nil {
		missing = append(missing, "NATS")
	}
	if c.Verifier == nil {
		missing = append(missing, "Verifier")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrConfig, strings.Join(missing, ", ")+" required")
	}
	if c.NodeID != "" && !validNodeID(c.NodeID) {
		return fmt.Errorf("%w: NodeID %q must match [A-Za-z0-9_.:-]{1,128}", ErrConfig, c.NodeID)
	}
	if strings.ContainsAny(c.SubjectPrefix, "*> \t\r\n") {
		return fmt.Errorf("%w: SubjectPrefix %q contains a wildcard or space", ErrConfig, c.SubjectPrefix)
	}
	return nil
}

func validNodeID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '.', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

// defaultNodeID is the hostname (sanitised) plus a random suffix, so two
// gateways on one host (tests, the all-in-one) never share presence records.
func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gateway"
	}
	var b strings.Builder
	for _, r := range host {
		if b.Len() >= 100 {
			break
		}
		if r < 128 && validNodeID(string(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String() + "-" + randomID(4)
}

// randomID returns 2n hex characters.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b)
}

// remoteIP is the default Config.ClientIP.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
