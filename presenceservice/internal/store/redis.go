// Package store holds the storage adapters of the presence service: the
// live state in Redis (RedisState, with its Lua scripts) and the durable
// last-seen times and status lines in MongoDB (MongoStore). They implement
// the interfaces package presence declares.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/presenceservice/internal/presence"
)

// Defaults of RedisConfig.
const (
	DefaultPrefix    = "parley:presence:"
	DefaultRetention = 7 * 24 * time.Hour
	// DefaultUnknownTTL keeps the "nothing stored" answer for a user the
	// durable store does not know briefly, so probing random ids does not
	// fill Redis.
	DefaultUnknownTTL = 10 * time.Minute
	// DefaultTimeout bounds each Redis round trip when the context has no
	// earlier deadline.
	DefaultTimeout = 5 * time.Second
	// sweepChunk is how many connections one sweep script removes: large
	// enough to be quick, small enough not to stall Redis.
	sweepChunk = 200
)

// RedisConfig configures RedisState. Zero values mean the defaults.
type RedisConfig struct {
	// Prefix starts every key (default "parley:presence:").
	Prefix string
	// Retention is how long an offline user's state stays in Redis
	// (default 7 days); MongoDB keeps last_seen beyond it.
	Retention time.Duration
	// UnknownTTL is how long Redis remembers that a user has no durable
	// state (default 10 minutes).
	UnknownTTL time.Duration
	// NodeTimeout is the TTL of a node's liveness key (default 15s).
	NodeTimeout time.Duration
	// Timeout bounds each round trip (default 5s).
	Timeout time.Duration
}

// RedisState is presence.StateStore on Redis.
type RedisState struct {
	rdb *redis.Client
	cfg RedisConfig
}

var _ presence.StateStore = (*RedisState)(nil)

// NewRedisState returns a RedisState on rdb; it does not own rdb.
func NewRedisState(rdb *redis.Client, cfg RedisConfig) *RedisState {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.UnknownTTL <= 0 {
		cfg.UnknownTTL = DefaultUnknownTTL
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = presence.DefaultHeartbeatInterval * 3 / 2
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &RedisState{rdb: rdb, cfg: cfg}
}

// Prefix returns the key prefix.
func (s *RedisState) Prefix() string { return s.cfg.Prefix }

func (s *RedisState) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// args returns the arguments every state-changing script starts with.
func (s *RedisState) args(now time.Time, more ...any) []any {
	return append([]any{s.cfg.Prefix, ms(now), ms64(s.cfg.Retention)}, more...)
}

// run runs a state-changing script and decodes its reply: the first
// element (a list of strings) and the transitions after it.
func (s *RedisState) run(ctx context.Context, script *redis.Script, args []any) ([]string, []presence.Transition, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	res, err := script.Run(ctx, s.rdb, nil, args...).Slice()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRedis, err)
	}
	if len(res) == 0 {
		return nil, nil, fmt.Errorf("%w: empty script reply", ErrBadReply)
	}
	head, err := stringList(res[0])
	if err != nil {
		return nil, nil, err
	}
	ts := make([]presence.Transition, 0, len(res)-1)
	for _, r := range res[1:] {
		t, err := parseTransition(r)
		if err != nil {
			return nil, nil, err
		}
		ts = append(ts, t)
	}
	return head, ts, nil
}

// Connect implements presence.StateStore.
func (s *RedisState) Connect(ctx context.Context, userID, connID, nodeID string, now time.Time) ([]presence.Transition, error) {
	_, ts, err := s.run(ctx, connectScript, s.args(now, userID, connID, nodeID))
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: connect returned no transition", ErrBadReply)
	}
	return ts, nil
}

// Disconnect implements presence.StateStore.
func (s *RedisState) Disconnect(ctx context.Context, userID, connID, nodeID string, now time.Time) (presence.Transition, error) {
	return s.one(ctx, disconnectScript, s.args(now, userID, connID, nodeID))
}

// SetStatus implements presence.StateStore.
func (s *RedisState) SetStatus(ctx context.Context, userID string, st presence.Status, message *string, now time.Time) (presence.Transition, error) {
	set, msg := "0", ""
	if message != nil {
		set, msg = "1", *message
	}
	return s.one(ctx, setStatusScript, s.args(now, userID, string(st), set, msg))
}

func (s *RedisState) one(ctx context.Context, script *redis.Script, args []any) (presence.Transition, error) {
	_, ts, err := s.run(ctx, script, args)
	if err != nil {
		return presence.Transition{}, err
	}
	if len(ts) != 1 {
		return presence.Transition{}, fmt.Errorf("%w: %d transitions, want 1", ErrBadReply, len(ts))
	}
	return ts[0], nil
}

