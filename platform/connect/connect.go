// Package connect opens a service's connections to its backends the same
// way in every service: MongoDB, Redis and NATS, each checked with a ping
// (or the NATS handshake) within a deadline, so a service that starts
// against a missing backend says which one and fails fast.
package connect

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo connects to uri as app and pings it within timeout. opTimeout,
// when positive, bounds every operation that has no deadline of its own.
// On a failed ping the client is returned too, for the caller to
// disconnect.
func Mongo(ctx context.Context, uri, app string, timeout, opTimeout time.Duration) (*mongo.Client, error) {
	opts := options.Client().
		ApplyURI(uri).
		SetServerSelectionTimeout(timeout).
		SetConnectTimeout(timeout).
		SetAppName(app)
	if opTimeout > 0 {
		opts.SetTimeout(opTimeout)
	}
	c, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(ctx, nil); err != nil {
		return c, fmt.Errorf("mongodb ping: %w", err)
	}
	return c, nil
}

// Redis opens a client for a redis:// URL and pings it within timeout. On
// a failed ping the client is returned too: a service may run on without
// Redis, and must close it either way.
func Redis(ctx context.Context, url string, timeout time.Duration) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return c, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	return c, nil
}

// NATS connects as name, reconnecting for ever after the first success,
// and logs disconnections, reconnections and asynchronous errors (a
// subscription too slow to keep up, among others). The returned channel
// is closed once the connection is closed for good (after Close or Drain).
func NATS(url, name string, timeout time.Duration, log *slog.Logger, opts ...nats.Option) (*nats.Conn, <-chan struct{}, error) {
	closed := make(chan struct{})
	all := append([]nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn(name+": nats disconnected", slog.Any("error", err))
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info(name + ": nats reconnected") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn(name+": nats", slog.String("subject", subject), slog.Any("error", err))
		}),
	}, opts...)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		return nil, nil, fmt.Errorf("nats at %s: %w", url, err)
	}
	return nc, closed, nil
}
