package chat

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/parleyhq/parley/platform/stripe"
)

// Defaults for Config's zero values.
const (
	// DefaultCacheSize is how many of a channel's newest messages the
	// history cache keeps.
	DefaultCacheSize = 500
	// MinCacheSize is the floor: reconnect recovery must find at least the
	// last 200 messages in the cache.
	MinCacheSize = 200
	// DefaultMaxAttachmentSize is 25 MB.
	DefaultMaxAttachmentSize = 25 << 20
	// DefaultOutboxDelay is how long an outbox entry is left to the request
	// that wrote it before the relay takes over.
	DefaultOutboxDelay = 5 * time.Second
	// DefaultSeqAttempts bounds seq allocation retries under contention.
	DefaultSeqAttempts = 64
	// DefaultPageSize and MaxPageSize bound list pages.
	DefaultPageSize = 50
	MaxPageSize     = 100
	// DefaultHistoryLimit and MaxHistoryLimit bound GetMessages.
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 100
	// maxChannelMembers bounds the initial member list of CreateChannel.
	maxChannelMembers = 256
)

// DefaultAllowedContentTypes are the attachment types accepted, as sniffed
// by http.DetectContentType (parameters such as "; charset=utf-8" are
// ignored when comparing). SVG and HTML are absent on purpose: a browser
// would run their scripts.
func DefaultAllowedContentTypes() []string {
	return []string{
		"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp",
		"application/pdf", "text/plain", "application/zip", "application/x-gzip",
		"audio/mpeg", "audio/ogg", "audio/wave", "video/mp4", "video/webm",
	}
}

// Config wires a Service. Stores, Outbox and Events are required.
type Config struct {
	Channels    ChannelStore
	Messages    MessageStore
	Outbox      OutboxStore
	Attachments AttachmentStore
	// Cache is the recent-history cache; nil reads MongoDB every time.
	Cache HistoryCache
	// Events publishes events and realtime frames.
	Events EventPublisher
	// Users verifies member ids; nil accepts any well-formed id.
	Users UserDirectory
	// Clock defaults to SystemClock.
	Clock  Clock
	Logger *slog.Logger

	// CacheSize is how many newest messages per channel the cache keeps
	// (default 500, at least 200).
	CacheSize int
	// MaxAttachmentSize in bytes (default 25 MB).
	MaxAttachmentSize int64
	// AllowedContentTypes for attachments (default
	// DefaultAllowedContentTypes).
	AllowedContentTypes []string
	// OutboxDelay before the relay republishes an entry (default 5s).
	OutboxDelay time.Duration
	// SeqAttempts bounds seq allocation retries (default 64).
	SeqAttempts int
}

// Service implements the chat rules. It is safe for concurrent use.
type Service struct {
	channels    ChannelStore
	messages    MessageStore
	outbox      OutboxStore
	attachments AttachmentStore
	cache       HistoryCache
	events      EventPublisher
	users       UserDirectory
	clock       Clock
	log         *slog.Logger

	cacheSize   int
	maxAttach   int64
	allowed     map[string]bool
	outboxDelay time.Duration
	seqAttempts int

	// seqLocks serialize seq allocation per channel (striped by a hash of
	// the channel id) within this process; see storeMessage.
	seqLocks [seqLockStripes]sync.Mutex
	// fills de-duplicates concurrent cache fills of one channel.
	fills singleflight.Group
}

// seqLockStripes is the number of seq locks; channels sharing a stripe
// only wait for each other's inserts.
const seqLockStripes = 256

func (s *Service) seqLock(channelID string) *sync.Mutex {
	return &s.seqLocks[stripe.Index(channelID, seqLockStripes)]
}

// NewService checks cfg and returns the service.
func NewService(cfg Config) (*Service, error) {
	if cfg.Channels == nil || cfg.Messages == nil || cfg.Outbox == nil || cfg.Events == nil || cfg.Attachments == nil {
		return nil, errors.New("chat: Channels, Messages, Outbox, Attachments and Events are required")
	}
	s := &Service{
		channels:    cfg.Channels,
		messages:    cfg.Messages,
		outbox:      cfg.Outbox,
		attachments: cfg.Attachments,
		cache:       cfg.Cache,
		events:      cfg.Events,
		users:       cfg.Users,
		clock:       cfg.Clock,
		log:         cfg.Logger,
		cacheSize:   cfg.CacheSize,
		maxAttach:   cfg.MaxAttachmentSize,
		outboxDelay: cfg.OutboxDelay,
		seqAttempts: cfg.SeqAttempts,
	}
	if s.clock == nil {
		s.clock = SystemClock{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cacheSize <= 0 {
		s.cacheSize = DefaultCacheSize
	}
	if s.cacheSize < MinCacheSize {
		s.cacheSize = MinCacheSize
	}
	if s.maxAttach <= 0 {
		s.maxAttach = DefaultMaxAttachmentSize
	}
	if s.outboxDelay <= 0 {
		s.outboxDelay = DefaultOutboxDelay
	}
	if s.seqAttempts <= 0 {
		s.seqAttempts = DefaultSeqAttempts
	}
	types := cfg.AllowedContentTypes
	if len(types) == 0 {
		types = DefaultAllowedContentTypes()
	}
	s.allowed = make(map[string]bool, len(types))
	for _, t := range types {
		s.allowed[t] = true
	}
	return s, nil
}

// CacheSize is the number of newest messages per channel the cache keeps.
func (s *Service) CacheSize() int { return s.cacheSize }

// newID returns a random id with a one-letter kind prefix: 16 random bytes,
// hex, so it fits the API's [A-Za-z0-9_-]{1,64}.
func newID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return prefix + hex.EncodeToString(b[:])
}

// pageSize applies the default and the maximum.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// encodeToken makes an opaque page token from a cursor value.
func encodeToken(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode page token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decodeToken reads a token made by encodeToken; a token that does not
// decode is the caller's mistake.
func decodeToken(token string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return fmt.Errorf("%w: malformed page token", ErrInvalidArgument)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: malformed page token", ErrInvalidArgument)
	}
	return nil
}
