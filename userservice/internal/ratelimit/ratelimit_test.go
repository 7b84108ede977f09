package ratelimit_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/platform/testenv"
	"github.com/parleyhq/parley/userservice/internal/ratelimit"
	"github.com/parleyhq/parley/userservice/internal/users"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

type clock struct{ ms atomic.Int64 }

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// newLimiter returns a limiter with a unique key prefix, its clock, the
// Redis client and the prefix; the keys are deleted when the test ends.
func newLimiter(t *testing.T, cfg ratelimit.Config) (*ratelimit.Limiter, *clock, *redis.Client, string) {
	t.Helper()
	rdb := testenv.New(t).Redis(t)
	c := &clock{}
	c.ms.Store(time.Now().UnixMilli())
	cfg.Prefix = testenv.Unique("rl") + ":"
	cfg.Clock = c.Now
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := rdb.Keys(ctx, cfg.Prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return ratelimit.New(rdb, cfg), c, rdb, cfg.Prefix
}

func TestAccountLockoutWithBackoff(t *testing.T) {
	l, clk, _, _ := newLimiter(t, ratelimit.Config{
		MaxFailures: 3, MaxIPFailures: 100, BaseLockout: 10 * time.Second, MaxLockout: 35 * time.Second, Window: time.Hour,
	})
	ctx := context.Background()
	a := users.LoginAttempt{Login: "alice", ClientIP: "192.0.2.1"}
	steps := []struct {
		wantLock time.Duration // returned by Failed
	}{
		{0}, {0}, // below the threshold
		{10 * time.Second}, // 3rd failure: base
		{20 * time.Second}, // doubles
		{35 * time.Second}, // capped (40s > 35s)
		{35 * time.Second},
	}
	for i, st := range steps {
		wait, err := l.Wait(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if wait != 0 {
			t.Fatalf("attempt %d: Wait = %s before the lockout passed; the test clock should have moved past it", i+1, wait)
		}
		lock, err := l.Failed(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if lock != st.wantLock {
			t.Fatalf("failure %d: lockout %s, want %s", i+1, lock, st.wantLock)
		}
		if lock > 0 {
			// During the lockout every attempt waits, whatever the password.
			clk.Advance(lock - time.Second)
			if wait, _ := l.Wait(ctx, a); wait != time.Second {
				t.Fatalf("failure %d: Wait 1s before the end = %s", i+1, wait)
			}
			clk.Advance(time.Second)
		}
	}
	// Success clears the account (not the IP).
	if err := l.Succeeded(ctx, a); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if lock, _ := l.Failed(ctx, a); lock != 0 {
			t.Fatalf("failure %d after a reset locked for %s", i+1, lock)
		}
	}
}

func TestIPLockoutAcrossAccounts(t *testing.T) {
	l, _, _, _ := newLimiter(t, ratelimit.Config{MaxFailures: 100, MaxIPFailures: 4, BaseLockout: time.Minute})
	ctx := context.Background()
	for i := range 4 {
		a := users.LoginAttempt{Login: "user" + string(rune('a'+i)), ClientIP: "2001:db8::1"}
		if _, err := l.Failed(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// A fifth account from the same address must wait; from elsewhere not.
	if wait, _ := l.Wait(ctx, users.LoginAttempt{Login: "usere", ClientIP: "2001:db8::1"}); wait != time.Minute {
		t.Fatalf("same IP: Wait = %s, want 1m", wait)
	}
	if wait, _ := l.Wait(ctx, users.LoginAttempt{Login: "usere", ClientIP: "2001:db8::2"}); wait != 0 {
		t.Fatalf("other IP: Wait = %s, want 0", wait)
	}
	if wait, _ := l.Wait(ctx, users.LoginAttempt{Login: "usere"}); wait != 0 {
		t.Fatalf("no IP: Wait = %s, want 0", wait)
	}
}

func TestKeysAreHashedAndExpire(t *testing.T) {
	l, _, rdb, prefix := newLimiter(t, ratelimit.Config{MaxFailures: 1, BaseLockout: time.Minute, Window: time.Hour})
	ctx := context.Background()
	if _, err := l.Failed(ctx, users.LoginAttempt{Login: "secret@example.com", ClientIP: "198.51.100.7"}); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var mine int
	for _, k := range keys {
		if strings.Contains(k, "secret@example.com") {
			t.Fatalf("key %q holds the email address", k)
		}
		if !strings.Contains(k, ":login:") {
			continue
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(k, ":login:acct:"):
			mine++
			// Locked (threshold 1): lockout (1m) plus window (1h).
			if ttl <= time.Hour || ttl > time.Hour+time.Minute {
				t.Errorf("account key %s TTL = %s, want about 1h1m", k, ttl)
			}
		case strings.Contains(k, ":login:ip:198.51.100.7"):
			mine++
			// Not locked (threshold 50): just the window.
			if ttl <= time.Hour-time.Minute || ttl > time.Hour {
				t.Errorf("IP key %s TTL = %s, want about 1h", k, ttl)
			}
		}
	}
	if mine < 2 {
		t.Fatalf("found %d of the limiter's keys among %v", mine, keys)
	}
}
