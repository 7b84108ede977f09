// Package ratelimit throttles failed logins in Redis, per account and per
// client IP, with exponential backoff.
//
// Each key (one per normalised login, one per client IP) is a hash holding
// the failure count and the time the current lockout ends. A failure
// increments the count; from the threshold on, every further failure locks
// the key for Base * 2^(failures - threshold), capped at Max. The key lives
// for the lockout plus the window, so failures spread further apart than
// the window are forgotten. Attempts during a lockout are refused without
// checking the password (so a correct password is refused too) and are not
// counted. A successful login clears the account's key, not the IP's.
//
// Logins are hashed in the key names, so Redis holds no email addresses.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/userservice/internal/users"
)

// Defaults for Config's zero values.
const (
	DefaultPrefix        = "parley:user:"
	DefaultMaxFailures   = 5
	DefaultMaxIPFailures = 50
	DefaultWindow        = 15 * time.Minute
	DefaultBaseLockout   = 30 * time.Second
	DefaultMaxLockout    = 15 * time.Minute
	// maxDoublings keeps Base * 2^n from overflowing long before the cap.
	maxDoublings = 30
)

// Config tunes the limiter; zero values mean the defaults.
type Config struct {
	// Prefix starts every key (default "parley:user:"); tests sharing a
	// Redis use unique ones.
	Prefix string
	// MaxFailures per account and MaxIPFailures per client IP before the
	// first lockout (default 5 and 50: one address may be a NAT for many
	// people).
	MaxFailures, MaxIPFailures int
	// Window: failures further apart than this do not add up (default 15m).
	Window time.Duration
	// BaseLockout is the first lockout, doubled with every further failure
	// up to MaxLockout (default 30s and 15m).
	BaseLockout, MaxLockout time.Duration
	// Clock returns the current time (default time.Now); lockout ends are
	// compared against it.
	Clock func() time.Time
}

// Limiter implements users.LoginLimiter on Redis.
type Limiter struct {
	rdb redis.UniversalClient
	cfg Config
}

var _ users.LoginLimiter = (*Limiter)(nil)

// New returns a limiter on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Limiter {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.MaxIPFailures <= 0 {
		cfg.MaxIPFailures = DefaultMaxIPFailures
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.BaseLockout <= 0 {
		cfg.BaseLockout = DefaultBaseLockout
	}
	if cfg.MaxLockout <= 0 {
		cfg.MaxLockout = DefaultMaxLockout
	}
	if cfg.MaxLockout < cfg.BaseLockout {
		cfg.MaxLockout = cfg.BaseLockout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Limiter{rdb: rdb, cfg: cfg}
}

// field names inside a key's hash.
const (
	fieldFailures = "n"
	fieldUntil    = "until" // unix milliseconds
)

// failScript records a failure on KEYS[1] and returns the lockout in ms.
// ARGV: now (ms), threshold, base (ms), cap (ms), window (ms), max doublings.
var failScript = redis.NewScript(`
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local threshold = tonumber(ARGV[2])
local lock = 0
if n >= threshold then
  local doublings = math.min(n - threshold, tonumber(ARGV[6]))
  lock = math.min(tonumber(ARGV[3]) * (2 ^ doublings), tonumber(ARGV[4]))
  lock = math.floor(lock)
  redis.call('HSET', KEYS[1], 'until', tonumber(ARGV[1]) + lock)
end
redis.call('PEXPIRE', KEYS[1], lock + tonumber(ARGV[5]))
return lock
`)

// Wait returns how long the attempt must wait: the longer of the account's
// and the IP's remaining lockouts.
func (l *Limiter) Wait(ctx context.Context, a users.LoginAttempt) (time.Duration, error) {
	keys := l.keys(a)
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGet(ctx, k.name, fieldUntil)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("ratelimit: read lockouts: %w", err)
	}
	now := l.cfg.Clock().UnixMilli()
	var wait int64
	for _, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("ratelimit: read lockout: %w", err)
		}
		until, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ratelimit: lockout %q: %w", v, err)
		}
		wait = max(wait, until-now)
	}
	return time.Duration(wait) * time.Millisecond, nil
}

// Failed records a failure for the account and the IP and returns the
// longer of the lockouts it caused.
func (l *Limiter) Failed(ctx context.Context, a users.LoginAttempt) (time.Duration, error) {
	now := l.cfg.Clock().UnixMilli()
	var lock int64
	for _, k := range l.keys(a) {
		ms, err := failScript.Run(ctx, l.rdb, []string{k.name},
			now, k.threshold, l.cfg.BaseLockout.Milliseconds(), l.cfg.MaxLockout.Milliseconds(),
			l.cfg.Window.Milliseconds(), maxDoublings).Int64()
		if err != nil {
			return 0, fmt.Errorf("ratelimit: record failure: %w", err)
		}
		lock = max(lock, ms)
	}
	return time.Duration(lock) * time.Millisecond, nil
}

// Succeeded forgets the account's failures. The IP's stay: one good
// password must not let an address guess freely at other accounts.
func (l *Limiter) Succeeded(ctx context.Context, a users.LoginAttempt) error {
	if err := l.rdb.Del(ctx, l.accountKey(a.Login)).Err(); err != nil {
		return fmt.Errorf("ratelimit: reset: %w", err)
	}
	return nil
}

type limitKey struct {
	name      string
	threshold int
}

func (l *Limiter) keys(a users.LoginAttempt) []limitKey {
	ks := []limitKey{{l.accountKey(a.Login), l.cfg.MaxFailures}}
	if a.ClientIP != "" {
		ks = append(ks, limitKey{l.cfg.Prefix + "login:ip:" + a.ClientIP, l.cfg.MaxIPFailures})
	}
	return ks
}

func (l *Limiter) accountKey(login string) string {
	sum := sha256.Sum256([]byte(login))
	return l.cfg.Prefix + "login:acct:" + hex.EncodeToString(sum[:16])
}
