package health

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// MongoCheck pings the server through c.
func MongoCheck(c *mongo.Client) Check {
	return func(ctx context.Context) error {
		if err := c.Ping(ctx, nil); err != nil {
			return fmt.Errorf("mongodb ping: %w", err)
		}
		return nil
	}
}

// NATSCheck requires nc to be connected and to complete a round trip to
// the server.
func NATSCheck(nc *nats.Conn) Check {
	return func(ctx context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("%w: %s", ErrNATSNotConnected, st)
		}
		if err := nc.FlushWithContext(ctx); err != nil {
			return fmt.Errorf("nats flush: %w", err)
		}
		return nil
	}
}

// RedisCheck pings the server through c.
func RedisCheck(c *redis.Client) Check {
	return func(ctx context.Context) error {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis ping: %w", err)
		}
		return nil
	}
}
