package auth

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier defaults; zero values in VerifierConfig mean these.
const (
	DefaultIssuer   = "parley"
	DefaultAudience = "parley"
	// DefaultRefreshInterval: how old the cached key set may get before it
	// is fetched again, so that a key removed from the user service stops
	// verifying within this time.
	DefaultRefreshInterval = 5 * time.Minute
	// DefaultMinRefetchInterval: at most one fetch per this interval, however
	// many tokens with unknown key ids arrive (no refetch storms from
	// garbage tokens).
	DefaultMinRefetchInterval = 10 * time.Second
	// DefaultLeeway tolerates clock skew between replicas on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultCacheSize is how many verified tokens are remembered.
	DefaultCacheSize = 10000
)

// MaxTokenBytes bounds the tokens the verifier looks at; Parley's tokens are
// a few hundred bytes, so anything longer is refused before any parsing.
const MaxTokenBytes = 8 << 10

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer and Audience the tokens must carry (default "parley" each).
	Issuer, Audience string
	// JWKS supplies the public keys. Required.
	JWKS KeySource
	// Clock returns the current time (default time.Now); tests inject it.
	Clock func() time.Time
	// RefreshInterval and MinRefetchInterval: see the defaults above.
	RefreshInterval, MinRefetchInterval time.Duration
	// Leeway on exp, nbf and iat (default DefaultLeeway).
	Leeway time.Duration
	// CacheSize bounds the cache of verified tokens (default
	// DefaultCacheSize; negative disables it). A client presents the same
	// access token on every request for up to 15 minutes, and the
	// signature check is most of the cost of verifying one; a token is
	// only served from the cache if it is byte for byte one that passed
	// the full check, has not expired, and its key is still in the key set.
	CacheSize int
	// Logger reports key-set fetch failures (default slog.Default()).
	Logger *slog.Logger
}

// keySet is one fetched generation of keys; it is never modified after it
// is published, so readers need no lock.
type keySet struct {
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
}

// Verifier checks Parley access tokens: EdDSA only, signed by a key of the
// user service's key set (looked up by the `kid` header), for the configured
// issuer and audience, not expired. It caches the key set, refreshes it
// every RefreshInterval and refetches it when a token names an unknown key,
// at most once per MinRefetchInterval. It is safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	parser *jwt.Parser

	set atomic.Pointer[keySet]
	// fetching serialises fetches (a one-slot semaphore, so waiting can
	// honour the caller's context).
	fetching chan struct{}
	// mu guards lastAttempt.
	mu          sync.Mutex
	lastAttempt time.Time

	cacheMu sync.RWMutex
	cache   map[string]cachedToken
}

// cachedToken is a token that passed every check.
type cachedToken struct {
	p   Principal
	kid string
	exp time.Time
}

var _ TokenVerifier = (*Verifier)(nil)

// NewVerifier returns a verifier; it fetches keys lazily, on the first
// Verify.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.JWKS == nil {
		return nil, fmt.Errorf("%w: no key source", ErrInvalidConfig)
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MinRefetchInterval <= 0 {
		cfg.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	v := &Verifier{
		cfg:      cfg,
		fetching: make(chan struct{}, 1),
		parser: jwt.NewParser(
			// Only EdDSA: "none", HS256 keyed with the public key and
			// every other algorithm fail before a key is looked up.
			jwt.WithValidMethods([]string{AlgorithmEdDSA}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(cfg.Clock),
			// Reject tokens with padding or stray bits in their base64:
			// one token, one encoding.
			jwt.WithStrictDecoding(),
		),
	}
	if cfg.CacheSize > 0 {
		v.cache = make(map[string]cachedToken, min(cfg.CacheSize, 1024))
	}
	return v, nil
}

// Verify checks token and returns the principal it names. Every rejection
// wraps ErrInvalidToken; a key set that cannot be fetched gives
// ErrKeysUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	if len(token) > MaxTokenBytes {
		return Principal{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidToken, MaxTokenBytes)
	}
	if p, ok := v.cached(token); ok {
		return p, nil
	}
	var (
		claims Claims
		kid    string
	)
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		kid, _ = t.Header["kid"].(string)
		return v.key(ctx, kid)
	})
	if err != nil {
		if errors.Is(err, ErrKeysUnavailable) {
			return Principal{}, err
		}
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if claims.Subject == "" || claims.SessionID == "" {
		return Principal{}, fmt.Errorf("%w: missing sub or sid", ErrInvalidToken)
	}
	p := Principal{
		UserID:    claims.Subject,
		SessionID: claims.SessionID,
		// A user token never makes its bearer a service, whatever it says:
		// only the service token does.
		Roles: slices.DeleteFunc(claims.Roles, func(r string) bool { return r == RoleService }),
	}
	v.remember(token, cachedToken{p: p, kid: kid, exp: claims.ExpiresAt.Time})
	return p, nil
}