// Heartbeat implements presence.StateStore. The usual heartbeat, from a
// node that holds no connection it did not report, is plain pipelined
// commands (see heartbeatKnown); only a node holding unreported
// connections runs the script, which prunes them atomically. A script
// blocks every other client for its whole run on the embedded Redis
// (miniredis has one lock), and checking 10,000 connections in it took
// 25-40 ms, which delayed every message sent meanwhile.
func (s *RedisState) Heartbeat(ctx context.Context, nodeID string, connIDs []string, now, pruneBefore time.Time) ([]string, []presence.Transition, error) {
	unknown, complete, err := s.heartbeatKnown(ctx, nodeID, connIDs, now)
	if err != nil {
		return nil, nil, err
	}
	if complete {
		return unknown, nil, nil
	}
	args := make([]any, 0, 6+len(connIDs))
	args = append(args, s.args(now, nodeID, ms64(s.cfg.NodeTimeout), ms(pruneBefore))...)
	for _, c := range connIDs {
		args = append(args, c)
	}
	return s.run(ctx, heartbeatScript, args)
}

// heartbeatKnown records the node's sign of life and looks its
// connections up, in one pipelined round trip: the node's liveness key,
// its score in the nodes index (ZADD GT: never moved back), HMGET of the
// connection ids in chunks, and the count of connections the node holds.
// It returns the ids the node's hash does not hold, and whether the node
// holds no others (complete): then nothing is to be pruned. The steps are
// not atomic together; a connection added meanwhile makes the count
// higher (not complete: the script decides), one removed meanwhile only
// makes it lower.
func (s *RedisState) heartbeatKnown(ctx context.Context, nodeID string, connIDs []string, now time.Time) (unknown []string, complete bool, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	nk := s.cfg.Prefix + "nc:" + nodeID
	var gets []*redis.SliceCmd
	var held *redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.cfg.Prefix+"n:"+nodeID, ms(now), s.cfg.NodeTimeout)
		p.ZAddGT(ctx, s.cfg.Prefix+"nodes", redis.Z{Score: float64(now.UnixMilli()), Member: nodeID})
		for i := 0; i < len(connIDs); i += heartbeatLookupChunk {
			gets = append(gets, p.HMGet(ctx, nk, connIDs[i:min(i+heartbeatLookupChunk, len(connIDs))]...))
		}
		held = p.HLen(ctx, nk)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("%w: heartbeat: %w", ErrRedis, err)
	}
	known := 0
	for i, get := range gets {
		for j, v := range get.Val() {
			if v == nil {
				unknown = append(unknown, connIDs[i*heartbeatLookupChunk+j])
			} else {
				known++
			}
		}
	}
	return unknown, held.Val() <= int64(known), nil
}

// heartbeatLookupChunk is how many connection ids one HMGET of a
// heartbeat asks for.
const heartbeatLookupChunk = 1000

