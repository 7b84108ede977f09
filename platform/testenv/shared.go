package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/parleyhq/parley/platform/embedded"
)

// shared holds the embedded servers of this test binary. It is the one
// package-level variable in the platform kit: New must start the servers
// once per binary and Main must find them to stop them, and both are called
// from places (tests, TestMain) that share nothing else.
var shared sharedEnv

type sharedEnv struct {
	mu    sync.Mutex
	dir   string
	mongo *embedded.Mongo
	nats  *embedded.NATS
	redis *embedded.Redis
	// errors are sticky: a backend that failed to start is not retried by
	// every test, each of which would wait for the same timeout.
	mongoErr, natsErr, redisErr error
}

// dataDir returns the temporary directory of this binary's servers;
// called with mu held.
func (s *sharedEnv) dataDir() (string, error) {
	if s.dir == "" {
		dir, err := os.MkdirTemp("", "parley-testenv-")
		if err != nil {
			return "", fmt.Errorf("create data dir: %w", err)
		}
		s.dir = dir
	}
	return s.dir, nil
}

func embeddedMongoURI() (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.mongo == nil && shared.mongoErr == nil {
		shared.mongoErr = func() error {
			dir, err := shared.dataDir()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			shared.mongo, err = embedded.StartMongo(ctx, embedded.MongoConfig{
				Dir:    filepath.Join(dir, "mongo"),
				Logger: logger(),
			})
			return err
		}()
	}
	if shared.mongoErr != nil {
		return "", shared.mongoErr
	}
	return shared.mongo.URI(), nil
}

func embeddedNATSURL() (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.nats == nil && shared.natsErr == nil {
		shared.natsErr = func() error {
			dir, err := shared.dataDir()
			if err != nil {
				return err
			}
			shared.nats, err = embedded.StartNATS(embedded.NATSConfig{
				Dir:    filepath.Join(dir, "nats"),
				Port:   -1,
				Logger: logger(),
			})
			return err
		}()
	}
	if shared.natsErr != nil {
		return "", shared.natsErr
	}
	return shared.nats.URL(), nil
}

func embeddedRedisURL() (string, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.redis == nil && shared.redisErr == nil {
		shared.redis, shared.redisErr = embedded.StartRedis(embedded.RedisConfig{})
	}
	if shared.redisErr != nil {
		return "", shared.redisErr
	}
	return shared.redis.URL(), nil
}

// stopEmbedded stops whatever New started and removes the data directory.
func stopEmbedded(ctx context.Context) error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var errs []error
	if shared.redis != nil {
		shared.redis.Close()
		shared.redis = nil
	}
	if shared.nats != nil {
		shared.nats.Close()
		shared.nats = nil
	}
	if shared.mongo != nil {
		if err := shared.mongo.Close(ctx); err != nil {
			errs = append(errs, err)
		}
		shared.mongo = nil
	}
	if shared.dir != "" {
		if err := os.RemoveAll(shared.dir); err != nil {
			errs = append(errs, err)
		}
		shared.dir = ""
	}
	return errors.Join(errs...)
}