// cached returns the principal of a token that passed the full check
// before, if it is still within its expiry (with the leeway the parser
// allows) and its key is still in the key set.
func (v *Verifier) cached(token string) (Principal, bool) {
	if v.cache == nil {
		return Principal{}, false
	}
	v.cacheMu.RLock()
	c, ok := v.cache[token]
	v.cacheMu.RUnlock()
	if !ok {
		return Principal{}, false
	}
	if !v.cfg.Clock().Before(c.exp.Add(v.cfg.Leeway)) {
		v.cacheMu.Lock()
		delete(v.cache, token)
		v.cacheMu.Unlock()
		return Principal{}, false
	}
	if set := v.set.Load(); set == nil || set.keys[c.kid] == nil {
		return Principal{}, false
	}
	p := c.p
	p.Roles = slices.Clone(p.Roles) // callers may not change the cached slice
	return p, true
}

// remember caches a verified token; when the cache is full it first drops
// the expired entries, then arbitrary ones (map order), a tenth at a time.
func (v *Verifier) remember(token string, c cachedToken) {
	if v.cache == nil {
		return
	}
	c.p.Roles = slices.Clone(c.p.Roles)
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= v.cfg.CacheSize {
		now := v.cfg.Clock()
		for k, e := range v.cache {
			if !now.Before(e.exp.Add(v.cfg.Leeway)) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < v.cfg.CacheSize-v.cfg.CacheSize/10 {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[token] = c
}

// key returns the public key named kid, fetching the key set when it is
// missing, stale, or lacks kid.
func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no kid", ErrUnknownKey)
	}
	set := v.set.Load()
	if set == nil {
		var err error
		if set, err = v.fetch(ctx, nil); err != nil {
			return nil, err
		}
	} else if v.cfg.Clock().Sub(set.fetchedAt) >= v.cfg.RefreshInterval {
		set = v.refreshStale(ctx, set)
	}
	if k, ok := set.keys[kid]; ok {
		return k, nil
	}
	// Unknown kid: maybe the user service rotated keys since the last
	// fetch. fetch throttles, so garbage kids cannot cause a storm.
	newer, err := v.fetch(ctx, set)
	if err != nil {
		if errors.Is(err, errThrottled) {
			return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
		}
		return nil, err
	}
	if k, ok := newer.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
}

// refreshStale refetches a stale key set if no other caller is doing so
// already; callers that find a fetch in progress, and callers whose fetch
// fails, keep using the stale set rather than failing every request while
// the user service is unreachable.
func (v *Verifier) refreshStale(ctx context.Context, stale *keySet) *keySet {
	select {
	case v.fetching <- struct{}{}:
	default:
		return stale
	}
	defer func() { <-v.fetching }()
	if cur := v.set.Load(); cur != stale {
		return cur
	}
	if !v.mayAttempt() {
		return stale
	}
	fresh, err := v.load(ctx)
	if err != nil {
		v.cfg.Logger.WarnContext(ctx, "auth: refreshing the key set failed; still using the cached keys", slog.Any("error", err))
		return stale
	}
	return fresh
}

// errThrottled: a refetch was wanted but the last attempt was too recent.
var errThrottled = errors.New("auth: key set refetch throttled")

// fetch loads a new key set unless one newer than seen was loaded while
// waiting for the fetch slot, or the last attempt is less than
// MinRefetchInterval ago (errThrottled, or ErrKeysUnavailable when there is
// no key set at all).
func (v *Verifier) fetch(ctx context.Context, seen *keySet) (*keySet, error) {
	select {
	case v.fetching <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a fetch: %w", ErrKeysUnavailable, ctx.Err())
	}
	defer func() { <-v.fetching }()
	if cur := v.set.Load(); cur != nil && cur != seen {
		return cur, nil
	}
	if !v.mayAttempt() {
		if seen == nil {
			return nil, fmt.Errorf("%w: the last fetch failed less than %s ago", ErrKeysUnavailable, v.cfg.MinRefetchInterval)
		}
		return nil, errThrottled
	}
	return v.load(ctx)
}

// mayAttempt records an attempt and reports whether it is allowed now.
func (v *Verifier) mayAttempt() bool {
	now := v.cfg.Clock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < v.cfg.MinRefetchInterval {
		return false
	}
	v.lastAttempt = now
	return true
}

// load fetches and publishes a key set; called holding the fetch slot.
func (v *Verifier) load(ctx context.Context) (*keySet, error) {
	jwks, err := v.cfg.JWKS.FetchKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	set := &keySet{keys: make(map[string]ed25519.PublicKey, len(jwks)), fetchedAt: v.cfg.Clock()}
	for _, k := range jwks {
		pub, err := k.PublicKey()
		if err != nil {
			// One odd key must not stop the others from verifying.
			v.cfg.Logger.WarnContext(ctx, "auth: ignoring a key of the key set", slog.Any("error", err))
			continue
		}
		set.keys[k.Kid] = pub
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("%w: the key set has no usable Ed25519 key", ErrKeysUnavailable)
	}
	v.set.Store(set)
	return set, nil
}