// Load implements presence.StateStore with one pipelined round trip.
func (s *RedisState) Load(ctx context.Context, userIDs []string) ([]presence.Record, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	hs := make([]*redis.SliceCmd, len(userIDs))
	ns := make([]*redis.IntCmd, len(userIDs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range userIDs {
			hs[i] = p.HMGet(ctx, s.cfg.Prefix+"u:"+u, "st", "ls", "ca", "v", "m", "h")
			ns[i] = p.SCard(ctx, s.cfg.Prefix+"uc:"+u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: load: %w", ErrRedis, err)
	}
	out := make([]presence.Record, len(userIDs))
	for i, u := range userIDs {
		r := presence.Record{UserID: u, Devices: int(ns[i].Val())}
		f := hs[i].Val()
		str := func(j int) (string, bool) {
			v, ok := f[j].(string)
			return v, ok
		}
		if v, ok := str(0); ok {
			r.Chosen = presence.Status(v)
		}
		if v, ok := str(1); ok {
			r.LastSeen = fromMS(v)
		}
		if v, ok := str(2); ok {
			r.ChangedAt = fromMS(v)
		}
		if v, ok := str(3); ok {
			r.Version, _ = strconv.ParseInt(v, 10, 64)
		}
		r.Message, r.HasMessage = str(4)
		_, r.Hydrated = str(5)
		out[i] = r
	}
	return out, nil
}

// Hydrate implements presence.StateStore.
func (s *RedisState) Hydrate(ctx context.Context, ds []presence.Durable) error {
	if len(ds) == 0 {
		return nil
	}
	args := make([]any, 0, 3+5*len(ds))
	args = append(args, s.cfg.Prefix, ms64(s.cfg.Retention), ms64(s.cfg.UnknownTTL))
	for _, d := range ds {
		found, ls, hasMsg := "0", "", "0"
		if !d.LastSeen.IsZero() {
			found, ls = "1", ms(d.LastSeen)
		}
		if d.HasMessage {
			found, hasMsg = "1", "1"
		}
		args = append(args, d.UserID, found, ls, hasMsg, d.Message)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := hydrateScript.Run(ctx, s.rdb, nil, args...).Err(); err != nil {
		return fmt.Errorf("%w: hydrate: %w", ErrRedis, err)
	}
	return nil
}

// StaleNodes implements presence.StateStore.
func (s *RedisState) StaleNodes(ctx context.Context, cutoff time.Time) ([]presence.Node, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.cfg.Prefix+"nodes", &redis.ZRangeBy{
		Min: "-inf",
		Max: strconv.FormatInt(cutoff.UnixMilli(), 10),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: stale nodes: %w", ErrRedis, err)
	}
	out := make([]presence.Node, 0, len(zs))
	for _, z := range zs {
		id, _ := z.Member.(string)
		out = append(out, presence.Node{ID: id, LastBeat: time.UnixMilli(int64(math.Round(z.Score)))})
	}
	return out, nil
}

// LockNode implements presence.StateStore with SET NX PX and a random
// token, so only the holder can release it.
func (s *RedisState) LockNode(ctx context.Context, nodeID string, ttl time.Duration) (func(context.Context) error, bool, error) {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go >= 1.24)
	token := hex.EncodeToString(raw[:])
	key := s.cfg.Prefix + "lock:sweep:" + nodeID
	cctx, cancel := s.withTimeout(ctx)
	defer cancel()
	err := s.rdb.SetArgs(cctx, key, token, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock %s: %w", ErrRedis, key, err)
	}
	unlock := func(ctx context.Context) error {
		ctx, cancel := s.withTimeout(ctx)
		defer cancel()
		if err := unlockScript.Run(ctx, s.rdb, []string{key}, token).Err(); err != nil {
			return fmt.Errorf("%w: unlock %s: %w", ErrRedis, key, err)
		}
		return nil
	}
	return unlock, true, nil
}

// SweepNode implements presence.StateStore. It lists the node's
// connections with HSCAN and removes them in chunks, each chunk atomic and
// re-checking that the node is still silent.
func (s *RedisState) SweepNode(ctx context.Context, nodeID string, cutoff, now time.Time) ([]presence.Transition, error) {
	conns, err := s.nodeConnections(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	var all []presence.Transition
	for i := 0; i < len(conns); i += sweepChunk {
		args := s.args(now, nodeID, ms(cutoff))
		for _, c := range conns[i:min(i+sweepChunk, len(conns))] {
			args = append(args, c)
		}
		head, ts, err := s.run(ctx, sweepScript, args)
		if err != nil {
			return all, err
		}
		all = append(all, ts...)
		if len(head) > 0 && head[0] == "alive" {
			return all, nil
		}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := forgetNodeScript.Run(ctx, s.rdb, nil, s.cfg.Prefix, nodeID, ms(cutoff)).Err(); err != nil {
		return all, fmt.Errorf("%w: forget node %s: %w", ErrRedis, nodeID, err)
	}
	return all, nil
}

func (s *RedisState) nodeConnections(ctx context.Context, nodeID string) ([]string, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	var conns []string
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, s.cfg.Prefix+"nc:"+nodeID, cursor, "*", sweepChunk).Result()
		if err != nil {
			return nil, fmt.Errorf("%w: list connections of %s: %w", ErrRedis, nodeID, err)
		}
		for i := 0; i < len(kv); i += 2 {
			conns = append(conns, kv[i])
		}
		if next == 0 {
			// HSCAN may return an element twice; the sweep script ignores
			// connections already gone.
			return conns, nil
		}
		cursor = next
	}
}

// parseTransition decodes settle's tuple (see scripts.go).
func parseTransition(v any) (presence.Transition, error) {
	f, ok := v.([]any)
	if !ok || len(f) != 12 {
		return presence.Transition{}, fmt.Errorf("%w: transition %v", ErrBadReply, v)
	}
	str := func(i int) string {
		switch x := f[i].(type) {
		case string:
			return x
		case int64:
			return strconv.FormatInt(x, 10)
		}
		return ""
	}
	num := func(i int) int64 {
		switch x := f[i].(type) {
		case int64:
			return x
		case string:
			n, _ := strconv.ParseFloat(x, 64)
			return int64(n)
		}
		return 0
	}
	r := presence.Record{
		UserID:     str(0),
		Chosen:     presence.Status(str(8)),
		Devices:    int(num(4)),
		LastSeen:   fromMS(str(3)),
		Message:    str(9),
		HasMessage: num(10) == 1,
		ChangedAt:  fromMS(str(5)),
		Version:    num(6),
		Hydrated:   str(11) != "",
	}
	t := presence.Transition{Record: r, Changed: num(1) == 1, WentOffline: num(7) == 1}
	if got, want := presence.Status(str(2)), r.Visible(); got != want {
		// The script and presence.Record.Visible disagree: a bug, not a
		// state to publish.
		return presence.Transition{}, fmt.Errorf("%w: script says %s, rules say %s for %s", ErrBadReply, got, want, r.UserID)
	}
	return t, nil
}

func stringList(v any) ([]string, error) {
	xs, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: want a list, got %T", ErrBadReply, v)
	}
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%w: want a string, got %T", ErrBadReply, x)
		}
		out = append(out, s)
	}
	return out, nil
}

// ms formats t as unix milliseconds; the zero time is "0".
func ms(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

func ms64(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// fromMS parses unix milliseconds (as Redis may format them: integer or
// float notation); "", "0" and garbage are the zero time.
func fromMS(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(math.Round(n)))
}
