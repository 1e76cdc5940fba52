package recovery

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/rueidis"
)

// DefaultKeyPrefix is the key prefix of sessions in Redis, Node's
// sessionKeyPrefix default: a Go node and a Node node sharing a Redis find
// each other's sessions.
const DefaultKeyPrefix = "sio:session:"

// RedisStore keeps sessions in Redis as @socket.io/redis-streams-adapter
// does: key prefix+pid, value base64 of MessagePack of {sid, pid, rooms,
// data}, written with SET PX and taken with GETDEL (Redis 6.2 or later), so
// either kind of node restores a session the other persisted. It works
// against standalone Redis and Redis Cluster alike (one key per command).
type RedisStore struct {
	client rueidis.Client
	prefix string
	logger *slog.Logger
}

// RedisOption configures a RedisStore.
type RedisOption func(*RedisStore)

// WithRedisLogger sets the logger that reports corrupt stored sessions.
// Default slog.Default().
func WithRedisLogger(l *slog.Logger) RedisOption {
	return func(s *RedisStore) {
		if l != nil {
			s.logger = l
		}
	}
}

// NewRedisStore returns a Store on client. An empty prefix means
// DefaultKeyPrefix. The client stays the caller's: the store never closes it.
func NewRedisStore(client rueidis.Client, prefix string, opts ...RedisOption) *RedisStore {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	s := &RedisStore{client: client, prefix: prefix, logger: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Persist writes s with SET key value PX ttl.
func (s *RedisStore) Persist(ctx context.Context, sess Session, ttl time.Duration) error {
	if !ValidPID(sess.PID) {
		return ErrInvalidPID
	}
	if ttl < time.Millisecond {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	value, err := encodeSession(sess)
	if err != nil {
		return err
	}
	cmd := s.client.B().Set().Key(s.prefix + sess.PID).Value(value).PxMilliseconds(ttl.Milliseconds()).Build()
	if err := s.client.Do(ctx, cmd).Error(); err != nil {
		return fmt.Errorf("recovery: persist session: %w", err)
	}
	return nil
}

// Take reads and deletes the session with GETDEL: of two concurrent Takes
// of one pid, at most one gets the session, across nodes too.
func (s *RedisStore) Take(ctx context.Context, pid string) (*Session, error) {
	if !ValidPID(pid) {
		return nil, ErrInvalidPID
	}
	value, err := s.client.Do(ctx, s.client.B().Getdel().Key(s.prefix+pid).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("recovery: take session: %w", err)
	}
	sess, err := decodeSession(value, pid)
	if err != nil {
		// Logged here because only the store sees the value; the caller
		// sees a typed error. The value is gone (GETDEL), so it is reported
		// once, not at every retry.
		s.logger.Warn("recovery: discarding a corrupt stored session",
			"pid_hash", pidHash(pid), "bytes", len(value), "err", err)
		return nil, err
	}
	return sess, nil
}
